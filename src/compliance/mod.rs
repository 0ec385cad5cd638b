//! IBSI 1 compliance self-check: compute the bundled IBSI digital phantom with this build
//! and compare every feature with the IBSI consensus reference values.
//!
//! Served at `GET /v1/compliance` so a core lab can check the exact deployed build, and
//! rendered to `docs/ibsi-compliance.md` by `radscore compliance`. The phantom and its
//! reference values are bundled under `assets/ibsi_digital_phantom/` (CC BY 4.0; see the
//! README there). Reference: IBSI 1 reference manual (arXiv:1612.07003), chapter 3 and the
//! digital phantom of chapter 5.

pub mod configs;

use serde::Serialize;

use crate::features::{self, FamilySettings};
use crate::image::labelmap::{read_nifti_labelmap, read_nifti_volume};

const PHANTOM_IMAGE: &[u8] = include_bytes!("../../assets/ibsi_digital_phantom/image.nii.gz");
const PHANTOM_MASK: &[u8] = include_bytes!("../../assets/ibsi_digital_phantom/mask.nii.gz");
const PHANTOM_REFERENCE_CSV: &str =
    include_str!("../../assets/ibsi_digital_phantom/reference_values.csv");

/// The IBSI tables round digital-phantom values to three significant digits and give a
/// tolerance of 0; such a value agrees when it is within half a unit of the third
/// significant digit (IBSI 1 manual, chapter 5 notes on the digital phantom).
pub const REFERENCE_SIGNIFICANT_DIGITS: i32 = 3;

/// Outcome of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within tolerance.
    Pass,
    /// Outside tolerance.
    Fail,
    /// This build does not compute the feature.
    NotComputed,
    /// IBSI gives no reference value ("not standardized").
    NoReference,
}

/// One reference row and our value.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub family: String,
    pub feature: String,
    pub tag: String,
    pub consensus: String,
    pub value: Option<f64>,
    pub reference: Option<f64>,
    pub tolerance: Option<f64>,
    /// The deviation accepted: the IBSI tolerance, or the rounding tolerance when it is 0.
    pub allowed: Option<f64>,
    pub status: Status,
    /// Why a failing row deviates, when the cause is known.
    pub note: Option<&'static str>,
}

/// Deviations whose cause is known, by tag prefix: listed with the failing rows so no
/// deviation is silent.
pub const KNOWN_DEVIATIONS: &[(&str, &str)] = &[];

/// A compliance report for one data set.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data_set: String,
    pub radscore_version: String,
    pub passed: usize,
    pub failed: usize,
    pub not_computed: usize,
    pub no_reference: usize,
    pub rows: Vec<Row>,
}

/// Why the self-check could not run (a broken build, never bad user input).
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("bundled phantom unreadable: {0}")]
    Phantom(#[from] crate::image::labelmap::LabelMapError),
    #[error("bundled phantom mask holds no lesion")]
    NoLesion,
    #[error("feature computation failed on the phantom: {0}")]
    Features(#[from] crate::features::FeatureError),
    #[error("reference values unreadable: {0}")]
    Csv(#[from] csv::Error),
    #[error("no IBSI configuration '{0}' (expected A to E)")]
    UnknownConfig(char),
    #[error("reference table could not be filtered: {0}")]
    Table(String),
}

/// The settings of the digital phantom (IBSI 1 chapter 5): every family, every
/// aggregation, no re-segmentation, intensities used as grey levels, δ = 1, α = 0.
pub fn digital_phantom_settings() -> FamilySettings {
    configs::digital_phantom()
}

/// Compute the bundled digital phantom and compare with the bundled reference values.
pub fn digital_phantom() -> Result<Report, ComplianceError> {
    let volume = read_nifti_volume(PHANTOM_IMAGE, "ibsi_digital_phantom/image.nii.gz")?;
    let seg = read_nifti_labelmap(
        PHANTOM_MASK,
        "ibsi_digital_phantom/mask.nii.gz",
        &volume.grid,
    )?;
    let lesion = seg.lesions.first().ok_or(ComplianceError::NoLesion)?;
    let settings = digital_phantom_settings();
    let roi = crate::pipeline::build_roi(&volume, lesion, &settings)?;
    let produced = features::compute_all(&roi, &settings)?;
    let rows = compare(&produced, PHANTOM_REFERENCE_CSV)?;
    Ok(summarise("digital_phantom", rows))
}

/// Compute the IBSI CT phantom (NIfTI image and mask, e.g. `ibsi1/ct_phantom/nifti`) with
/// configuration `config` (`'A'`–`'E'`) and compare with the rows of that configuration in
/// an IBSI reference table in long format (`data_set, family, feature, tag, consensus,
/// reference_value, tolerance`). Diagnostics rows are left to the test suite.
///
/// The CT phantom is CC BY-NC and is never bundled: the caller supplies the files.
pub fn ct_phantom(
    image: &[u8],
    mask: &[u8],
    reference_long_csv: &str,
    config: char,
) -> Result<Report, ComplianceError> {
    let (data_set, settings) =
        configs::ct_phantom(config).ok_or(ComplianceError::UnknownConfig(config))?;
    let volume = read_nifti_volume(image, "ct_phantom/image")?;
    let seg = read_nifti_labelmap(mask, "ct_phantom/mask", &volume.grid)?;
    let lesion = seg.lesions.first().ok_or(ComplianceError::NoLesion)?;
    let roi = crate::pipeline::build_roi(&volume, lesion, &settings)?;
    let produced = features::compute_all(&roi, &settings)?;

    let mut rdr = csv::Reader::from_reader(reference_long_csv.as_bytes());
    let mut subset = csv::Writer::from_writer(Vec::new());
    subset.write_record([
        "family",
        "feature",
        "tag",
        "consensus",
        "reference_value",
        "tolerance",
    ])?;
    for record in rdr.records() {
        let r = record?;
        let family = r.get(1).unwrap_or_default();
        if r.get(0) == Some(data_set) && !family.starts_with("Diagnostics") {
            let family = family.split_whitespace().collect::<Vec<_>>().join(" ");
            let row: Vec<&str> = (2..7).map(|i| r.get(i).unwrap_or_default()).collect();
            subset.write_record(std::iter::once(family.as_str()).chain(row))?;
        }
    }
    let table = subset
        .into_inner()
        .map_err(|e| ComplianceError::Table(e.to_string()))?;
    let rows = compare(&produced, &String::from_utf8_lossy(&table))?;
    Ok(summarise(data_set, rows))
}

/// Compare produced features with a reference CSV (`family, feature, tag, consensus,
/// reference_value, tolerance`).
pub fn compare(
    produced: &[features::Feature],
    reference_csv: &str,
) -> Result<Vec<Row>, csv::Error> {
    let mut rdr = csv::Reader::from_reader(reference_csv.as_bytes());
    let mut rows = Vec::new();
    for record in rdr.records() {
        let r = record?;
        let field = |i: usize| r.get(i).unwrap_or_default().to_string();
        let reference = r.get(4).and_then(|v| v.parse::<f64>().ok());
        let tolerance = r.get(5).and_then(|v| v.parse::<f64>().ok());
        let tag = field(2);
        let value = produced.iter().find(|f| f.name == tag).map(|f| f.value);
        let allowed = match (reference, tolerance) {
            (Some(_), Some(t)) if t > 0.0 => Some(t),
            (Some(rf), _) => Some(rounding_tolerance(rf)),
            _ => None,
        };
        let status = match (value, reference, allowed) {
            (_, None, _) => Status::NoReference,
            (None, Some(_), _) => Status::NotComputed,
            (Some(v), Some(rf), Some(a)) if (v - rf).abs() <= a => Status::Pass,
            _ => Status::Fail,
        };
        let note = (status == Status::Fail)
            .then(|| {
                KNOWN_DEVIATIONS
                    .iter()
                    .find(|(p, _)| tag.starts_with(p))
                    .map(|(_, n)| *n)
            })
            .flatten();
        rows.push(Row {
            note,
            family: field(0),
            feature: field(1),
            consensus: field(3),
            tag,
            value,
            reference,
            tolerance,
            allowed,
            status,
        });
    }
    Ok(rows)
}

/// Half a unit in the last of [`REFERENCE_SIGNIFICANT_DIGITS`] significant digits.
pub fn rounding_tolerance(reference: f64) -> f64 {
    if reference == 0.0 || !reference.is_finite() {
        return 0.0;
    }
    let exponent = reference.abs().log10().floor() as i32;
    0.5 * 10f64.powi(exponent - (REFERENCE_SIGNIFICANT_DIGITS - 1))
}

fn summarise(data_set: &str, rows: Vec<Row>) -> Report {
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    Report {
        data_set: data_set.into(),
        radscore_version: env!("CARGO_PKG_VERSION").into(),
        passed: count(Status::Pass),
        failed: count(Status::Fail),
        not_computed: count(Status::NotComputed),
        no_reference: count(Status::NoReference),
        rows,
    }
}

/// Render reports as the markdown of `docs/ibsi-compliance.md`.
pub fn to_markdown(reports: &[Report]) -> String {
    let mut md = String::from(
        "# IBSI 1 compliance\n\n\
         Generated by `radscore compliance --out docs/ibsi-compliance.md`; do not edit by \
         hand. Each row compares radscore's value with the IBSI 1 consensus reference value \
         (Zwanenburg et al., Radiology 2020). `allowed` is the IBSI tolerance or, where the \
         IBSI tolerance is 0, half a unit in the third significant digit of the reference. \
         `not computed` rows are features this build does not compute yet; \
         `no reference` rows have no standardised value.\n\n",
    );
    for r in reports {
        md.push_str(&format!(
            "## {} (radscore {})\n\n{} passed, {} failed, {} not computed, {} without reference.\n\n\
             | family | feature | tag | radscore | reference | allowed | result | note |\n\
             |---|---|---|---|---|---|---|---|\n",
            r.data_set, r.radscore_version, r.passed, r.failed, r.not_computed, r.no_reference
        ));
        for row in &r.rows {
            let num = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.6}"));
            let status = match row.status {
                Status::Pass => "pass",
                Status::Fail => "**FAIL**",
                Status::NotComputed => "not computed",
                Status::NoReference => "no reference",
            };
            md.push_str(&format!(
                "| {} | {} | `{}` | {} | {} | {} | {} | {} |\n",
                row.family,
                row.feature,
                row.tag,
                num(row.value),
                num(row.reference),
                num(row.allowed),
                status,
                row.note.unwrap_or("")
            ));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_phantom_passes_every_computed_feature() {
        let report = digital_phantom().expect("self-check runs");
        let failed: Vec<_> = report
            .rows
            .iter()
            .filter(|r| r.status == Status::Fail)
            .map(|r| format!("{} {:?} vs {:?}", r.tag, r.value, r.reference))
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert!(report.passed >= 177, "passed {}", report.passed);
    }

    #[test]
    fn rounding_tolerance_is_half_a_unit_in_the_third_digit() {
        assert!((rounding_tolerance(2.15) - 0.005).abs() < 1e-12);
        assert!((rounding_tolerance(-0.0121) - 0.00005).abs() < 1e-12);
        assert!((rounding_tolerance(567.0) - 0.5).abs() < 1e-12);
    }
}
