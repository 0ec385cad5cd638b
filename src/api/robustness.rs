//! Robustness analysis as a job: `POST /v1/robustness` queues a [`JobKind::Robustness`]
//! job on a stored series and segmentation; `GET /v1/jobs/{id}` and `DELETE /v1/jobs/{id}`
//! follow and cancel it like any job; its result is fetched as JSON
//! (`GET /v1/jobs/{id}/result`), as the CSV table (`…/result.csv`) and as the PNG heat map
//! (`…/result.png`), the three files `radscore robustness` writes, made by the same code
//! ([`crate::robustness::RobustnessReport::write_csv`],
//! [`crate::robustness::heatmap::write_png`]) when the job ran (see
//! [`crate::jobs::robustness`]).
//!
//! The request mirrors `POST /v1/jobs` (`series_id`, `segmentation_id`, `lesions` with
//! their locations, optional `settings` or `pyradiomics_params`) plus the CLI's options:
//! `perturbations`, `seed`, `limits` and `thresholds`, checked by the same
//! [`RobustnessOptions::validate`].

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::audit::audit_caller;
use super::auth::Caller;
use super::jobs::{
    Submission, check_labels, check_uploads, enqueue, parse_lesions, read_json_request,
    require_kind, succeeded_result, tenant_job,
};
use super::series::clip;
use super::{ApiResult, AppState, Problem};
use crate::features::ExtractionSettings;
use crate::jobs::SettingsSource;
use crate::jobs::robustness::{CSV_ARTEFACT, PNG_ARTEFACT, RobustnessRequest, artefact_key};
use crate::robustness::{MAX_PERTURBATIONS, PerturbationLimits, RobustnessOptions, Thresholds};
use crate::store::{JobKind, JobRow};

/// The fields a robustness request may hold.
const FIELDS: [&str; 9] = [
    "series_id",
    "segmentation_id",
    "lesions",
    "perturbations",
    "seed",
    "limits",
    "thresholds",
    "settings",
    "pyradiomics_params",
];

/// `POST /v1/robustness`: validate, check the uploads and labels, and queue the job.
#[tracing::instrument(skip_all, fields(job_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let tenant = caller.tenant.as_str();
    let (idempotency_key, doc) = read_json_request(&state, req).await?;
    let request = parse_request(&doc, &state.settings)?;
    let seg = check_uploads(&state, tenant, &request.series_id, &request.segmentation_id).await?;
    check_labels(&seg, &request.lesions)?;

    let request_json = serde_json::to_string(&request).map_err(|e| Problem::internal(&e))?;
    let job = Submission {
        kind: JobKind::Robustness,
        series_id: request.series_id,
        segmentation_id: request.segmentation_id,
        request_json,
        idempotency_key,
        audit_detail: json!({
            "lesions": request.lesions.len(),
            "perturbations": request.options.perturbations,
        }),
    };
    enqueue(&state, &caller, job).await
}

/// Validate a robustness request with a precise message for every fault; the effective
/// extraction settings (the service's when the request gives none) are recorded in it.
///
/// # Errors
/// 422 `invalid-robustness-request` naming the field, or `invalid-settings` from the
/// settings fields.
// LIMITATION: one series and segmentation per job (a job row references one of each, which
// keeps job creation and upload deletion atomic); the CLI's manifest pools many cases.
pub fn parse_request(doc: &Value, service: &ExtractionSettings) -> ApiResult<RobustnessRequest> {
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("the body must be a JSON object".into()))?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown field '{}'; expected one of {FIELDS:?}",
            clip(k)
        )));
    }
    let string = |key: &str| -> ApiResult<String> {
        obj.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("field '{key}' is required and must be a string")))
    };
    let series_id = string("series_id")?;
    let segmentation_id = string("segmentation_id")?;
    let lesions = parse_lesions(obj, invalid)?;
    let options = parse_options(obj)?;

    let chosen = super::job_settings::parse_fields(obj)?;
    let (settings, settings_source) = match chosen.settings {
        Some(own) => (own, chosen.source.unwrap_or(SettingsSource::Settings)),
        None => (service.clone(), SettingsSource::Service),
    };
    Ok(RobustnessRequest {
        series_id,
        segmentation_id,
        lesions,
        options,
        settings,
        settings_source,
    })
}

/// `perturbations`, `seed`, `limits` and `thresholds`, each defaulting to the CLI's value,
/// checked together by [`RobustnessOptions::validate`].
fn parse_options(obj: &Map<String, Value>) -> ApiResult<RobustnessOptions> {
    let defaults = RobustnessOptions::default();
    let perturbations = match obj.get("perturbations") {
        None | Some(Value::Null) => defaults.perturbations,
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "field 'perturbations' must be an integer from 2 to {MAX_PERTURBATIONS}"
                ))
            })?,
    };
    let seed = match obj.get("seed") {
        None | Some(Value::Null) => defaults.seed,
        Some(v) => v.as_u64().ok_or_else(|| {
            invalid("field 'seed' must be a non-negative integer below 2^64".into())
        })?,
    };
    let limits: PerturbationLimits = object_field(obj, "limits")?;
    let thresholds: Thresholds = object_field(obj, "thresholds")?;
    let options = RobustnessOptions {
        perturbations,
        seed,
        limits,
        thresholds,
    };
    options.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(options)
}

/// The object `field` of `obj` read as `T` (missing members keep `T`'s defaults; unknown
/// members are refused), or `T::default()` when absent.
fn object_field<T: DeserializeOwned + Default>(
    obj: &Map<String, Value>,
    field: &str,
) -> ApiResult<T> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v @ Value::Object(_)) => {
            serde_json::from_value(v.clone()).map_err(|e| invalid(format!("field '{field}': {e}")))
        }
        Some(_) => Err(invalid(format!("field '{field}' must be an object"))),
    }
}

/// `GET /v1/jobs/{id}/result.csv`: the feature table of a succeeded robustness job.
#[tracing::instrument(skip_all, fields(job_id = %id))]
pub async fn result_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let row = succeeded_robustness_job(&state, &caller, &id, "a CSV table").await?;
    let csv = state
        .blobs
        .get(&artefact_key(&row.id, CSV_ARTEFACT))
        .await?;
    audit_read(&state, &caller, &row, "csv").await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}

/// `GET /v1/jobs/{id}/result.png`: the heat map of a succeeded robustness job; 409 when no
/// ICC could be computed (every lesion excluded), as the CLI then draws none either.
#[tracing::instrument(skip_all, fields(job_id = %id))]
pub async fn result_png(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let row = succeeded_robustness_job(&state, &caller, &id, "a heat map").await?;
    let report: Value = serde_json::from_str(row.result.as_deref().unwrap_or_default())
        .map_err(|e| Problem::internal(&e))?;
    if report["features"].as_array().is_none_or(Vec::is_empty) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no-heatmap",
            "Nothing to draw",
            format!(
                "job '{}' computed no ICC (every lesion was excluded; its result says why), \
                 so it has no heat map",
                clip(&id)
            ),
        ));
    }
    let png = state
        .blobs
        .get(&artefact_key(&row.id, PNG_ARTEFACT))
        .await?;
    audit_read(&state, &caller, &row, "png").await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png))
}

/// The job `id` of the caller's tenant, which must be a succeeded robustness job; `what`
/// names the artefact asked for in the 409 of another kind of job.
async fn succeeded_robustness_job(
    state: &AppState,
    caller: &Caller,
    id: &str,
    what: &str,
) -> ApiResult<JobRow> {
    let row = tenant_job(state, &caller.tenant, id).await?;
    require_kind(&row, JobKind::Robustness, what)?;
    succeeded_result(&row)?;
    Ok(row)
}

/// Audit a read of a robustness result in `format`.
async fn audit_read(
    state: &AppState,
    caller: &Caller,
    row: &JobRow,
    format: &str,
) -> ApiResult<()> {
    let detail = json!({ "format": format });
    audit_caller(state, caller, "result.read", "job", &row.id, detail).await
}

fn invalid(detail: String) -> Problem {
    Problem::unprocessable(
        "invalid-robustness-request",
        "Invalid robustness request",
        detail,
    )
}
