//! The job result document: one entry per requested lesion, every field always present.

use serde::{Deserialize, Serialize};

use crate::dicom::acquisition::Acquisition;
use crate::features::{ExtractionSettings, Location};
use crate::jobs::SettingsSource;
use crate::model::{LesionExplanation, SubModelSpec};
use crate::pipeline::{LesionError, LesionFeatures};
use crate::pyradiomics::names::Naming;
use crate::robustness::interval::PredictionInterval;

/// Stated on every result of a model whose manifest marks it as a synthetic demo.
pub const SYNTHETIC_MODEL_DISCLAIMER: &str = "The response probabilities come from a \
     synthetic demonstration model trained on generated data. They are not validated and \
     must not be used for clinical decisions.";

/// Which model produced the probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Registry id (`null` in results from before the registry, and offline extraction).
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the ONNX file.
    pub sha256: String,
    /// Whether the model is the synthetic demo model.
    pub synthetic_demo: bool,
    /// The settings hash the model was trained with (equal to the result's).
    #[serde(default)]
    pub settings_hash: Option<String>,
    /// For a location-aware bundle, its sub-models (each lesion names the one it used);
    /// `null` for a single model. `sha256` above is then the bundle digest.
    #[serde(default)]
    pub sub_models: Option<Vec<SubModelRef>>,
}

/// A sub-model of a location-aware bundle, as results record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubModelRef {
    /// Sub-model id within the bundle.
    pub id: String,
    /// Its manifest's name and version.
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of its ONNX graph.
    pub sha256: String,
    /// The locations it scores.
    pub locations: Vec<Location>,
}

impl SubModelRef {
    /// The record of a registered sub-model.
    pub fn of(sub: &SubModelSpec) -> SubModelRef {
        SubModelRef {
            id: sub.id.clone(),
            name: sub.manifest.name.clone(),
            version: sub.manifest.version.clone(),
            sha256: sub.sha256.clone().unwrap_or_default(),
            locations: sub.locations.clone(),
        }
    }
}

/// The result of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub series_id: String,
    pub series_uid: String,
    pub segmentation_id: String,
    pub model: ModelSummary,
    /// Name of the extraction settings set.
    pub settings_name: String,
    /// Hash of the effective extraction settings (see `features::settings`).
    pub settings_hash: String,
    /// The effective extraction settings themselves (`null` in results from before
    /// per-job settings).
    #[serde(default)]
    pub settings: Option<ExtractionSettings>,
    /// Where the settings came from (`service`, `settings`, `pyradiomics_params`).
    #[serde(default)]
    pub settings_source: Option<SettingsSource>,
    /// How the lesions' `features` are named: `ibsi` tags or `pyradiomics` names.
    #[serde(default)]
    pub naming: Naming,
    /// Present (non-null) when the model is not for clinical use.
    pub disclaimer: Option<String>,
    /// The series' acquisition attributes checked against the model's training envelope.
    #[serde(default)]
    pub acquisition: Option<Acquisition>,
    pub lesions: Vec<LesionResult>,
    /// Patient-level summary of the lesions (a job holds lesions of one patient); `null`
    /// in results stored before it existed.
    #[serde(default)]
    pub patient_summary: Option<PatientSummary>,
}

/// IBSI morphology feature summed for the RECIST-like tumour burden: mesh volume
/// (IBSI 1 section 3.1.1, RNU0), mm³.
pub const VOLUME_FEATURE: &str = "morph_volume";

/// IBSI morphology feature summed for the RECIST-like diameter sum: maximum 3D diameter
/// (IBSI 1 section 3.1.11, L0JK), mm.
pub const DIAMETER_FEATURE: &str = "morph_diam";

/// The patient-level view of a job's lesions, beside the per-lesion values.
///
/// Aggregation (documented in the README and openapi.yaml): `mean_probability` and
/// `max_probability` over the scored lesions (`status` `ok` with a probability); the
/// sums over every lesion with features (scored or unscored), like the RECIST 1.1 sum of
/// target-lesion diameters but with the 3D maximum diameter and the mesh volume.
// LIMITATION: no RECIST target-lesion selection (≤ 5 lesions, ≤ 2 per organ) and no axial
// longest diameter: every requested lesion counts, with its 3D maximum diameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientSummary {
    /// Lesions requested.
    pub lesions: usize,
    /// Lesions with a probability.
    pub scored: usize,
    /// Lesions with features but no probability (refused series, uncovered location).
    pub unscored: usize,
    /// Lesions whose features could not be computed.
    pub failed: usize,
    /// Arithmetic mean of the scored lesions' probabilities; `null` when none is scored.
    pub mean_probability: Option<f64>,
    /// Largest probability and its lesion's label; `null` when none is scored.
    pub max_probability: Option<f64>,
    pub max_probability_label: Option<u32>,
    /// Lesions contributing to the sums (those with both features).
    pub measured: usize,
    /// Σ [`VOLUME_FEATURE`] over the measured lesions, mm³; `null` when none is measured.
    pub sum_volume_mm3: Option<f64>,
    /// Σ [`DIAMETER_FEATURE`] over the measured lesions, mm; `null` when none is measured.
    pub sum_max_diameter_mm: Option<f64>,
}

impl PatientSummary {
    /// Summarise the lesion results.
    pub fn of(lesions: &[LesionResult]) -> PatientSummary {
        let scored: Vec<(u32, f64)> = lesions
            .iter()
            .filter(|l| l.status == "ok")
            .filter_map(|l| Some((l.label, l.response_probability?)))
            .collect();
        let max = scored.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        let measured: Vec<(f64, f64)> = lesions
            .iter()
            .filter_map(|l| {
                let volume = l.features.get(VOLUME_FEATURE)?.as_f64()?;
                let diameter = l.features.get(DIAMETER_FEATURE)?.as_f64()?;
                Some((volume, diameter))
            })
            .collect();
        let sum = |f: fn(&(f64, f64)) -> f64| {
            (!measured.is_empty()).then(|| measured.iter().map(f).sum::<f64>())
        };
        PatientSummary {
            lesions: lesions.len(),
            scored: scored.len(),
            unscored: lesions.iter().filter(|l| l.status == "unscored").count(),
            failed: lesions.iter().filter(|l| l.status == "error").count(),
            mean_probability: (!scored.is_empty())
                .then(|| scored.iter().map(|s| s.1).sum::<f64>() / scored.len() as f64),
            max_probability: max.map(|m| m.1),
            max_probability_label: max.map(|m| m.0),
            measured: measured.len(),
            sum_volume_mm3: sum(|m| m.0),
            sum_max_diameter_mm: sum(|m| m.1),
        }
    }
}

/// The result for one lesion. Every field is always present; `response_probability` and
/// `error` are `null` when not applicable and `features` is empty on error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionResult {
    pub label: u32,
    pub name: Option<String>,
    pub location: Location,
    pub voxel_count: usize,
    /// `ok`, `error` (no features) or `unscored` (features, but no probability: the model
    /// refuses the series, or no sub-model covers the lesion's location; see `error`).
    pub status: String,
    /// P(responder) from the model, in [0, 1].
    pub response_probability: Option<f64>,
    /// Every computed feature value by IBSI tag, or by PyRadiomics name with
    /// `naming: pyradiomics` (the model may use a subset).
    pub features: serde_json::Map<String, serde_json::Value>,
    pub warnings: Vec<String>,
    pub error: Option<LesionError>,
    /// Out-of-distribution check, top contributions and robustness classes of the used
    /// features; `null` when the lesion was not scored.
    #[serde(default)]
    pub trust: Option<LesionExplanation>,
    /// The bundle sub-model that scored (or refused) the lesion; `null` for a single model
    /// and for a lesion no sub-model covers.
    #[serde(default)]
    pub sub_model: Option<SubModelRef>,
    /// Spread of the probability over perturbed re-extractions
    /// ([`crate::robustness::interval`]); `null` when not scored, when the job turned
    /// intervals off, or when no perturbation could be computed.
    #[serde(default)]
    pub prediction_interval: Option<PredictionInterval>,
}

impl LesionResult {
    /// Combine a lesion's features with its probability (`None` on error).
    pub fn new(lesion: &LesionFeatures, probability: Option<f64>) -> Self {
        let mut features = serde_json::Map::new();
        let (status, error) = match &lesion.features {
            Ok(values) => {
                for f in values {
                    // Finite by construction (features::compute_all); from_f64 refuses NaN/∞.
                    if let Some(n) = serde_json::Number::from_f64(f.value) {
                        features.insert(f.name.clone(), serde_json::Value::Number(n));
                    }
                }
                ("ok", None)
            }
            Err(e) => ("error", Some(e.clone())),
        };
        LesionResult {
            label: lesion.request.label,
            name: lesion.name.clone(),
            location: lesion.request.location,
            voxel_count: lesion.voxel_count,
            status: status.into(),
            response_probability: probability.filter(|p| p.is_finite()),
            features,
            warnings: Vec::new(),
            error,
            trust: None,
            sub_model: None,
            prediction_interval: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results are stored as JSON and read back for the report, the SR and the CSV: a
    /// feature value must come back bit for bit. serde_json's default float parser is
    /// only correct to within one ulp; the `float_roundtrip` feature (Cargo.toml) makes
    /// it exact. Values: a xorshift sweep over all exponents and over HU-like magnitudes.
    #[test]
    fn stored_feature_values_read_back_bit_for_bit() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut features = serde_json::Map::new();
        let mut written = Vec::new();
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 2 == 0 {
                f64::from_bits(x)
            } else {
                (x >> 11) as f64 / (1_u64 << 40) as f64 - 1000.0
            };
            if let Some(n) = serde_json::Number::from_f64(v) {
                features.insert(format!("f{i}"), serde_json::Value::Number(n));
                written.push((format!("f{i}"), v));
            }
        }
        let json = serde_json::to_string(&features).unwrap();
        let back: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
        let off: Vec<String> = written
            .iter()
            .filter(|(k, v)| back[k].as_f64().map(f64::to_bits) != Some(v.to_bits()))
            .map(|(k, v)| format!("{k}: {v:e} read back as {}", back[k]))
            .take(3)
            .collect();
        assert!(off.is_empty(), "{off:?}");
    }

    fn lesion(
        label: u32,
        status: &str,
        p: Option<f64>,
        volume_diam: Option<(f64, f64)>,
    ) -> LesionResult {
        let mut features = serde_json::Map::new();
        if let Some((v, d)) = volume_diam {
            features.insert(VOLUME_FEATURE.into(), serde_json::json!(v));
            features.insert(DIAMETER_FEATURE.into(), serde_json::json!(d));
        }
        LesionResult {
            label,
            name: None,
            location: Location::Other,
            voxel_count: 1,
            status: status.into(),
            response_probability: p,
            features,
            warnings: Vec::new(),
            error: None,
            trust: None,
            sub_model: None,
            prediction_interval: None,
        }
    }

    /// Worked by hand: scored 0.2, 0.9, 0.4 → mean 0.5, max 0.9 (label 2); volumes
    /// 1000 + 500 + 250 + 4000 (the unscored lesion counts) = 5750 mm³; diameters
    /// 12.5 + 10 + 8 + 20 = 50.5 mm; the failed lesion counts in neither.
    #[test]
    fn patient_summary_aggregates_as_documented() {
        let lesions = [
            lesion(1, "ok", Some(0.2), Some((1000.0, 12.5))),
            lesion(2, "ok", Some(0.9), Some((500.0, 10.0))),
            lesion(3, "ok", Some(0.4), Some((250.0, 8.0))),
            lesion(4, "unscored", None, Some((4000.0, 20.0))),
            lesion(5, "error", None, None),
        ];
        let s = PatientSummary::of(&lesions);
        assert_eq!((s.lesions, s.scored, s.unscored, s.failed), (5, 3, 1, 1));
        assert!((s.mean_probability.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            (s.max_probability, s.max_probability_label),
            (Some(0.9), Some(2))
        );
        assert_eq!(s.measured, 4);
        assert_eq!(s.sum_volume_mm3, Some(5750.0));
        assert_eq!(s.sum_max_diameter_mm, Some(50.5));
    }

    #[test]
    fn nothing_scored_gives_nulls() {
        let s = PatientSummary::of(&[lesion(1, "error", None, None)]);
        assert_eq!((s.scored, s.failed), (0, 1));
        assert_eq!((s.mean_probability, s.max_probability), (None, None));
        assert_eq!((s.sum_volume_mm3, s.sum_max_diameter_mm), (None, None));
    }
}
