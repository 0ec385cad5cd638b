//! The job result document: one entry per requested lesion, every field always present.

use serde::{Deserialize, Serialize};

use crate::dicom::acquisition::Acquisition;
use crate::features::{ExtractionSettings, Location};
use crate::jobs::SettingsSource;
use crate::model::LesionExplanation;
use crate::pipeline::{LesionError, LesionFeatures};
use crate::pyradiomics::names::Naming;

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
}

/// The result for one lesion. Every field is always present; `response_probability` and
/// `error` are `null` when not applicable and `features` is empty on error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LesionResult {
    pub label: u32,
    pub name: Option<String>,
    pub location: Location,
    pub voxel_count: usize,
    /// `ok`, `error` (no features) or `unscored` (features, but the model refuses the
    /// series: see `error`).
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
        }
    }
}
