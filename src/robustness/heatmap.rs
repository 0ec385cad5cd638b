//! The robustness heat map: one row per feature, one column per location, each cell
//! coloured by its ICC and labelled with the value; a legend gives the class thresholds.
//!
//! Drawn with plotters' bitmap backend and a bundled font (DejaVu Sans Condensed,
//! `assets/fonts/`, Bitstream Vera licence), so the PNG is the same on every machine and
//! needs no system font library.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{RobustnessClass, RobustnessReport};

/// The bundled font, registered with plotters under [`FONT_FAMILY`].
const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansCondensed.ttf");
const FONT_FAMILY: &str = "sans-serif";

/// Layout, pixels.
const CELL_W: i32 = 96;
const CELL_H: i32 = 18;
const LABEL_W: i32 = 230;
const HEADER_H: i32 = 70;
const LEGEND_H: i32 = 60;
const MARGIN: i32 = 12;
const TEXT_PX: u32 = 13;
const TITLE_PX: u32 = 16;

/// Colours: poor (ICC ≤ 0), the good threshold and 1, interpolated; grey for undefined.
const POOR: RGBColor = RGBColor(215, 48, 39);
const MIDDLE: RGBColor = RGBColor(254, 224, 139);
const BEST: RGBColor = RGBColor(26, 152, 80);
const UNDEFINED: RGBColor = RGBColor(200, 200, 200);

/// Why the heat map could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum HeatmapError {
    #[error("the report has no feature rows to draw")]
    Empty,
    #[error("the bundled font could not be loaded")]
    Font,
    #[error("drawing the heat map failed: {0}")]
    Draw(String),
}

/// Draw `report` as a PNG at `path`.
///
/// # Errors
/// [`HeatmapError`] for an empty report or a drawing / file error.
pub fn write_png(report: &RobustnessReport, path: &Path) -> Result<(), HeatmapError> {
    register_font()?;
    let locations = report.locations();
    let features = report.feature_names();
    if locations.is_empty() || features.is_empty() {
        return Err(HeatmapError::Empty);
    }
    let width = (MARGIN * 2 + LABEL_W + CELL_W * locations.len() as i32).max(560);
    let height = MARGIN * 2 + HEADER_H + CELL_H * features.len() as i32 + LEGEND_H;
    let root = BitMapBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    let draw_err = |e: DrawingAreaErrorKind<_>| HeatmapError::Draw(e.to_string());
    root.fill(&WHITE).map_err(draw_err)?;

    let title = format!(
        "Feature robustness: ICC(3,1), {} perturbations, settings {}",
        report.options.perturbations, report.settings_name
    );
    root.draw(&Text::new(title, (MARGIN, MARGIN), font(TITLE_PX)))
        .map_err(draw_err)?;

    let top = MARGIN + HEADER_H;
    for (c, location) in locations.iter().enumerate() {
        let x = MARGIN + LABEL_W + c as i32 * CELL_W + CELL_W / 2;
        let n = report
            .features
            .iter()
            .find(|r| r.location == *location)
            .map_or(0, |r| r.n_lesions);
        let style = font(TEXT_PX).pos(Pos::new(HPos::Center, VPos::Bottom));
        root.draw(&Text::new(location.as_str(), (x, top - 18), style.clone()))
            .map_err(draw_err)?;
        root.draw(&Text::new(format!("n = {n}"), (x, top - 3), style))
            .map_err(draw_err)?;
    }

    for (r, feature) in features.iter().enumerate() {
        let y = top + r as i32 * CELL_H;
        let label_style = font(TEXT_PX).pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(
            feature.as_str(),
            (MARGIN + LABEL_W - 6, y + CELL_H / 2),
            label_style,
        ))
        .map_err(draw_err)?;
        for (c, location) in locations.iter().enumerate() {
            let x = MARGIN + LABEL_W + c as i32 * CELL_W;
            let row = report.row(*location, feature);
            let icc = row.and_then(|r| r.icc);
            let fill = icc.map_or(UNDEFINED, |v| colour(v, report.options.thresholds.good));
            root.draw(&Rectangle::new(
                [(x, y), (x + CELL_W - 1, y + CELL_H - 1)],
                fill.filled(),
            ))
            .map_err(draw_err)?;
            let text = icc.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
            let style = font(TEXT_PX - 2).pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(text, (x + CELL_W / 2, y + CELL_H / 2), style))
                .map_err(draw_err)?;
        }
    }

    draw_legend(&root, report, top + CELL_H * features.len() as i32 + 14).map_err(draw_err)?;
    root.present().map_err(draw_err)
}

/// Class swatches with their thresholds.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    report: &RobustnessReport,
    y: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let t = report.options.thresholds;
    let entries = [
        (
            colour(1.0, t.good),
            format!("excellent: ICC ≥ {}", t.excellent),
        ),
        (colour(t.good, t.good), format!("good: ICC ≥ {}", t.good)),
        (colour(0.0, t.good), format!("poor: ICC < {}", t.good)),
        (UNDEFINED, RobustnessClass::Undefined.as_str().to_owned()),
    ];
    for (i, (fill, text)) in entries.into_iter().enumerate() {
        let x = MARGIN + (i as i32 % 2) * 260;
        let row_y = y + (i as i32 / 2) * 20;
        root.draw(&Rectangle::new(
            [(x, row_y), (x + 14, row_y + 14)],
            fill.filled(),
        ))?;
        root.draw(&Text::new(text, (x + 20, row_y), font(TEXT_PX)))?;
    }
    Ok(())
}

/// Red at ICC ≤ 0, yellow at the `good` threshold, green at 1.
fn colour(icc: f64, good: f64) -> RGBColor {
    let blend = |a: RGBColor, b: RGBColor, t: f64| {
        let t = t.clamp(0.0, 1.0);
        let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
        RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    };
    if icc < good {
        blend(POOR, MIDDLE, icc / good)
    } else {
        blend(MIDDLE, BEST, (icc - good) / (1.0 - good).max(f64::EPSILON))
    }
}

fn font(px: u32) -> TextStyle<'static> {
    (FONT_FAMILY, px).into_font().color(&BLACK)
}

/// Register the bundled font once per process.
fn register_font() -> Result<(), HeatmapError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok { Ok(()) } else { Err(HeatmapError::Font) }
}
