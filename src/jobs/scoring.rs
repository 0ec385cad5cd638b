//! Scoring a job's lesions with its model, and the annotations that say how far to trust
//! each probability: the trust block of [`crate::model::explain`] and the acquisition
//! check of the model's training envelope ([`crate::model::AcquisitionEnvelope`]).
//!
//! A location-aware bundle ([`crate::model::Bundle`]) scores each lesion with the
//! sub-model for its location: rows are grouped per sub-model, each sub-model's own
//! feature list picks its row, and its own manifest gives the trust annotations and the
//! acquisition envelope. A lesion at a location no sub-model covers is `unscored`
//! ([`LOCATION_NOT_COVERED_CODE`]); the job still succeeds.
//!
//! The prediction interval of a scored lesion ([`crate::robustness::interval`]) re-scores
//! the lesion's perturbed feature rows with the same (sub-)model: [`interval_rows`]
//! re-extracts them next to the normal extraction, [`intervals`] scores them.

use std::collections::BTreeMap;
use std::time::Instant;

use rayon::prelude::*;

use super::result::SubModelRef;
use super::{JobError, JobResult, ModelSummary};
use crate::dicom::acquisition::Acquisition;
use crate::features::ExtractionSettings;
use crate::image::{Segmentation, Volume};
use crate::model::{LesionExplanation, LoadedModel, Model, OnViolation};
use crate::pipeline::{LesionError, LesionFeatures};
use crate::robustness::interval::{
    IntervalOptions, PredictionInterval, interval_perturbations, perturbed_rows, restrict_to,
};
use crate::store::ModelRow;

/// Error code of a lesion the model refuses because the series is outside its envelope.
pub const OUTSIDE_ENVELOPE_CODE: &str = "outside_training_envelope";

/// Error code of a lesion whose location no sub-model of the job's bundle covers.
pub const LOCATION_NOT_COVERED_CODE: &str = "location_not_covered";

/// Prefix of the per-lesion warning for a series outside the envelope.
pub const ACQUISITION_WARNING_PREFIX: &str = "acquisition: ";

/// The rows one (sub-)model scores: the model, and (lesion index, input row) pairs.
type RowGroup = (std::sync::Arc<Model>, Vec<(usize, Vec<f64>)>);

/// Score the lesions that have features and a model for their location; `None` for the
/// others. Each lesion's input row is picked by name from its features (a model may use a
/// subset, in its own order); rows are scored in one call per (sub-)model.
pub async fn score(
    model: &LoadedModel,
    lesions: &[LesionFeatures],
) -> Result<Vec<Option<f64>>, JobError> {
    let mut groups: BTreeMap<usize, RowGroup> = BTreeMap::new();
    for (i, lesion) in lesions.iter().enumerate() {
        let (Ok(features), Some(route)) = (&lesion.features, model.route(lesion.request.location))
        else {
            continue;
        };
        let row = model_row(route.model, features)?;
        groups
            .entry(route.index)
            .or_insert_with(|| (route.model.clone(), Vec::new()))
            .1
            .push((i, row));
    }
    let started = Instant::now();
    let mut out = vec![None; lesions.len()];
    for (model, rows) in groups.into_values() {
        let (index, rows): (Vec<usize>, Vec<Vec<f64>>) = rows.into_iter().unzip();
        let scores = tokio::task::spawn_blocking(move || model.predict(&rows))
            .await
            .map_err(|e| JobError::Aborted(e.to_string()))?
            .map_err(|e| JobError::Model(e.to_string()))?;
        for (i, p) in index.into_iter().zip(scores) {
            out[i] = Some(p);
        }
    }
    metrics::histogram!("radscore_model_inference_seconds").record(started.elapsed().as_secs_f64());
    Ok(out)
}

/// The model's input row from one lesion's computed features.
pub fn model_row(
    model: &Model,
    features: &[crate::features::Feature],
) -> Result<Vec<f64>, JobError> {
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

/// The summary of the job's model that results record: the registry row's identity
/// (for a bundle: its name, version and bundle digest) and, for a bundle, its sub-models.
pub fn model_summary(row: &ModelRow, model: &LoadedModel) -> ModelSummary {
    ModelSummary {
        id: Some(row.id.clone()),
        name: row.name.clone(),
        version: row.version.clone(),
        sha256: row.sha256.clone(),
        synthetic_demo: row.synthetic_demo,
        settings_hash: Some(row.settings_hash.clone()),
        sub_models: model
            .bundle_manifest()
            .map(|bundle| bundle.sub_models.iter().map(SubModelRef::of).collect()),
    }
}

/// Add each lesion's sub-model (for a bundle) and trust annotations, mark lesions at an
/// uncovered location `unscored`, and apply the acquisition check of the lesion's model: a
/// series outside its envelope gets a warning naming the attribute, or (when the manifest
/// refuses) the lesion is `unscored` with the reason.
pub fn annotate(
    result: &mut JobResult,
    model: &LoadedModel,
    lesions: &[LesionFeatures],
    acquisition: Acquisition,
) {
    for (out, lesion) in result.lesions.iter_mut().zip(lesions) {
        if out.status != "ok" {
            continue;
        }
        let Some(route) = model.route(lesion.request.location) else {
            let covered = model
                .bundle_manifest()
                .map(|b| {
                    let mut all: Vec<&str> = b
                        .sub_models
                        .iter()
                        .flat_map(|s| s.locations.iter().map(|l| l.as_str()))
                        .collect();
                    all.sort_unstable();
                    all.join(", ")
                })
                .unwrap_or_default();
            unscore(
                out,
                LOCATION_NOT_COVERED_CODE,
                format!(
                    "no sub-model of the job's model covers location '{}' (covered: {covered})",
                    lesion.request.location.as_str()
                ),
            );
            continue;
        };
        out.sub_model = route.sub_model.map(SubModelRef::of);
        out.trust = lesion_trust(route.model, lesion, out.response_probability);

        let Some(envelope) = route.model.manifest().acquisition.as_ref() else {
            continue;
        };
        let violations = envelope.violations(&acquisition);
        if violations.is_empty() {
            continue;
        }
        match envelope.on_violation {
            OnViolation::Warn => out.warnings.extend(
                violations
                    .iter()
                    .map(|v| format!("{ACQUISITION_WARNING_PREFIX}{v}")),
            ),
            OnViolation::Refuse => unscore(
                out,
                OUTSIDE_ENVELOPE_CODE,
                format!(
                    "the model refuses series outside its training envelope: {}",
                    violations.join("; ")
                ),
            ),
        }
    }
    result.acquisition = Some(acquisition);
}

/// Leave a lesion's features but no probability, with the reason.
fn unscore(out: &mut super::LesionResult, code: &str, message: String) {
    out.status = "unscored".into();
    out.response_probability = None;
    out.trust = None;
    out.error = Some(LesionError {
        code: code.into(),
        message,
    });
}

/// Perturbed rows per lesion, one per perturbation, of a lesion's prediction interval
/// (`None` inside where that perturbation's features could not be computed); `None` for a
/// lesion without features or without a model for its location, and for every lesion
/// when `options` turn intervals off. Only the families the lesion's model uses are
/// re-extracted. Blocking (lesions run in parallel on rayon's pool); `stop` as in
/// [`crate::robustness::interval::perturbed_rows`].
pub fn interval_rows(
    volume: &Volume,
    segmentation: &Segmentation,
    lesions: &[LesionFeatures],
    settings: &ExtractionSettings,
    model: &LoadedModel,
    options: IntervalOptions,
    stop: &(dyn Fn() -> bool + Sync),
) -> Vec<Option<Vec<Option<Vec<f64>>>>> {
    if options.perturbations == 0 {
        return vec![None; lesions.len()];
    }
    let perturbations = interval_perturbations(options.perturbations);
    lesions
        .par_iter()
        .map(|lesion| {
            lesion.features.as_ref().ok()?;
            let route = model.route(lesion.request.location)?;
            let mask = segmentation
                .lesions
                .iter()
                .find(|l| l.label == lesion.request.label)?;
            let used = &route.model.manifest().feature_names;
            let restricted = restrict_to(settings.for_location(lesion.request.location), used);
            Some(perturbed_rows(
                volume,
                mask,
                &restricted,
                used,
                &perturbations,
                stop,
            ))
        })
        .collect()
}

/// Score each lesion's perturbed rows with its (sub-)model and summarise them; `None`
/// where there are no rows, none could be computed, or scoring them fails (logged: the
/// interval is an annotation, its failure does not fail the job).
pub async fn intervals(
    model: &LoadedModel,
    lesions: &[LesionFeatures],
    rows: Vec<Option<Vec<Option<Vec<f64>>>>>,
    options: IntervalOptions,
) -> Result<Vec<Option<PredictionInterval>>, JobError> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(lesions.len());
    for (lesion, rows) in lesions.iter().zip(rows) {
        let (Some(rows), Some(route)) = (rows, model.route(lesion.request.location)) else {
            out.push(None);
            continue;
        };
        let rows: Vec<Vec<f64>> = rows.into_iter().flatten().collect();
        let scorer = route.model.clone();
        let scored = tokio::task::spawn_blocking(move || scorer.predict(&rows))
            .await
            .map_err(|e| JobError::Aborted(e.to_string()))?;
        out.push(match scored {
            Ok(scores) => PredictionInterval::from_scores(options.perturbations, &scores),
            Err(e) => {
                tracing::warn!(label = lesion.request.label, error = %e, "no prediction interval");
                None
            }
        });
    }
    metrics::histogram!("radscore_prediction_interval_scoring_seconds")
        .record(started.elapsed().as_secs_f64());
    Ok(out)
}

/// Give each lesion still scored (`ok`) its interval.
pub fn attach_intervals(result: &mut JobResult, intervals: Vec<Option<PredictionInterval>>) {
    for (out, interval) in result.lesions.iter_mut().zip(intervals) {
        if out.status == "ok" && out.response_probability.is_some() {
            out.prediction_interval = interval;
        }
    }
}
