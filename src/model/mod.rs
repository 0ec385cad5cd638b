//! The response model: an ONNX graph plus a manifest that says what it expects.
//!
//! A model directory holds two files:
//!
//! * `model.onnx` — a binary classifier exported by skl2onnx (see `training/`): one input
//!   (`float32 [batch, n_features]`) and an output whose column `probability_column` is
//!   P(responder).
//! * `manifest.json` — a [`Manifest`]: name, version, intended use, the feature names in
//!   input order, the extraction settings the model was trained with and their hash, and
//!   how it was trained and evaluated.
//!
//! A location-aware bundle ([`Bundle`]) holds one such model per lesion location; see
//! [`BundleManifest`] for its manifest and [`LoadedModel::route`] for routing.
//!
//! [`Model::load`] checks that the two agree; [`Model::check_compatible`] checks that the
//! extractor of this build produces exactly the features the model was trained on, with
//! the same settings; [`Model::predict`] scores feature rows.
//!
//! The ONNX Runtime shared library is loaded at run time ([`init_runtime`]), once per
//! process; `scripts/setup.sh ort` fetches it into `.ort/lib/`.

mod acquisition;
mod bundle;
mod explain;
mod manifest;
mod probe;
mod runtime;
mod scoring;

#[cfg(test)]
mod tests;

pub use acquisition::{AcquisitionEnvelope, OnViolation};
pub use bundle::{
    BUNDLE_SCHEMA_VERSION, Bundle, BundleManifest, LoadedModel, MAX_SUB_MODEL_ID_CHARS, Route,
    SUB_MODEL_FIELD_PREFIX, SubModelSpec, bundle_sha256, in_sub_model, valid_sub_model_id,
};
pub use explain::{
    Contribution, LesionExplanation, OutOfRange, TOP_CONTRIBUTIONS, UNASSESSED_ROBUSTNESS, explain,
};
pub use manifest::{
    FeatureRange, InputSpec, LinearExplanation, LinearTerm, MANIFEST_FILE, MANIFEST_SCHEMA_VERSION,
    Manifest, Metrics, OutputSpec, TrainingData,
};
pub use probe::{PROBE_MAGNITUDE, ROW_SUM_TOLERANCE};
pub use runtime::{DEFAULT_LIBRARY_RELATIVE, ORT_DYLIB_PATH_ENV, init_runtime, loaded_library};
pub use scoring::{MODEL_FILE, Model, ModelInfo, onnx_sha256};

use std::path::PathBuf;

/// Why a model could not be loaded, checked or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ONNX Runtime shared library was not found in any searched place.
    #[error(
        "ONNX Runtime library not found; looked in: {}. Run `scripts/setup.sh ort` to fetch it \
         into .ort/lib/, or set {} to the path of libonnxruntime.so",
        display_paths(searched),
        runtime::ORT_DYLIB_PATH_ENV
    )]
    RuntimeNotFound {
        /// Every path that was tried, in order.
        searched: Vec<PathBuf>,
    },
    /// The library exists but could not be loaded (wrong file, too old a version).
    #[error("cannot load ONNX Runtime from {}: {reason}", path.display())]
    RuntimeLoad { path: PathBuf, reason: String },
    /// The ONNX Runtime environment could not be created.
    #[error("cannot create the ONNX Runtime environment: {0}")]
    RuntimeInit(String),
    /// A model file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `manifest.json` is not valid JSON for [`Manifest`].
    #[error("{} is not a valid model manifest: {source}", path.display())]
    ManifestParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `manifest.json` parses but is inconsistent (with itself or with `model.onnx`).
    #[error("invalid model manifest: {0}")]
    ManifestInvalid(String),
    /// ONNX Runtime refused the graph.
    #[error("cannot create an ONNX Runtime session for {}: {reason}", path.display())]
    Session { path: PathBuf, reason: String },
    /// The graph's inputs or outputs do not match the manifest.
    #[error("model signature does not match its manifest: {0}")]
    Signature(String),
    /// The model uses features this extractor does not compute.
    #[error(
        "the model uses {} feature(s) this extractor does not compute ({} computed): {}",
        unknown.len(),
        extractor_count,
        unknown.join(", ")
    )]
    UnknownFeatures {
        /// Every model feature the extractor lacks, in model order.
        unknown: Vec<String>,
        extractor_count: usize,
    },
    /// The model was trained with other extraction settings than those in use.
    #[error(
        "model was trained with extraction settings {model_hash}, but the extractor uses \
         {extractor_hash}"
    )]
    IncompatibleSettings {
        model_hash: String,
        extractor_hash: String,
    },
    /// A feature row cannot be scored (wrong length or a non-finite value).
    #[error("row {row}: {reason}")]
    InvalidInput { row: usize, reason: String },
    /// The graph's output is not a probability (found by scoring probe rows).
    #[error("the model output is not a probability: {0}")]
    NotProbability(String),
    /// ONNX Runtime failed while scoring, or returned something unusable.
    #[error("inference failed: {0}")]
    Inference(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(nowhere)".to_owned();
    }
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}
