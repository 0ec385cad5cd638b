//! PyRadiomics parameter files (YAML or JSON with `setting`, `imageType`, `featureClass`,
//! `voxelSetting`) mapped onto radscore's [`ExtractionSettings`].
//!
//! Every key is either mapped, accepted because it cannot change a value radscore
//! computes (e.g. `preCrop`, `additionalInfo`), or refused: [`ParamsError::Unsupported`]
//! names every refused key with its value and the reason, so nothing is dropped
//! silently. Features that a class enables by default but radscore does not compute (e.g.
//! `MCC`) are listed in [`PyRadiomicsParams::unavailable`]; listing one explicitly is an
//! error.
//!
//! Reference: PyRadiomics documentation, "Customizing the Extraction" (parameter file
//! keys and defaults) and `radiomics/schemas/paramSchema.yaml`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::image_types::map_image_types;
use super::names::{self, CLASSES, MAPPINGS, Selection, UNAVAILABLE, UNAVAILABLE_CLASSES};
use crate::features::settings::{
    DEFAULT_MASK_THRESHOLD, ImageInterpolation, Interpolation, MaskInterpolation, Normalisation,
    SETTINGS_SCHEMA_VERSION, TextureAggregation,
};
use crate::features::{Discretisation, ExtractionSettings, FamilySettings, Location};

/// PyRadiomics' default `binWidth` (documentation, "Feature Extractor Level").
pub const DEFAULT_BIN_WIDTH: f64 = 25.0;
/// PyRadiomics' default `normalizeScale`.
pub const DEFAULT_NORMALIZE_SCALE: f64 = 1.0;
/// PyRadiomics' default `label`.
pub const DEFAULT_LABEL: u32 = 1;
/// PyRadiomics' default neighbour distance (`distances: [1]`).
pub const DEFAULT_DISTANCE_VOX: u32 = 1;
/// PyRadiomics computes features on ROIs of any size (`minimumROISize: None`).
pub const DEFAULT_MIN_VOXELS: usize = 1;
/// The slice axis PyRadiomics' `force2Ddimension` 0 selects (the z axis), the only one
/// radscore's 2.5D aggregation slices along.
pub const SUPPORTED_FORCE_2D_DIMENSION: i64 = 0;

/// A parameter file mapped onto radscore.
#[derive(Debug, Clone)]
pub struct PyRadiomicsParams {
    /// The settings (one profile, `other`, used for every location).
    pub settings: ExtractionSettings,
    /// `setting.label`: the mask label to extract.
    pub label: u32,
    /// The PyRadiomics features to output.
    pub selection: Selection,
    /// Features the enabled classes compute by default that radscore does not, as
    /// `class.Feature: reason`.
    pub unavailable: Vec<String>,
    /// Whether `force2D` is set (texture tags are then the 2.5D ones).
    pub force_2d: bool,
}

/// One refused key or value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Unsupported {
    /// Dotted path of the key, e.g. `setting.normalize`.
    pub key: String,
    /// The value found, as JSON.
    pub value: String,
    /// Why radscore cannot honour it.
    pub reason: String,
}

/// Why a parameter file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// Not YAML/JSON, or not a mapping at the top.
    #[error("the PyRadiomics parameter file cannot be read: {0}")]
    Parse(String),
    /// Keys or values radscore does not support, all of them.
    #[error("unsupported PyRadiomics parameters: {}", list(.0))]
    Unsupported(Vec<Unsupported>),
}

fn list(items: &[Unsupported]) -> String {
    items
        .iter()
        .map(|u| format!("{} = {} ({})", u.key, u.value, u.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parse a parameter file's text (YAML, of which JSON is a subset).
///
/// # Errors
/// See [`ParamsError`].
pub fn parse(text: &str, name: &str) -> Result<PyRadiomicsParams, ParamsError> {
    let doc: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| ParamsError::Parse(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| ParamsError::Parse(e.to_string()))?
    };
    from_value(&doc, name)
}

/// Map an already-parsed parameter document (e.g. the `pyradiomics_params` object of a
/// job request).
///
/// # Errors
/// See [`ParamsError`].
pub fn from_value(doc: &Value, name: &str) -> Result<PyRadiomicsParams, ParamsError> {
    let empty = serde_json::Map::new();
    let top = match doc {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => return Err(ParamsError::Parse("the top level must be a mapping".into())),
    };
    let mut refused = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "setting" | "imageType" | "featureClass" => {}
            "voxelSetting" => refuse(
                &mut refused,
                key,
                value,
                "voxel-based extraction (feature maps) is not supported",
            ),
            _ => refuse(
                &mut refused,
                key,
                value,
                "unknown top-level key; expected setting, imageType, featureClass",
            ),
        }
    }
    let (selection, unavailable) = feature_selection(top.get("featureClass"), &mut refused);
    let mapped = map_settings(top.get("setting"), &selection, &mut refused);
    let intensity_families: Vec<String> = families_for(&selection)
        .into_iter()
        .filter(|f| f != "morphology")
        .collect();
    let image_types = map_image_types(
        top.get("imageType"),
        top.get("setting"),
        &intensity_families,
        &mut refused,
    );
    if !refused.is_empty() {
        return Err(ParamsError::Unsupported(refused));
    }
    let (mut profile, label, force_2d) = mapped.expect("no refusal means the settings mapped");
    if !image_types.original {
        // Without `Original`, PyRadiomics still computes shape (on the original mask).
        profile.families.retain(|f| f == "morphology");
    }
    profile.image_filters = image_types.filters;
    let settings = ExtractionSettings {
        schema_version: SETTINGS_SCHEMA_VERSION,
        name: format!("pyradiomics:{name}"),
        profiles: BTreeMap::from([(Location::Other, profile)]),
    };
    // Re-run radscore's own validation (e.g. an empty re-segmentation range).
    let settings = serde_json::to_string(&settings)
        .map_err(|e| ParamsError::Parse(e.to_string()))
        .and_then(|json| {
            ExtractionSettings::from_json(&json).map_err(|e| {
                ParamsError::Unsupported(vec![Unsupported {
                    key: "setting".into(),
                    value: "…".into(),
                    reason: e.to_string(),
                }])
            })
        })?;
    Ok(PyRadiomicsParams {
        settings,
        label,
        selection,
        unavailable,
        force_2d,
    })
}

fn refuse(refused: &mut Vec<Unsupported>, key: &str, value: &Value, reason: &str) {
    refused.push(Unsupported {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    });
}

/// The enabled classes and features; PyRadiomics enables every class when the key is
/// absent.
fn feature_selection(
    classes: Option<&Value>,
    refused: &mut Vec<Unsupported>,
) -> (Selection, Vec<String>) {
    let Some(Value::Object(map)) = classes else {
        if let Some(v) = classes.filter(|v| !v.is_null()) {
            refuse(
                refused,
                "featureClass",
                v,
                "must be a mapping of feature classes",
            );
        }
        return (Selection::all_defaults(), default_unavailable(&CLASSES));
    };
    let mut selection = Selection::default();
    let mut enabled = Vec::new();
    for (class, features) in map {
        let key = format!("featureClass.{class}");
        if let Some((_, why)) = UNAVAILABLE_CLASSES.iter().find(|(c, _)| c == class) {
            refuse(refused, &key, features, why);
            continue;
        }
        let Some(&known) = CLASSES.iter().find(|c| **c == class.as_str()) else {
            refuse(refused, &key, features, "unknown PyRadiomics feature class");
            continue;
        };
        let list = match features {
            Value::Null => None,
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => {
                let mut names = Vec::new();
                for item in items {
                    let Some(feature) = item.as_str() else {
                        refuse(refused, &key, item, "feature names must be strings");
                        continue;
                    };
                    if let Some((_, _, why)) = UNAVAILABLE
                        .iter()
                        .find(|(c, f, _)| *c == known && *f == feature)
                    {
                        refuse(refused, &format!("{key}.{feature}"), item, why);
                    } else if !MAPPINGS
                        .iter()
                        .any(|m| m.class == known && m.feature == feature)
                    {
                        refuse(
                            refused,
                            &format!("{key}.{feature}"),
                            item,
                            "unknown feature",
                        );
                    } else {
                        names.push(feature.to_string());
                    }
                }
                Some(names)
            }
            other => {
                refuse(
                    refused,
                    &key,
                    other,
                    "must be null or a list of feature names",
                );
                continue;
            }
        };
        if list.is_none() {
            enabled.push(known);
        }
        selection.classes.insert(known, list);
    }
    (selection, default_unavailable(&enabled))
}

fn default_unavailable(classes: &[&str]) -> Vec<String> {
    UNAVAILABLE
        .iter()
        .filter(|(c, _, _)| classes.contains(c))
        .map(|(c, f, why)| format!("{c}.{f}: {why}"))
        .collect()
}

/// Map the `setting` section onto one [`FamilySettings`]; `None` when something was
/// refused.
fn map_settings(
    setting: Option<&Value>,
    selection: &Selection,
    refused: &mut Vec<Unsupported>,
) -> Option<(FamilySettings, u32, bool)> {
    let empty = serde_json::Map::new();
    let map = match setting {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(other) => {
            refuse(refused, "setting", other, "must be a mapping");
            return None;
        }
    };
    let before = refused.len();
    let mut r = SettingReader {
        map,
        refused: &mut *refused,
    };
    for key in map.keys() {
        if !KNOWN_SETTINGS.contains(&key.as_str()) {
            r.refuse(key, "unknown PyRadiomics setting");
        }
    }
    let label = r.uint("label").map_or(Ok(DEFAULT_LABEL), u32::try_from);
    let discretisation = match (r.uint("binCount"), r.positive("binWidth")) {
        (Some(bins), _) => Discretisation::FixedBinNumber {
            bins: u32::try_from(bins).unwrap_or(u32::MAX),
        },
        (None, width) => Discretisation::FixedBinSize {
            bin_width_hu: width.unwrap_or(DEFAULT_BIN_WIDTH),
            lower_bound_hu: None,
            pyradiomics_edges: true,
        },
    };
    let interpolation = r.interpolation();
    let (resegment_range_hu, resegment_outlier_sigma) = r.resegmentation();
    let normalisation = r.normalisation();
    let force_2d = r.force_2d();
    let texture_distance_vox = r.distance();
    let ngldm_alpha = r
        .uint("gldm_a")
        .map_or(0, |a| u32::try_from(a).unwrap_or(u32::MAX));
    let voxel_array_shift = r.number("voxelArrayShift");
    let min_voxels = r.uint("minimumROISize").map_or(DEFAULT_MIN_VOXELS, |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    r.require(
        "symmetricalGLCM",
        &Value::Bool(true),
        "radscore's GLCM is symmetric (IBSI 3.6)",
    );
    r.require(
        "weightingNorm",
        &Value::Null,
        "distance-weighted GLCM merging is not supported",
    );
    r.require(
        "resegmentShape",
        &Value::Bool(false),
        "re-segmentation applies to the intensity mask only (IBSI 2.1)",
    );
    r.require(
        "correctMask",
        &Value::Bool(false),
        "mask and image grids must match",
    );
    r.require(
        "geometryTolerance",
        &Value::Null,
        "radscore uses its own fixed geometry tolerance",
    );
    r.require(
        "label_channel",
        &Value::from(0),
        "multi-channel label maps are not supported",
    );
    for flag in ["preCrop", "additionalInfo", "enableCExtensions"] {
        r.boolean(flag);
    }
    if refused.len() > before {
        return None;
    }
    let families = families_for(selection);
    // Compute only what the selection outputs: IBSI-only work such as Moran's I or the
    // enclosing ellipsoids is skipped for a shape class that does not need it.
    let mut features: Vec<String> = Vec::new();
    for tag in selection
        .mappings()
        .iter()
        .map(|m| names::ibsi_tag(m, force_2d))
    {
        if !features.contains(&tag) {
            features.push(tag);
        }
    }
    let profile = FamilySettings {
        families,
        features: Some(features),
        resegment_range_hu,
        discretisation,
        ivh_discretisation: None,
        texture_distance_vox,
        ngldm_alpha,
        texture_aggregations: vec![if force_2d {
            TextureAggregation::D25Avg
        } else {
            TextureAggregation::D3Avg
        }],
        min_voxels,
        interpolation,
        resegment_outlier_sigma,
        voxel_array_shift,
        image_filters: Default::default(),
        normalisation,
    };
    match label {
        Ok(label) if label > 0 => Some((profile, label, force_2d)),
        _ => {
            refuse(
                refused,
                "setting.label",
                &map["label"],
                "must be a positive integer",
            );
            None
        }
    }
}

/// Settings PyRadiomics knows. Keys that configure image filters (`sigma`, `wavelet`,
/// `gradientUseSpacing`, `padDistance`, …) are read by [`map_image_types`]; without a
/// filtered image type they change nothing.
const KNOWN_SETTINGS: &[&str] = &[
    "minimumROIDimensions",
    "minimumROISize",
    "normalize",
    "normalizeScale",
    "removeOutliers",
    "resampledPixelSpacing",
    "interpolator",
    "preCrop",
    "padDistance",
    "distances",
    "force2D",
    "force2Ddimension",
    "resegmentRange",
    "resegmentMode",
    "resegmentShape",
    "label",
    "label_channel",
    "additionalInfo",
    "binWidth",
    "binCount",
    "voxelArrayShift",
    "symmetricalGLCM",
    "weightingNorm",
    "gldm_a",
    "geometryTolerance",
    "correctMask",
    "enableCExtensions",
    "sigma",
    "start_level",
    "level",
    "wavelet",
    "gradientUseSpacing",
    "lbp2DRadius",
    "lbp2DSamples",
    "lbp2DMethod",
    "lbp3DLevels",
    "lbp3DIcosphereRadius",
    "lbp3DIcosphereSubdivision",
];

/// The radscore families the selected PyRadiomics features need, in radscore order.
fn families_for(selection: &Selection) -> Vec<String> {
    let needed: Vec<&str> = selection.mappings().iter().map(|m| m.family).collect();
    crate::features::FAMILIES
        .iter()
        .filter(|f| needed.contains(&f.name))
        .map(|f| f.name.to_string())
        .collect()
}

/// Typed access to the `setting` mapping, collecting refusals.
struct SettingReader<'a> {
    map: &'a serde_json::Map<String, Value>,
    refused: &'a mut Vec<Unsupported>,
}

impl SettingReader<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn refuse(&mut self, key: &str, reason: &str) {
        let value = self.map.get(key).cloned().unwrap_or(Value::Null);
        refuse(self.refused, &format!("setting.{key}"), &value, reason);
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        match v.as_f64().filter(|x| x.is_finite()) {
            Some(x) => Some(x),
            None => {
                self.refuse(key, "must be a number");
                None
            }
        }
    }

    fn positive(&mut self, key: &str) -> Option<f64> {
        let x = self.number(key)?;
        if x > 0.0 {
            Some(x)
        } else {
            self.refuse(key, "must be > 0");
            None
        }
    }

    fn uint(&mut self, key: &str) -> Option<u64> {
        let v = self.get(key)?;
        match v.as_u64() {
            Some(n) => Some(n),
            None => {
                self.refuse(key, "must be a non-negative integer");
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.refuse(key, "must be true or false");
                false
            }
        }
    }

    /// The key, when present and not null, must equal `want`.
    fn require(&mut self, key: &str, want: &Value, reason: &str) {
        if let Some(v) = self.map.get(key)
            && v != want
            && !(want.is_null() && v.is_null())
        {
            self.refuse(key, reason);
        }
    }

    /// `resampledPixelSpacing` `[x, y, z]` mm with `interpolator`; PyRadiomics resamples
    /// the mask with nearest neighbour. A 0 spacing keeps the original spacing, which
    /// radscore supports for z only (in-plane resampling).
    // LIMITATION(#7): PyRadiomics aligns the resampled grid on the ROI bounding box corner, radscore on the image centre (IBSI 2.4), so resampled values differ slightly (see docs/pyradiomics-parity.md).
    fn interpolation(&mut self) -> Option<Interpolation> {
        let spacing = self.get("resampledPixelSpacing")?;
        let xyz: Option<Vec<f64>> = spacing
            .as_array()
            .filter(|a| a.len() == 3)
            .and_then(|a| a.iter().map(Value::as_f64).collect());
        let Some(xyz) = xyz.filter(|v| v.iter().all(|s| s.is_finite() && *s >= 0.0)) else {
            self.refuse("resampledPixelSpacing", "must be [x, y, z] in mm, each ≥ 0");
            return None;
        };
        let in_plane_only = xyz[2] == 0.0;
        if xyz[0] == 0.0 || xyz[1] == 0.0 {
            self.refuse(
                "resampledPixelSpacing",
                "keeping the original in-plane spacing (0 for x or y) is not supported",
            );
            return None;
        }
        let image_method = match self.get("interpolator") {
            None => ImageInterpolation::CubicSpline,
            Some(v) => match (v.as_str(), v.as_i64()) {
                (Some("sitkNearestNeighbor"), _) | (_, Some(1)) => ImageInterpolation::Nearest,
                (Some("sitkLinear"), _) | (_, Some(2)) => ImageInterpolation::Linear,
                (Some("sitkBSpline"), _) | (_, Some(3)) => ImageInterpolation::CubicSpline,
                _ => {
                    self.refuse(
                        "interpolator",
                        "only sitkNearestNeighbor, sitkLinear and sitkBSpline are supported",
                    );
                    return None;
                }
            },
        };
        Some(Interpolation {
            spacing_mm: [xyz[2], xyz[1], xyz[0]],
            in_plane_only,
            image_method,
            mask_method: MaskInterpolation::Nearest,
            mask_threshold: DEFAULT_MASK_THRESHOLD,
            round_intensities: false,
        })
    }

    /// `resegmentRange` with `resegmentMode` absolute (range) or sigma (symmetric only).
    fn resegmentation(&mut self) -> (Option<[f64; 2]>, Option<f64>) {
        let mode = match self.get("resegmentMode") {
            None => "absolute",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                self.refuse("resegmentMode", "must be absolute, relative or sigma");
                return (None, None);
            }
        }
        .to_string();
        let Some(range) = self.get("resegmentRange") else {
            return (None, None);
        };
        let bounds: Option<Vec<f64>> = range
            .as_array()
            .filter(|a| (1..=2).contains(&a.len()))
            .and_then(|a| a.iter().map(Value::as_f64).collect());
        let Some(bounds) = bounds else {
            self.refuse("resegmentRange", "must be [lower] or [lower, upper]");
            return (None, None);
        };
        match (mode.as_str(), bounds.as_slice()) {
            ("absolute", [lo, hi]) => (Some([*lo, *hi]), None),
            // One bound: PyRadiomics keeps everything above it.
            ("absolute", [lo]) => (Some([*lo, f64::MAX]), None),
            ("sigma", [lo, hi]) if *lo == -*hi && *hi > 0.0 => (None, Some(*hi)),
            ("sigma", _) => {
                self.refuse(
                    "resegmentRange",
                    "with resegmentMode sigma only a symmetric range [-k, k] is supported",
                );
                (None, None)
            }
            _ => {
                self.refuse("resegmentMode", "only absolute and sigma are supported");
                (None, None)
            }
        }
    }

    /// `normalize` with `normalizeScale` (default 1) and `removeOutliers` (in σ; only act
    /// with `normalize`, as in PyRadiomics).
    fn normalisation(&mut self) -> Option<Normalisation> {
        let normalize = self.boolean("normalize");
        let scale = self.number("normalizeScale");
        let outliers = self.positive("removeOutliers");
        normalize.then(|| Normalisation {
            scale: scale.unwrap_or(DEFAULT_NORMALIZE_SCALE),
            remove_outliers_sigma: outliers,
        })
    }

    /// `force2D` with `force2Ddimension` 0 (slices along z).
    fn force_2d(&mut self) -> bool {
        let force = self.boolean("force2D");
        if let Some(dim) = self.get("force2Ddimension") {
            match dim.as_i64() {
                Some(SUPPORTED_FORCE_2D_DIMENSION) => {}
                Some(_) if !force => {}
                _ => self.refuse(
                    "force2Ddimension",
                    "radscore slices along the image's slice axis only (dimension 0)",
                ),
            }
        }
        force
    }

    /// `distances`: exactly one distance.
    fn distance(&mut self) -> u32 {
        let Some(v) = self.get("distances") else {
            return DEFAULT_DISTANCE_VOX;
        };
        match v.as_array().map(Vec::as_slice) {
            Some([d]) => match d.as_u64().and_then(|d| u32::try_from(d).ok()) {
                Some(d) if d > 0 => d,
                _ => {
                    self.refuse("distances", "must hold one positive integer");
                    DEFAULT_DISTANCE_VOX
                }
            },
            _ => {
                self.refuse(
                    "distances",
                    "radscore computes texture at one distance; give exactly one",
                );
                DEFAULT_DISTANCE_VOX
            }
        }
    }
}

/// Names of PyRadiomics output columns these parameters produce, without diagnostics:
/// shape, the original image's other classes (with `Original`), then every filtered
/// image's non-shape classes, in `imageType` order.
pub fn output_names(params: &PyRadiomicsParams) -> Vec<String> {
    let profile = params.settings.for_location(Location::Other);
    let mappings = params.selection.mappings();
    let original_intensity = profile.families.iter().any(|f| f != "morphology");
    let mut out: Vec<String> = mappings
        .iter()
        .filter(|m| m.class == "shape" || original_intensity)
        .map(|m| names::pyradiomics_name(names::ORIGINAL_IMAGE_TYPE, m))
        .collect();
    for image in &profile.image_filters.images {
        let image_type = image.filter.image_type();
        out.extend(
            mappings
                .iter()
                .filter(|m| m.class != "shape")
                .map(|m| names::pyradiomics_name(&image_type, m)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_pyradiomics() {
        let p = parse("setting:\n  binWidth: 10\n  voxelArrayShift: 1000\n", "t").unwrap();
        let s = p.settings.for_location(Location::Other);
        assert_eq!(
            s.discretisation,
            Discretisation::FixedBinSize {
                bin_width_hu: 10.0,
                lower_bound_hu: None,
                pyradiomics_edges: true
            }
        );
        assert_eq!(s.voxel_array_shift, Some(1000.0));
        assert_eq!(s.texture_aggregations, vec![TextureAggregation::D3Avg]);
        assert_eq!(p.label, 1);
        assert!(p.unavailable.iter().any(|u| u.starts_with("glcm.MCC")));
        assert_eq!(s.families.len(), 9);
    }

    #[test]
    fn every_refusal_is_named() {
        let text = "setting:\n  resegmentMode: relative\n  resegmentRange: [0.5]\n  distances: [1, 2]\n  bogus: 3\n\
                    imageType:\n  LBP3D: {}\nfeatureClass:\n  glcm: [MCC]\n";
        let Err(ParamsError::Unsupported(list)) = parse(text, "t") else {
            panic!("refused expected");
        };
        let keys: Vec<&str> = list.iter().map(|u| u.key.as_str()).collect();
        for key in [
            "setting.resegmentMode",
            "setting.distances",
            "setting.bogus",
            "imageType.LBP3D",
            "featureClass.glcm.MCC",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn resampling_force2d_and_sigma_resegmentation_map() {
        let text = r#"{"setting": {"resampledPixelSpacing": [2, 2, 0], "interpolator": "sitkLinear",
            "force2D": true, "resegmentRange": [-3, 3], "resegmentMode": "sigma", "binCount": 16},
            "featureClass": {"glcm": ["Contrast"]}}"#;
        let p = parse(text, "t").unwrap();
        let s = p.settings.for_location(Location::Other);
        let i = s.interpolation.as_ref().unwrap();
        assert!(i.in_plane_only);
        assert_eq!(i.spacing_mm[1..], [2.0, 2.0]);
        assert_eq!(i.image_method, ImageInterpolation::Linear);
        assert_eq!(s.resegment_outlier_sigma, Some(3.0));
        assert_eq!(
            s.discretisation,
            Discretisation::FixedBinNumber { bins: 16 }
        );
        assert_eq!(s.families, vec!["glcm".to_string()]);
        // Only the selected feature is computed, under its force2D (2.5D) tag.
        assert_eq!(s.features, Some(vec!["cm_contrast_2_5D_avg".to_string()]));
        assert_eq!(
            crate::features::feature_names(s),
            vec!["cm_contrast_2_5D_avg".to_string()]
        );
        assert_eq!(s.texture_aggregations, vec![TextureAggregation::D25Avg]);
        assert_eq!(output_names(&p), vec!["original_glcm_Contrast".to_string()]);
    }
}
