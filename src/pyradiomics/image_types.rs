//! PyRadiomics `imageType` entries mapped onto radscore's filtered images
//! ([`crate::features::settings::ImageFilters`]).
//!
//! | PyRadiomics image type | radscore filter | settings read (per type, else `setting`) |
//! |---|---|---|
//! | `Original` | none (the profile's own families) | — |
//! | `LoG` | [`ImageFilter::Log`], one image per σ | `sigma` (mm) |
//! | `Wavelet` | [`ImageFilter::Wavelet`], 7 detail bands per level + `LLL` of the last | `wavelet`, `start_level`, `level` |
//! | `Square`, `SquareRoot`, `Logarithm`, `Exponential` | the intensity maps | — |
//! | `Gradient` | [`ImageFilter::Gradient`] | `gradientUseSpacing` |
//!
//! Per-type `binWidth` / `binCount` become the image's own discretisation. The filter sees
//! the whole image, or — with `resampledPixelSpacing` or `preCrop` — the lesion's
//! bounding box padded by `padDistance` voxels, as PyRadiomics crops before filtering.
//! `LBP2D` and `LBP3D` are refused (see [`REFUSED_TYPES`]).
//!
//! Reference: PyRadiomics 3.x `featureextractor.py` (`execute`, `loadImage`) and
//! `imageoperations.py` (`get<Type>Image`).

use serde_json::{Map, Value};

use super::params::Unsupported;
use crate::features::Discretisation;
use crate::features::settings::{FilteredImage, ImageFilter, ImageFilters};
use crate::image::filters::wavelet;

/// PyRadiomics' default `padDistance` (voxels).
pub const DEFAULT_PAD_DISTANCE_VOX: usize = 5;
/// PyRadiomics' default `level` of the wavelet decomposition.
pub const DEFAULT_WAVELET_LEVELS: u32 = 1;

/// Image types radscore does not compute, with the reason.
// LIMITATION: LBP3D (spherical-harmonics LBP sampled on an icosphere with scipy cubic splines) and LBP2D (scikit-image) are not implemented; they are refused by name.
pub const REFUSED_TYPES: &[(&str, &str)] = &[
    (
        "LBP3D",
        "3D local binary patterns (spherical harmonics on an icosphere) are not implemented",
    ),
    ("LBP2D", "2D local binary patterns are not implemented"),
];

/// Settings a per-image-type mapping may override.
const PER_TYPE_KEYS: &[&str] = &[
    "binWidth",
    "binCount",
    "sigma",
    "wavelet",
    "start_level",
    "level",
    "gradientUseSpacing",
];

/// The mapped `imageType` section.
#[derive(Debug, Clone, Default)]
pub struct ImageTypes {
    /// `Original` is enabled (its features beside shape are computed).
    pub original: bool,
    /// The filtered images and the region their filters see.
    pub filters: ImageFilters,
}

/// Map `imageType` (absent: `Original` only, PyRadiomics' default). `families` are the
/// intensity families the feature classes need; refusals go to `refused`.
pub fn map_image_types(
    image_type: Option<&Value>,
    setting: Option<&Value>,
    families: &[String],
    refused: &mut Vec<Unsupported>,
) -> ImageTypes {
    let empty = Map::new();
    let global = setting.and_then(Value::as_object).unwrap_or(&empty);
    let map = match image_type {
        None | Some(Value::Null) => {
            return ImageTypes {
                original: true,
                ..Default::default()
            };
        }
        Some(Value::Object(map)) => map,
        Some(other) => {
            push(
                refused,
                "imageType",
                other,
                "must be a mapping of image types",
            );
            return ImageTypes::default();
        }
    };
    let mut out = ImageTypes::default();
    for (kind, custom) in map {
        let key = format!("imageType.{kind}");
        let custom = match custom {
            Value::Null => &empty,
            Value::Object(o) => o,
            other => {
                push(refused, &key, other, "must be a mapping of settings");
                continue;
            }
        };
        if let Some((_, why)) = REFUSED_TYPES.iter().find(|(t, _)| t == kind) {
            push(refused, &key, &Value::Object(custom.clone()), why);
            continue;
        }
        let reader = TypeSettings {
            key: &key,
            custom,
            global,
        };
        let filters = match kind.as_str() {
            "Original" => {
                if !custom.is_empty() {
                    push(
                        refused,
                        &key,
                        &Value::Object(custom.clone()),
                        "per-image-type settings for Original are not supported",
                    );
                }
                out.original = true;
                continue;
            }
            "LoG" => reader.log(refused),
            "Wavelet" => reader.wavelet(refused),
            "Square" => vec![ImageFilter::Square],
            "SquareRoot" => vec![ImageFilter::SquareRoot],
            "Logarithm" => vec![ImageFilter::Logarithm],
            "Exponential" => vec![ImageFilter::Exponential],
            "Gradient" => reader.gradient(refused),
            _ => {
                push(
                    refused,
                    &key,
                    &Value::Object(custom.clone()),
                    "unknown PyRadiomics image type",
                );
                continue;
            }
        };
        let discretisation = reader.discretisation(refused);
        for (name, value) in custom {
            if !PER_TYPE_KEYS.contains(&name.as_str()) {
                push(
                    refused,
                    &format!("{key}.{name}"),
                    value,
                    "this setting cannot be set per image type",
                );
            }
        }
        out.filters
            .images
            .extend(filters.into_iter().map(|filter| FilteredImage {
                filter,
                families: families.to_vec(),
                discretisation: discretisation.clone(),
            }));
    }
    if !out.filters.images.is_empty() {
        let cropped = global
            .get("resampledPixelSpacing")
            .is_some_and(|v| !v.is_null())
            || global.get("preCrop") == Some(&Value::Bool(true));
        if cropped {
            let pad = global.get("padDistance").and_then(Value::as_u64);
            if let Some(bad) = global
                .get("padDistance")
                .filter(|v| pad.is_none() && !v.is_null())
            {
                push(
                    refused,
                    "setting.padDistance",
                    bad,
                    "must be a non-negative integer",
                );
            }
            out.filters.crop_pad_vox = Some(pad.map_or(DEFAULT_PAD_DISTANCE_VOX, |p| p as usize));
        }
    }
    out
}

fn push(refused: &mut Vec<Unsupported>, key: &str, value: &Value, reason: &str) {
    refused.push(Unsupported {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    });
}

/// One image type's settings: its own mapping, else the global `setting`.
struct TypeSettings<'a> {
    key: &'a str,
    custom: &'a Map<String, Value>,
    global: &'a Map<String, Value>,
}

impl TypeSettings<'_> {
    /// The value and the dotted key it came from.
    fn get(&self, name: &str) -> Option<(&Value, String)> {
        match self.custom.get(name).filter(|v| !v.is_null()) {
            Some(v) => Some((v, format!("{}.{name}", self.key))),
            None => self
                .global
                .get(name)
                .filter(|v| !v.is_null())
                .map(|v| (v, format!("setting.{name}"))),
        }
    }

    fn uint(&self, name: &str, default: u32, refused: &mut Vec<Unsupported>) -> u32 {
        match self.get(name) {
            None => default,
            Some((v, key)) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    push(refused, &key, v, "must be a non-negative integer");
                    default
                }
            },
        }
    }

    /// `sigma`: one LoG image per value (mm); PyRadiomics computes none without it.
    fn log(&self, refused: &mut Vec<Unsupported>) -> Vec<ImageFilter> {
        let Some((value, key)) = self.get("sigma") else {
            push(
                refused,
                self.key,
                &Value::Object(self.custom.clone()),
                "LoG needs a sigma list (PyRadiomics computes no LoG image without one)",
            );
            return Vec::new();
        };
        // σ with whether it was written as an integer: PyRadiomics names the image from
        // Python's `str` of the value as written (`3` → `log-sigma-3-mm-3D`).
        let sigmas: Option<Vec<(f64, bool)>> = value.as_array().and_then(|a| {
            a.iter()
                .map(|v| Some((v.as_f64()?, v.is_i64() || v.is_u64())))
                .collect()
        });
        let valid = |s: &Vec<(f64, bool)>| {
            !s.is_empty() && s.iter().all(|(x, _)| x.is_finite() && *x > 0.0)
        };
        match sigmas.filter(valid) {
            Some(s) => s
                .into_iter()
                .map(|(sigma_mm, sigma_as_integer)| ImageFilter::Log {
                    sigma_mm,
                    sigma_as_integer,
                })
                .collect(),
            None => {
                push(refused, &key, value, "must be a list of numbers > 0 (mm)");
                Vec::new()
            }
        }
    }

    /// `wavelet`, `start_level`, `level`: per level the 7 detail bands, then `LLL` of the
    /// last level (PyRadiomics' output order).
    fn wavelet(&self, refused: &mut Vec<Unsupported>) -> Vec<ImageFilter> {
        let name = match self.get("wavelet") {
            None => wavelet::DEFAULT_WAVELET.to_string(),
            Some((Value::String(s), _)) => s.clone(),
            Some((v, key)) => {
                push(refused, &key, v, "must be a PyWavelets wavelet name");
                return Vec::new();
            }
        };
        let start_level = self.uint("start_level", 0, refused);
        let levels = self.uint("level", DEFAULT_WAVELET_LEVELS, refused);
        if let Err(reason) = wavelet::validate(&name, start_level, levels.max(1), "LLL") {
            let (v, key) = self.get("wavelet").map_or(
                (Value::String(name.clone()), self.key.to_string()),
                |(v, k)| (v.clone(), k),
            );
            push(refused, &key, &v, &reason);
            return Vec::new();
        }
        if levels == 0 {
            push(refused, self.key, &Value::from(0), "level must be ≥ 1");
            return Vec::new();
        }
        let image = |level: u32, band: &str| ImageFilter::Wavelet {
            wavelet: name.clone(),
            start_level,
            level,
            band: band.to_string(),
        };
        // With force2D PyRadiomics decomposes in-plane only (force2Ddimension 0, the only
        // one radscore accepts).
        let bands: &[&str] = if self.global.get("force2D") == Some(&Value::Bool(true)) {
            &wavelet::BANDS_2D
        } else {
            &wavelet::BANDS
        };
        let (details, approximation) = bands.split_at(bands.len() - 1);
        let mut out = Vec::new();
        for level in 1..=levels {
            out.extend(details.iter().map(|band| image(level, band)));
        }
        out.push(image(levels, approximation[0]));
        out
    }

    /// `gradientUseSpacing` (default true).
    fn gradient(&self, refused: &mut Vec<Unsupported>) -> Vec<ImageFilter> {
        let use_spacing = match self.get("gradientUseSpacing") {
            None => true,
            Some((Value::Bool(b), _)) => *b,
            Some((v, key)) => {
                push(refused, &key, v, "must be true or false");
                true
            }
        };
        vec![ImageFilter::Gradient { use_spacing }]
    }

    /// A per-type `binWidth` / `binCount` as the image's own discretisation (`binCount`,
    /// from anywhere, wins over `binWidth`, as in PyRadiomics' `binImage`).
    fn discretisation(&self, refused: &mut Vec<Unsupported>) -> Option<Discretisation> {
        if !self.custom.contains_key("binWidth") && !self.custom.contains_key("binCount") {
            return None;
        }
        if let Some((v, key)) = self.get("binCount") {
            return match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(bins) => Some(Discretisation::FixedBinNumber { bins }),
                None => {
                    push(refused, &key, v, "must be a positive integer");
                    None
                }
            };
        }
        let (v, key) = self.get("binWidth")?;
        match v.as_f64().filter(|w| w.is_finite() && *w > 0.0) {
            Some(bin_width_hu) => Some(Discretisation::FixedBinSize {
                bin_width_hu,
                lower_bound_hu: None,
                pyradiomics_edges: true,
            }),
            None => {
                push(refused, &key, v, "must be > 0");
                None
            }
        }
    }
}
