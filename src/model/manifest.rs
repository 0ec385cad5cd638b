//! `manifest.json`: what a model expects and what it is for.
//!
//! Written by `training/train.py`; read by [`super::Model::load`]. The manifest pins the
//! exact feature vector (names in input order) and the extraction settings (the full
//! settings object and its [`ExtractionSettings::hash`]); a model is only used with an
//! extractor that reproduces both.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::acquisition::AcquisitionEnvelope;
use crate::features::ExtractionSettings;
use crate::features::settings::SettingsError;

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest schema version this build reads.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// A model's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Must equal [`MANIFEST_SCHEMA_VERSION`].
    pub manifest_version: u32,
    /// Model name, e.g. `radscore-demo-logreg`.
    pub name: String,
    /// Model version, e.g. `0.1.0`.
    pub version: String,
    /// True for a model trained on synthetic data only; clients must show it.
    pub synthetic_demo: bool,
    /// Plain-language intended use and its limits.
    pub intended_use: String,
    /// Feature names in the model's input order.
    pub feature_names: Vec<String>,
    /// The full extraction settings object the training features were computed with.
    pub extraction_settings: serde_json::Value,
    /// [`ExtractionSettings::hash`] of `extraction_settings`.
    pub settings_hash: String,
    /// The graph input.
    pub input: InputSpec,
    /// The graph output that carries the probability.
    pub output: OutputSpec,
    /// What the model was trained on.
    pub training_data: TrainingData,
    /// How well it did, and how that was measured.
    pub metrics: Metrics,
    /// Per-feature `[min, max]` seen in training (written by `training/pipeline.py`); a
    /// lesion outside it is flagged out of distribution. Empty: no check.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub training_ranges: BTreeMap<String, FeatureRange>,
    /// Linear-model terms for per-lesion contributions, when the model is linear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<LinearExplanation>,
    /// Robustness class of each feature per lesion location (`radscore robustness`):
    /// location → feature → `excellent` | `good` | `poor`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub robustness: BTreeMap<String, BTreeMap<String, String>>,
    /// The acquisition envelope of the training series, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquisition: Option<AcquisitionEnvelope>,
}

/// The range of one feature over the training lesions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureRange {
    pub min: f64,
    pub max: f64,
}

/// A logistic model written as `logit = intercept + Σ coefficient · (x − mean) / scale`
/// (the scaler and calibrated logistic layer of `training/pipeline.py`, folded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearExplanation {
    /// Logit at the training mean.
    pub intercept: f64,
    /// One term per model feature, by name.
    pub terms: BTreeMap<String, LinearTerm>,
}

/// One standardised linear term.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearTerm {
    /// Coefficient of the standardised value, in logit units per standard deviation.
    pub coefficient: f64,
    /// Training mean of the feature.
    pub mean: f64,
    /// Training standard deviation of the feature (> 0).
    pub scale: f64,
}

/// The graph's single input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input name in the ONNX graph (skl2onnx: the name given in `initial_types`).
    pub name: String,
    /// Element type; only `float32` is supported.
    pub dtype: String,
}

/// The graph output read by [`super::Model::predict`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Output name in the ONNX graph (skl2onnx with `zipmap: False`: `probabilities`).
    pub name: String,
    /// Column of the `[batch, classes]` output that holds the probability returned.
    pub probability_column: usize,
    /// What that probability means, e.g. "P(responder) ...".
    pub semantics: String,
}

/// Provenance of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    /// How the data were made or collected, and how the outcome was defined.
    pub description: String,
    /// Number of patients.
    pub n_patients: usize,
    /// Number of lesions (rows).
    pub n_lesions: usize,
    /// Number of lesions with outcome 1 (responders).
    pub n_positive: usize,
    /// `sha256:` + hex digest of the training table file.
    pub fingerprint: String,
}

/// Evaluation results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// How the numbers below were obtained (e.g. "5-fold GroupKFold by patient").
    pub validation: String,
    /// Mean ROC AUC over the validation folds.
    pub cv_auc_mean: f64,
    /// Standard deviation of the fold AUCs.
    pub cv_auc_std: f64,
    /// AUC per fold.
    pub cv_auc_folds: Vec<f64>,
    /// Further numbers (e.g. resubstitution AUC, Brier score).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    /// Read `path`, parse it and check it is consistent with itself.
    ///
    /// # Errors
    /// [`ModelError::Io`] and [`ModelError::ManifestParse`] naming the file;
    /// [`ModelError::ManifestInvalid`] from [`Manifest::validate`].
    pub fn read(path: &Path) -> Result<Manifest, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|source| ModelError::ManifestParse {
                path: path.to_path_buf(),
                source,
            })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Check the manifest's internal consistency.
    ///
    /// # Errors
    /// [`ModelError::ManifestInvalid`] for an unknown schema version, an empty or duplicated
    /// feature name, an unsupported input type, or settings whose hash is not
    /// `settings_hash`. Settings this build cannot read (an older settings schema) are not
    /// an error here: such a model is valid but incompatible, which
    /// [`Manifest::check_compatible`] reports with both hashes.
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |msg: String| Err(ModelError::ManifestInvalid(msg));
        if self.manifest_version != MANIFEST_SCHEMA_VERSION {
            return invalid(format!(
                "manifest_version {} is not supported (expected {MANIFEST_SCHEMA_VERSION})",
                self.manifest_version
            ));
        }
        if self.feature_names.is_empty() {
            return invalid("feature_names is empty".to_owned());
        }
        if let Some(i) = self.feature_names.iter().position(|n| n.trim().is_empty()) {
            return invalid(format!("feature_names[{i}] is empty"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.feature_names.iter().find(|n| !seen.insert(n.as_str())) {
            return invalid(format!("feature name '{dup}' appears twice"));
        }
        if self.input.dtype != "float32" {
            return invalid(format!(
                "input dtype '{}' is not supported (float32)",
                self.input.dtype
            ));
        }
        self.check_annotations()?;
        self.check_settings_hash()
    }

    /// Training ranges, linear terms and robustness classes may only name model features
    /// and must hold usable numbers.
    fn check_annotations(&self) -> Result<(), ModelError> {
        let invalid = |msg: String| Err(ModelError::ManifestInvalid(msg));
        let is_model_feature = |n: &String| self.feature_names.contains(n);
        for (name, range) in &self.training_ranges {
            if !is_model_feature(name) {
                return invalid(format!(
                    "training_ranges names '{name}', not a model feature"
                ));
            }
            if !(range.min.is_finite() && range.max.is_finite() && range.min <= range.max) {
                return invalid(format!(
                    "training_ranges['{name}'] is [{}, {}]; expected finite min <= max",
                    range.min, range.max
                ));
            }
        }
        if let Some(explanation) = &self.explanation {
            for (name, term) in &explanation.terms {
                if !is_model_feature(name) {
                    return invalid(format!("explanation names '{name}', not a model feature"));
                }
                let finite = term.coefficient.is_finite() && term.mean.is_finite();
                if !(finite && term.scale.is_finite() && term.scale > 0.0) {
                    return invalid(format!(
                        "explanation term '{name}' needs finite coefficient and mean and a \
                         positive scale"
                    ));
                }
            }
        }
        if let Some(envelope) = &self.acquisition {
            let ranges = [
                ("slice_thickness_mm", envelope.slice_thickness_mm),
                ("pixel_spacing_mm", envelope.pixel_spacing_mm),
                ("kvp", envelope.kvp),
            ];
            for (name, range) in ranges {
                if let Some(r) = range
                    && !(r.min.is_finite() && r.max.is_finite() && r.min <= r.max)
                {
                    return invalid(format!(
                        "acquisition.{name} is [{}, {}]; expected finite min <= max",
                        r.min, r.max
                    ));
                }
            }
        }
        for (location, classes) in &self.robustness {
            if let Some(name) = classes.keys().find(|n| !is_model_feature(n)) {
                return invalid(format!(
                    "robustness['{location}'] names '{name}', not a model feature"
                ));
            }
        }
        Ok(())
    }

    /// The embedded settings object must hash to `settings_hash`, so that neither can be
    /// edited without the other (checked when this build can read the object).
    fn check_settings_hash(&self) -> Result<(), ModelError> {
        let Ok(settings) = self.embedded_settings() else {
            return Ok(());
        };
        let computed = settings.hash();
        if computed != self.settings_hash {
            return Err(ModelError::ManifestInvalid(format!(
                "settings_hash is {} but extraction_settings hash to {computed}",
                self.settings_hash
            )));
        }
        Ok(())
    }

    /// The embedded settings object, parsed and validated by this build.
    pub fn embedded_settings(&self) -> Result<ExtractionSettings, SettingsError> {
        ExtractionSettings::from_json(&self.extraction_settings.to_string())
    }

    /// Refuse an extractor that does not compute every feature the model uses, or uses
    /// other settings. A model may use any subset of the extractor's features, in any
    /// order: its input row is selected by name ([`Manifest::select_row`]).
    ///
    /// # Errors
    /// [`ModelError::UnknownFeatures`] naming every feature the extractor lacks;
    /// [`ModelError::IncompatibleSettings`] with both hashes.
    pub fn check_compatible(&self, settings: &ExtractionSettings) -> Result<(), ModelError> {
        let extractor: std::collections::HashSet<String> =
            settings.feature_names().into_iter().collect();
        let unknown: Vec<String> = self
            .feature_names
            .iter()
            .filter(|n| !extractor.contains(*n))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(ModelError::UnknownFeatures {
                unknown,
                extractor_count: extractor.len(),
            });
        }

        let extractor_hash = settings.hash();
        if extractor_hash != self.settings_hash {
            return Err(ModelError::IncompatibleSettings {
                model_hash: self.settings_hash.clone(),
                extractor_hash,
            });
        }
        // Equal hashes but an unreadable settings object: the manifest was edited.
        self.embedded_settings().map(|_| ()).map_err(|e| {
            ModelError::ManifestInvalid(format!(
                "settings_hash matches the extractor but extraction_settings cannot be read: {e}"
            ))
        })
    }

    /// The model's input row from a lesion's features, picked by name in
    /// [`Manifest::feature_names`] order; `None` names the first feature `value_of` lacks.
    pub fn select_row(&self, value_of: impl Fn(&str) -> Option<f64>) -> Result<Vec<f64>, &str> {
        self.feature_names
            .iter()
            .map(|n| value_of(n).ok_or(n.as_str()))
            .collect()
    }
}
