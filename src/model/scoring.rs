//! A loaded model: the ONNX Runtime session behind a mutex, and its manifest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::Array2;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{MANIFEST_FILE, Manifest};
use super::{ModelError, runtime};
use crate::features::ExtractionSettings;

/// File name of the ONNX graph inside a model directory.
pub const MODEL_FILE: &str = "model.onnx";

/// ONNX Runtime intra-op threads per session. Scoring a few lesions with a linear model
/// takes microseconds; parallelism comes from the worker pool, not from inside one call.
const INTRA_OP_THREADS: usize = 1;

/// A response model ready to score feature rows.
///
/// `Session::run` needs `&mut`, so the session sits behind a [`Mutex`]; [`Model::predict`]
/// blocks, and async callers run it inside `tokio::task::spawn_blocking`.
#[derive(Debug)]
pub struct Model {
    manifest: Manifest,
    sha256: String,
    /// Where the model came from (a directory, or a registry blob), for messages.
    origin: PathBuf,
    session: Mutex<Session>,
}

/// The identity of a loaded model, for results and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// `sha256:` + hex digest of `model.onnx`.
    pub sha256: String,
    /// True for a model trained on synthetic data only.
    pub synthetic_demo: bool,
}

impl Model {
    /// Load `dir/manifest.json` and `dir/model.onnx` and check that they agree.
    ///
    /// Initialises ONNX Runtime with the default search of [`super::init_runtime`] if that
    /// has not happened yet.
    ///
    /// # Errors
    /// Runtime errors from [`super::init_runtime`]; [`ModelError::Io`],
    /// [`ModelError::ManifestParse`] and [`ModelError::ManifestInvalid`] for the files;
    /// [`ModelError::Session`] if ONNX Runtime refuses the graph; [`ModelError::Signature`]
    /// if the graph's input width is not the number of feature names or the output is
    /// missing.
    pub fn load(dir: &Path) -> Result<Model, ModelError> {
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE))?;

        let onnx_path = dir.join(MODEL_FILE);
        let bytes = std::fs::read(&onnx_path).map_err(|source| ModelError::Io {
            path: onnx_path.clone(),
            source,
        })?;
        Model::from_bytes(manifest, &bytes, &onnx_path)
    }

    /// Build a model from a parsed manifest and the ONNX bytes (a registry upload or a
    /// blob), checking that they agree; `origin` names the graph in messages.
    ///
    /// # Errors
    /// [`ModelError::ManifestInvalid`] from [`Manifest::validate`]; [`ModelError::Session`]
    /// and [`ModelError::Signature`] as for [`Model::load`].
    pub fn from_bytes(
        manifest: Manifest,
        bytes: &[u8],
        origin: &Path,
    ) -> Result<Model, ModelError> {
        manifest.validate()?;
        let sha256 = onnx_sha256(bytes);
        let session = build_session(origin, bytes)?;
        check_signature(&session, &manifest)?;

        tracing::info!(
            model = %manifest.name,
            version = %manifest.version,
            %sha256,
            synthetic_demo = manifest.synthetic_demo,
            "model loaded"
        );
        Ok(Model {
            manifest,
            sha256,
            origin: origin.to_path_buf(),
            session: Mutex::new(session),
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where the graph was loaded from (a file path, or the registry blob key).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Name, version, digest and demo flag.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            sha256: self.sha256.clone(),
            synthetic_demo: self.manifest.synthetic_demo,
        }
    }

    /// Refuse `settings` if they yield other feature names or another settings hash than
    /// the model was trained with; see [`Manifest::check_compatible`].
    ///
    /// # Errors
    /// [`ModelError::IncompatibleFeatures`] or [`ModelError::IncompatibleSettings`].
    pub fn check_compatible(&self, settings: &ExtractionSettings) -> Result<(), ModelError> {
        self.manifest.check_compatible(settings)
    }

    /// P(responder) for each row, in order. Each row holds the features in
    /// [`Manifest::feature_names`] order.
    ///
    /// Blocking; call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] for a row of the wrong length or with a value that is
    /// not finite (also after the cast to `f32`); [`ModelError::Inference`] if ONNX Runtime
    /// fails or returns a value outside `[0, 1]`.
    pub fn predict(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
        // LIMITATION: one mutexed session serialises scoring; a heavy model needs a pool.
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let output = self.run(rows)?;
        read_column(
            &output.view(),
            rows.len(),
            self.manifest.output.probability_column,
        )
    }

    /// The manifest's output for `rows`, as an owned `[n_rows, classes]` array.
    pub(super) fn run(&self, rows: &[Vec<f64>]) -> Result<Array2<f32>, ModelError> {
        let input = to_input_array(rows, self.manifest.feature_names.len())?;

        let mut session = self
            .session
            .lock()
            .map_err(|_| ModelError::Inference("session lock poisoned by a panic".to_owned()))?;
        let tensor = TensorRef::from_array_view(&input).map_err(inference)?;
        let outputs = session
            .run(ort::inputs![self.manifest.input.name.as_str() => tensor])
            .map_err(inference)?;
        let output = outputs.get(&self.manifest.output.name).ok_or_else(|| {
            ModelError::Inference(format!("output '{}' missing", self.manifest.output.name))
        })?;
        let values = output.try_extract_array::<f32>().map_err(inference)?;
        let shape = values.shape().to_vec();
        values
            .to_owned()
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|_| {
                ModelError::Inference(format!("output shape {shape:?}; expected [rows, classes]"))
            })
    }
}

/// `sha256:` + hex digest of an ONNX graph, as results and the registry record it.
pub fn onnx_sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn inference(e: ort::Error) -> ModelError {
    ModelError::Inference(e.to_string())
}

/// Create the session from the model bytes already read (so the digest and the graph
/// are the same bytes).
fn build_session(path: &Path, bytes: &[u8]) -> Result<Session, ModelError> {
    // Builder errors carry the builder and are not Send/Sync: keep only their text.
    let session_error = |reason: String| ModelError::Session {
        path: path.to_path_buf(),
        reason,
    };
    let environment = runtime::environment()?;
    Session::builder(environment)
        .map_err(|e| session_error(e.to_string()))?
        .with_intra_threads(INTRA_OP_THREADS)
        .map_err(|e| session_error(e.to_string()))?
        .commit_from_memory(bytes)
        .map_err(|e| session_error(e.to_string()))
}

/// The graph must have the manifest's input as `float32 [batch, n_features]` and the
/// manifest's output as a 2-D tensor with the probability column.
fn check_signature(session: &Session, manifest: &Manifest) -> Result<(), ModelError> {
    let want_in = &manifest.input.name;
    let input = session
        .inputs()
        .iter()
        .find(|i| i.name() == want_in)
        .ok_or_else(|| {
            ModelError::Signature(format!("the graph has no input named '{want_in}'"))
        })?;
    let (ty, shape) = tensor_signature(input.dtype(), want_in)?;
    if ty != TensorElementType::Float32 {
        return Err(ModelError::Signature(format!(
            "input '{want_in}' is {ty:?}, not float32"
        )));
    }
    let expected = manifest.feature_names.len();
    match shape.as_slice() {
        [_, width] if usize::try_from(*width).ok() == Some(expected) => {}
        _ => {
            return Err(ModelError::Signature(format!(
                "input '{want_in}' has shape {shape:?}; expected [batch, {expected}] for \
                 {expected} feature names"
            )));
        }
    }
    if let Some(extra) = session.inputs().iter().find(|i| i.name() != want_in) {
        return Err(ModelError::Signature(format!(
            "the graph has a second input '{}'; only one is supported",
            extra.name()
        )));
    }

    let want_out = &manifest.output.name;
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == want_out)
        .ok_or_else(|| {
            ModelError::Signature(format!("the graph has no output named '{want_out}'"))
        })?;
    let (ty, shape) = tensor_signature(output.dtype(), want_out)?;
    let column = manifest.output.probability_column;
    let has_column = match shape.as_slice() {
        [_, classes] => *classes < 0 || usize::try_from(*classes).is_ok_and(|c| column < c),
        _ => false,
    };
    if ty != TensorElementType::Float32 || !has_column {
        return Err(ModelError::Signature(format!(
            "output '{want_out}' is {ty:?} {shape:?}; expected float32 [batch, classes] with \
             column {column}"
        )));
    }
    Ok(())
}

fn tensor_signature(
    dtype: &ValueType,
    name: &str,
) -> Result<(TensorElementType, Vec<i64>), ModelError> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => Ok((*ty, shape.to_vec())),
        other => Err(ModelError::Signature(format!(
            "'{name}' is {other:?}, not a tensor"
        ))),
    }
}

/// Rows → `f32 [n, width]`, refusing wrong lengths and non-finite values.
fn to_input_array(rows: &[Vec<f64>], width: usize) -> Result<Array2<f32>, ModelError> {
    let mut input = Array2::<f32>::zeros((rows.len(), width));
    for (r, row) in rows.iter().enumerate() {
        if row.len() != width {
            return Err(ModelError::InvalidInput {
                row: r,
                reason: format!("{} values, the model takes {width}", row.len()),
            });
        }
        for (c, &value) in row.iter().enumerate() {
            let single = value as f32;
            if !single.is_finite() {
                return Err(ModelError::InvalidInput {
                    row: r,
                    reason: format!("feature {c} is {value}, which is not a finite float32"),
                });
            }
            input[[r, c]] = single;
        }
    }
    Ok(input)
}

/// Column `column` of a `[n_rows, classes]` output, checked to be probabilities.
fn read_column(
    output: &ndarray::ArrayView2<'_, f32>,
    n_rows: usize,
    column: usize,
) -> Result<Vec<f64>, ModelError> {
    let shape = output.shape();
    if shape.len() != 2 || shape[0] != n_rows || shape[1] <= column {
        return Err(ModelError::Inference(format!(
            "output shape {shape:?}; expected [{n_rows}, > {column}]"
        )));
    }
    (0..n_rows)
        .map(|r| {
            let p = f64::from(output[[r, column]]);
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(ModelError::Inference(format!(
                    "row {r}: probability {p} outside [0, 1]"
                )))
            }
        })
        .collect()
}
