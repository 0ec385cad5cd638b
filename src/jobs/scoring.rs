//! Scoring a job's lesions with its model, and the annotations that say how far to trust
//! each probability: the trust block of [`crate::model::explain`] and the acquisition
//! check of the model's training envelope ([`crate::model::AcquisitionEnvelope`]).

use std::sync::Arc;
use std::time::Instant;

use super::{JobError, JobResult, ModelSummary};
use crate::dicom::acquisition::Acquisition;
use crate::model::{LesionExplanation, Model, OnViolation};
use crate::pipeline::{LesionError, LesionFeatures};

/// Error code of a lesion the model refuses because the series is outside its envelope.
pub const OUTSIDE_ENVELOPE_CODE: &str = "outside_training_envelope";

/// Prefix of the per-lesion warning for a series outside the envelope.
pub const ACQUISITION_WARNING_PREFIX: &str = "acquisition: ";

/// Score the lesions that have features; `None` for the others. Each lesion's input row is
/// picked by name from its features (the model may use a subset, in its own order).
pub async fn score(
    model: Arc<Model>,
    lesions: &[LesionFeatures],
) -> Result<Vec<Option<f64>>, JobError> {
    let rows: Vec<Vec<f64>> = lesions
        .iter()
        .filter_map(|l| l.features.as_ref().ok())
        .map(|f| model_row(&model, f))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let scores = if rows.is_empty() {
        Vec::new()
    } else {
        tokio::task::spawn_blocking(move || model.predict(&rows))
            .await
            .map_err(|e| JobError::Aborted(e.to_string()))?
            .map_err(|e| JobError::Model(e.to_string()))?
    };
    metrics::histogram!("radscore_model_inference_seconds").record(started.elapsed().as_secs_f64());
    let mut it = scores.into_iter();
    Ok(lesions
        .iter()
        .map(|l| if l.features.is_ok() { it.next() } else { None })
        .collect())
}

/// The model's input row from one lesion's computed features.
fn model_row(model: &Model, features: &[crate::features::Feature]) -> Result<Vec<f64>, JobError> {
    let value_of = |name: &str| features.iter().find(|f| f.name == name).map(|f| f.value);
    model.manifest().select_row(value_of).map_err(|missing| {
        JobError::Model(format!(
            "the model uses feature '{missing}', which this extraction did not compute"
        ))
    })
}

/// Trust annotations of a scored lesion; `None` when it has no probability.
fn lesion_trust(
    model: &Model,
    lesion: &LesionFeatures,
    probability: Option<f64>,
) -> Option<LesionExplanation> {
    probability?;
    let features = lesion.features.as_ref().ok()?;
    let row = model_row(model, features).ok()?;
    Some(crate::model::explain(
        model.manifest(),
        &row,
        lesion.request.location.as_str(),
    ))
}

/// The summary of a loaded model that results record (the registry id is added by the caller that knows it).
pub fn model_summary(model: &Model) -> ModelSummary {
    let info = model.info();
    ModelSummary {
        id: None,
        name: info.name,
        version: info.version,
        sha256: info.sha256,
        synthetic_demo: info.synthetic_demo,
        settings_hash: Some(model.manifest().settings_hash.clone()),
    }
}

/// Add each scored lesion's trust annotations and apply the acquisition check: a series
/// outside the model's envelope gets a warning per lesion naming the attribute, or (when
/// the manifest refuses) its lesions are `unscored` with the reason.
pub fn annotate(
    result: &mut JobResult,
    model: &Model,
    lesions: &[LesionFeatures],
    acquisition: Acquisition,
) {
    for (out, lesion) in result.lesions.iter_mut().zip(lesions) {
        out.trust = lesion_trust(model, lesion, out.response_probability);
    }

    let envelope = model.manifest().acquisition.as_ref();
    let violations = envelope
        .map(|e| e.violations(&acquisition))
        .unwrap_or_default();
    result.acquisition = Some(acquisition);
    let (Some(envelope), false) = (envelope, violations.is_empty()) else {
        return;
    };
    for out in result.lesions.iter_mut().filter(|l| l.status == "ok") {
        match envelope.on_violation {
            OnViolation::Warn => out.warnings.extend(
                violations
                    .iter()
                    .map(|v| format!("{ACQUISITION_WARNING_PREFIX}{v}")),
            ),
            OnViolation::Refuse => {
                out.status = "unscored".into();
                out.response_probability = None;
                out.trust = None;
                out.error = Some(LesionError {
                    code: OUTSIDE_ENVELOPE_CODE.into(),
                    message: format!(
                        "the model refuses series outside its training envelope: {}",
                        violations.join("; ")
                    ),
                });
            }
        }
    }
}
