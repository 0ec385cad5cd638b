//! `POST /v1/jobs`, `GET /v1/jobs/{id}`, `GET /v1/jobs/{id}/result` and
//! `DELETE /v1/jobs/{id}`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::audit::audit_caller;
use super::auth::{Caller, Tenant};
use super::series::clip;
use super::upload::UploadLimits;
use super::{ApiResult, AppState, Problem};
use crate::features::Location;
use crate::jobs::JobRequest;
use crate::pipeline::LesionRequest;
use crate::robustness::interval::{IntervalOptions, MAX_INTERVAL_PERTURBATIONS};
use crate::store::{Enqueue, JobKind, JobRow, NewJob, UploadKind};

/// Label value of the background in label maps; never a lesion.
pub const BACKGROUND_LABEL: u32 = 0;

/// Most lesions in one job request.
pub const MAX_LESIONS_PER_JOB: usize = 1000;

/// `POST /v1/jobs` with `{series_id, segmentation_id, lesions: [{label, location}], model?}`.
#[tracing::instrument(skip_all, fields(job_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let tenant = caller.tenant.as_str();
    let (idempotency_key, doc) = read_json_request(&state, req).await?;
    let mut request = parse_job_request(&doc)?;
    super::job_settings::settle(&mut request, &state.settings);
    check_references(&state, tenant, &request).await?;
    let request_json = serde_json::to_string(&request).map_err(|e| Problem::internal(&e))?;
    let job = Submission {
        kind: JobKind::Extraction,
        series_id: request.series_id,
        segmentation_id: request.segmentation_id,
        request_json,
        idempotency_key,
        audit_detail: json!({ "lesions": request.lesions.len() }),
    };
    enqueue(&state, &caller, job).await
}

/// A validated job of any kind, ready to be queued.
pub(super) struct Submission {
    pub kind: JobKind,
    pub series_id: String,
    pub segmentation_id: String,
    /// The validated request as stored in the job row (and compared on replays).
    pub request_json: String,
    pub idempotency_key: Option<String>,
    /// Non-identifying facts for the audit log besides the series and segmentation ids.
    pub audit_detail: Value,
}

/// Queue a validated job: replay an earlier job with the same `Idempotency-Key`, else 429
/// when the queue is full, else insert it (atomically with its uploads being live), wake a
/// worker, audit `job.create` and answer 202 with the job's status document.
pub(super) async fn enqueue(
    state: &AppState,
    caller: &Caller,
    job: Submission,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let tenant = caller.tenant.as_str();
    // A client retry is answered from the stored job, even when the queue is full now.
    if let Some(key) = &job.idempotency_key
        && let Some(previous) = state.db.job_by_key(tenant, key).await?
    {
        return replay(previous, &job.request_json);
    }
    check_backpressure(state).await?;

    let id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("job_id", id.as_str());
    let enqueued = state
        .db
        .insert_job(&NewJob {
            id: id.clone(),
            tenant_id: tenant.to_string(),
            series_id: job.series_id.clone(),
            segmentation_id: job.segmentation_id.clone(),
            request: job.request_json.clone(),
            idempotency_key: job.idempotency_key,
            kind: job.kind,
        })
        .await?;
    match enqueued {
        Enqueue::Inserted => {}
        Enqueue::Existing(previous) => return replay(previous, &job.request_json),
        // A concurrent DELETE wrote its tombstone after the checks above.
        Enqueue::UploadGone { kind, id, .. } => {
            return Err(unknown_reference(state, tenant, kind, &id).await);
        }
    }
    state.job_enqueued.notify_waiters();
    tracing::info!(kind = job.kind.as_str(), "job queued");
    let mut detail = json!({
        "kind": job.kind.as_str(),
        "series_id": job.series_id,
        "segmentation_id": job.segmentation_id,
    });
    if let (Some(obj), Value::Object(extra)) = (detail.as_object_mut(), job.audit_detail) {
        obj.extend(extra);
    }
    audit_caller(state, caller, "job.create", "job", &id, detail).await?;

    let row = state
        .db
        .job(tenant, &id)
        .await?
        .ok_or_else(|| Problem::internal(&"job vanished after insert"))?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/jobs/{id}").parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(job_json(&row))))
}

/// Seconds a client is asked to wait when the queue is full.
pub const QUEUE_FULL_RETRY_AFTER_S: u64 = 30;

/// 429 with `Retry-After` when the queue already holds the configured maximum.
// LIMITATION: one queue bound shared by every tenant; a busy tenant can fill it for all.
pub(super) async fn check_backpressure(state: &AppState) -> ApiResult<()> {
    let queued = state.db.queued_jobs().await?;
    if u64::try_from(queued).unwrap_or(0) >= state.limits.max_queued_jobs {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue-full",
            "Queue full",
            format!(
                "{queued} jobs are already queued (limit {}); retry later",
                state.limits.max_queued_jobs
            ),
        );
        p.retry_after_s = Some(QUEUE_FULL_RETRY_AFTER_S);
        return Err(p);
    }
    Ok(())
}

/// The `Idempotency-Key` header and the JSON document of a job or batch creation request
/// (`application/json`, within the body size limit).
pub(super) async fn read_json_request(
    state: &AppState,
    req: Request,
) -> ApiResult<(Option<String>, Value)> {
    let limits = state.limits.for_json();
    let too_large = UploadLimits::rename_too_large(|| limits.json_too_large("the request body"));
    limits.check_declared_length(&req).map_err(&too_large)?;
    let idempotency_key = idempotency_key(&req)?;
    let media = super::upload::media_type(&req);
    if media != "application/json" {
        return Err(super::series::unsupported_media(&media, "application/json"));
    }
    let body = limits
        .read_body(req.into_body())
        .await
        .map_err(&too_large)?;
    let doc: Value = serde_json::from_slice(&body).map_err(|e| {
        Problem::bad_request("malformed-json", format!("the body is not valid JSON: {e}"))
    })?;
    Ok((idempotency_key, doc))
}

/// Longest accepted `Idempotency-Key` header value.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The optional `Idempotency-Key` header: printable ASCII, at most 255 characters.
pub(super) fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(v) if !v.is_empty() && v.len() <= MAX_IDEMPOTENCY_KEY_CHARS => Ok(Some(v.to_string())),
        _ => Err(Problem::bad_request(
            "invalid-idempotency-key",
            "the Idempotency-Key header must be 1 to 255 printable ASCII characters",
        )),
    }
}

/// Answer a repeated creation: the original job when the request is the same, else 409.
fn replay(previous: JobRow, request_json: &str) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    if previous.request != request_json {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "idempotency-key-reused",
            "Idempotency key reused",
            format!(
                "this Idempotency-Key already created job '{}' with a different request",
                previous.id
            ),
        ));
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/jobs/{}", previous.id).parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(job_json(&previous))))
}

/// `DELETE /v1/jobs/{id}`: cancel a queued or running job; 409 when it has already
/// finished. A running job's worker finds its lease gone at its next heartbeat and stops
/// before its next lesion (or prediction-interval perturbation), keeping no result.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (cancelled, row) = state
        .db
        .cancel_job(&caller.tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("job", &id))?;
    if !cancelled {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "job-finished",
            "Job already finished",
            format!("job '{}' is already {}", clip(&id), row.status),
        ));
    }
    tracing::info!(job_id = %id, "job cancelled");
    audit_caller(&state, &caller, "job.cancel", "job", &row.id, json!({})).await?;
    Ok(Json(job_json(&row)))
}

/// The job `id` of `tenant`; 404 for a missing id and for another tenant's job alike.
pub(super) async fn tenant_job(state: &AppState, tenant: &str, id: &str) -> ApiResult<JobRow> {
    state
        .db
        .job(tenant, id)
        .await?
        .ok_or_else(|| Problem::not_found("job", id))
}

/// `GET /v1/jobs/{id}`: status, progress and the delivery of its report.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = tenant_job(&state, &tenant, &id).await?;
    Ok(Json(job_document(&state, &row).await?))
}

/// The status document of a job with its `delivery` (DICOMweb push of the report: `null`
/// when none was made).
pub async fn job_document(state: &AppState, row: &JobRow) -> ApiResult<Value> {
    let mut doc = job_json(row);
    let delivery = state.db.delivery(&row.id).await?.map(|d| {
        json!({
            "status": d.status,
            "destination": d.destination,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "updated_at": rfc3339(Some(d.updated_at_ms)),
        })
    });
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("delivery".into(), delivery.unwrap_or(Value::Null));
    }
    Ok(doc)
}

/// `GET /v1/jobs/{id}/result`: the result document once the job succeeded (per-lesion
/// features and scores, or a robustness report).
pub async fn result(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let row = tenant_job(&state, &caller.tenant, &id).await?;
    let result = succeeded_result(&row)?.to_owned();
    audit_caller(&state, &caller, "result.read", "job", &row.id, json!({})).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], result))
}

/// 409 `wrong-job-kind` unless `row` is a job of `kind`; `what` names the artefact asked
/// for (e.g. "a DICOM report").
pub(super) fn require_kind(row: &JobRow, kind: JobKind, what: &str) -> ApiResult<()> {
    let actual = row.kind();
    if actual == kind {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "wrong-job-kind",
        "Not available for this kind of job",
        format!(
            "job '{}' is of kind '{}'; {what} exists only for '{}' jobs",
            clip(&row.id),
            actual.as_str(),
            kind.as_str()
        ),
    )
    .with("kind", actual.as_str()))
}

/// The stored result of a succeeded job; 409 naming the job's state otherwise.
pub(super) fn succeeded_result(row: &JobRow) -> ApiResult<&str> {
    let id = clip(&row.id);
    match (row.status.as_str(), &row.result) {
        ("succeeded", Some(result)) => Ok(result),
        ("cancelled", _) => Err(Problem::new(
            StatusCode::CONFLICT,
            "job-cancelled",
            "Job cancelled",
            format!("job '{id}' was cancelled"),
        )),
        ("failed", _) => Err(Problem::new(
            StatusCode::CONFLICT,
            "job-failed",
            "Job failed",
            format!(
                "job '{id}' failed: {}",
                row.error.as_deref().unwrap_or("no reason recorded")
            ),
        )),
        (status, _) => Err(Problem::new(
            StatusCode::CONFLICT,
            "job-not-finished",
            "Job not finished",
            format!("job '{id}' is {status}; poll /v1/jobs/{id} until it has succeeded"),
        )
        .with("status", status)),
    }
}

/// Validate the job body with a precise message for every fault.
pub fn parse_job_request(doc: &Value) -> ApiResult<JobRequest> {
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("the body must be a JSON object"))?;
    let known = [
        "series_id",
        "segmentation_id",
        "lesions",
        "model",
        "model_id",
        "settings",
        "pyradiomics_params",
        "naming",
        "prediction_interval",
    ];
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown field '{k}'; expected one of {known:?}"
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
    let model = match obj.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("field 'model' must be a string")),
    };
    let model_id = match obj.get("model_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("field 'model_id' must be a string")),
    };
    let chosen = super::job_settings::parse_fields(obj)?;
    let prediction_interval = match obj.get("prediction_interval") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let options: IntervalOptions = serde_json::from_value(v.clone()).map_err(|e| {
                invalid(format!(
                    "field 'prediction_interval' must be {{\"perturbations\": 0 to \
                     {MAX_INTERVAL_PERTURBATIONS}}}: {e}"
                ))
            })?;
            options.validate().map_err(invalid)?;
            Some(options)
        }
    };
    let lesions = parse_lesions(obj, invalid)?;
    Ok(JobRequest {
        series_id,
        segmentation_id,
        lesions,
        model,
        model_id,
        settings: chosen.settings,
        settings_source: chosen.source,
        pyradiomics_params: chosen.pyradiomics_params,
        naming: chosen.naming,
        prediction_interval,
    })
}

/// The required `lesions` array of a job request object: 1 to [`MAX_LESIONS_PER_JOB`]
/// entries `{label, location}` with distinct positive labels; faults are reported through
/// `invalid` (each request kind has its own problem type).
pub(super) fn parse_lesions(
    obj: &serde_json::Map<String, Value>,
    invalid: fn(String) -> Problem,
) -> ApiResult<Vec<LesionRequest>> {
    let items = bounded_array(obj, "lesions", MAX_LESIONS_PER_JOB, invalid)?;
    let mut lesions = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let label = item
            .get("label")
            .and_then(Value::as_u64)
            .and_then(|l| u32::try_from(l).ok())
            .filter(|&l| l != BACKGROUND_LABEL)
            .ok_or_else(|| {
                invalid(format!(
                    "lesions[{i}].label must be a positive integer (0 is the background)"
                ))
            })?;
        let loc = item
            .get("location")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(format!(
                    "lesions[{i}].location is required and must be a string"
                ))
            })?;
        let location = Location::parse(loc).ok_or_else(|| {
            let allowed: Vec<&str> = Location::ALL.iter().map(|l| l.as_str()).collect();
            invalid(format!(
                "lesions[{i}].location '{loc}' is not one of {}",
                allowed.join(", ")
            ))
            .with("allowed", allowed)
        })?;
        if !seen.insert(label) {
            return Err(invalid(format!("label {label} is listed more than once")));
        }
        lesions.push(LesionRequest { label, location });
    }
    Ok(lesions)
}

/// Check that the series, the segmentation (of that series), the model and every requested
/// lesion label exist in `tenant`; the segmentation row is returned for [`check_labels`]
/// reuse.
pub(super) async fn check_references(
    state: &AppState,
    tenant: &str,
    req: &JobRequest,
) -> ApiResult<crate::store::SegmentationRow> {
    let seg = check_uploads(state, tenant, &req.series_id, &req.segmentation_id).await?;
    check_model(state, tenant, req).await?;
    check_labels(&seg, &req.lesions)?;
    Ok(seg)
}

/// The segmentation `segmentation_id` of `tenant`, which must belong to its series
/// `series_id`; 422 naming the missing (or deleted) upload, or the mismatch; 409 while
/// either still waits for STOW-RS instances.
pub(super) async fn check_uploads(
    state: &AppState,
    tenant: &str,
    series_id: &str,
    segmentation_id: &str,
) -> ApiResult<crate::store::SegmentationRow> {
    check_series_ready(state, tenant, series_id).await?;
    if state.db.series(tenant, series_id).await?.is_none() {
        let kind = UploadKind::Series;
        return Err(unknown_reference(state, tenant, kind, series_id).await);
    }
    let Some(seg) = state.db.segmentation(tenant, segmentation_id).await? else {
        if let Some(pending) = state
            .db
            .pending_segmentation(tenant, segmentation_id)
            .await?
        {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "segmentation-pending",
                "Segmentation not bound yet",
                format!(
                    "segmentation '{}' received by STOW-RS waits for the CT instances of \
                     series '{}': {}",
                    pending.id, pending.series_id, pending.reason
                ),
            ));
        }
        let kind = UploadKind::Segmentation;
        return Err(unknown_reference(state, tenant, kind, segmentation_id).await);
    };
    if seg.series_id != series_id {
        return Err(Problem::unprocessable(
            "segmentation-series-mismatch",
            "Segmentation belongs to another series",
            format!(
                "segmentation '{}' belongs to series '{}', not '{}'",
                seg.id,
                seg.series_id,
                clip(series_id)
            ),
        ));
    }
    Ok(seg)
}

/// 409 while a series received by STOW-RS is still receiving instances or is incomplete
/// (see [`crate::jobs::trigger::Readiness`]), naming why.
async fn check_series_ready(state: &AppState, tenant: &str, series_id: &str) -> ApiResult<()> {
    let readiness =
        crate::jobs::trigger::readiness(&state.db, tenant, series_id, state.stow_stable).await?;
    match readiness.refusal(series_id) {
        None => Ok(()),
        Some(detail) => {
            let (kind, title) = match readiness {
                crate::jobs::trigger::Readiness::Receiving { .. } => {
                    ("series-not-stable", "Series still receiving instances")
                }
                _ => ("series-incomplete", "Series incomplete"),
            };
            let mut problem = Problem::new(StatusCode::CONFLICT, kind, title, detail)
                .with("stow_state", readiness.as_str());
            // A series still receiving is worth retrying once it is stable: say when, in
            // the header clients and proxies honour and in the body.
            if let Some(seconds) = readiness.retry_after_s(crate::store::now_ms()) {
                problem.retry_after_s = Some(seconds);
                problem = problem.with("retry_after_s", seconds);
            }
            Err(problem)
        }
    }
}

/// The job's model must be registered (`model_id`), or the tenant must have an active
/// model; a `model` name must be that model's name. The model itself is chosen again when
/// the job runs (so a job without `model_id` runs with the model active then).
async fn check_model(state: &AppState, tenant: &str, req: &JobRequest) -> ApiResult<()> {
    let row = state
        .registry
        .resolve(tenant, req.model_id.as_deref())
        .await
        .map_err(|e| super::models::registry_problem(e).with("field", "model_id"))?;
    super::job_settings::check_model_settings(req, &row)?;
    if let Some(name) = &req.model
        && *name != row.name
    {
        return Err(Problem::unprocessable(
            "unknown-model",
            "Unknown model",
            format!(
                "model '{}' is not the job's model: model '{}' is '{}' version '{}'",
                clip(name),
                row.id,
                row.name,
                row.version
            ),
        ));
    }
    Ok(())
}

/// Every requested label must be a lesion of the segmentation (its stored lesion list).
pub(super) fn check_labels(
    seg: &crate::store::SegmentationRow,
    requested: &[LesionRequest],
) -> ApiResult<()> {
    let lesions: Value = serde_json::from_str(&seg.lesions).map_err(|e| Problem::internal(&e))?;
    let available: Vec<u64> = lesions
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["label"].as_u64())
        .collect();
    let absent: Vec<u32> = requested
        .iter()
        .map(|l| l.label)
        .filter(|label| !available.contains(&u64::from(*label)))
        .collect();
    if absent.is_empty() {
        return Ok(());
    }
    let list = |v: &[String]| v.join(", ");
    let absent_text: Vec<String> = absent.iter().map(u32::to_string).collect();
    let available_text: Vec<String> = available.iter().map(u64::to_string).collect();
    Err(Problem::unprocessable(
        "unknown-lesion-label",
        "Label not in the segmentation",
        format!(
            "label(s) {} are not lesions of segmentation '{}'; its labels are {}",
            list(&absent_text),
            seg.id,
            if available_text.is_empty() {
                "(none)".to_string()
            } else {
                list(&available_text)
            }
        ),
    )
    .with("absent_labels", absent)
    .with("available_labels", available))
}

/// 422 for a request that names a series or segmentation that does not exist, or that
/// was deleted (the detail then says when and why).
pub(super) async fn unknown_reference(
    state: &AppState,
    tenant: &str,
    kind: UploadKind,
    id: &str,
) -> Problem {
    let field = format!("{}_id", kind.as_str());
    let (slug, title, detail) = match state.db.tombstone(kind, Some(tenant), id).await {
        Ok(Some(t)) => {
            let gone = super::deletion::gone(kind, id, &t);
            let slug = match kind {
                UploadKind::Series => "series-deleted",
                UploadKind::Segmentation => "segmentation-deleted",
            };
            (slug, "Referenced upload was deleted", gone.detail)
        }
        Ok(None) => {
            let (slug, title) = match kind {
                UploadKind::Series => ("unknown-series", "Unknown series"),
                UploadKind::Segmentation => ("unknown-segmentation", "Unknown segmentation"),
            };
            (
                slug,
                title,
                format!("{} '{}' does not exist", kind.as_str(), clip(id)),
            )
        }
        Err(e) => return e.into(),
    };
    Problem::unprocessable(slug, title, detail).with(&field, clip(id))
}

fn invalid<D: Into<String>>(detail: D) -> Problem {
    Problem::unprocessable("invalid-job-request", "Invalid job request", detail)
}

/// The required array `field` of `obj`, holding 1 to `max` entries; faults are reported
/// through `invalid` (each request kind has its own problem type).
pub(super) fn bounded_array<'a>(
    obj: &'a serde_json::Map<String, Value>,
    field: &str,
    max: usize,
    invalid: fn(String) -> Problem,
) -> ApiResult<&'a Vec<Value>> {
    let items = obj
        .get(field)
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("field '{field}' is required and must be an array")))?;
    if items.is_empty() || items.len() > max {
        return Err(invalid(format!(
            "'{field}' must hold 1 to {max} entries, got {}",
            items.len()
        )));
    }
    Ok(items)
}

/// The status document of a job.
pub fn job_json(row: &JobRow) -> Value {
    let request: Value = serde_json::from_str(&row.request).unwrap_or(Value::Null);
    // Jobs from before per-job settings recorded none: `null` (they ran with the service's).
    let settings = request.get("settings").and_then(|s| {
        serde_json::from_value::<crate::features::ExtractionSettings>(s.clone()).ok()
    });
    let kind = row.kind();
    let mut doc = json!({
        "id": row.id,
        "kind": kind.as_str(),
        "status": row.status,
        "progress": row.progress,
        "attempts": row.attempts,
        "series_id": row.series_id,
        "segmentation_id": row.segmentation_id,
        "lesions": request.get("lesions").cloned().unwrap_or(Value::Null),
        "model_id": request.get("model_id").cloned().unwrap_or(Value::Null),
        "settings_name": settings.as_ref().map(|s| s.name.clone()),
        "settings_hash": settings.as_ref().map(|s| s.hash()),
        "settings_source": request.get("settings_source").cloned().unwrap_or(Value::Null),
        "naming": request.get("naming").cloned().unwrap_or(json!("ibsi")),
        "error": row.error,
        "created_at": rfc3339(Some(row.created_at_ms)),
        "started_at": rfc3339(row.started_at_ms),
        "finished_at": rfc3339(row.finished_at_ms),
        "result_url": (row.status == "succeeded").then(|| format!("/v1/jobs/{}/result", row.id)),
        "report_url": (row.status == "succeeded" && kind == JobKind::Extraction)
            .then(|| format!("/v1/jobs/{}/result.dcm", row.id)),
        "csv_url": (row.status == "succeeded" && kind == JobKind::Robustness)
            .then(|| format!("/v1/jobs/{}/result.csv", row.id)),
        "heatmap_url": (row.status == "succeeded" && kind == JobKind::Robustness)
            .then(|| format!("/v1/jobs/{}/result.png", row.id)),
    });
    if kind == JobKind::Robustness
        && let Some(obj) = doc.as_object_mut()
    {
        let options = request.get("options").cloned().unwrap_or(Value::Null);
        obj.insert("robustness".into(), options);
    }
    doc
}

pub(super) fn rfc3339(ms: Option<i64>) -> Option<String> {
    let ms = ms?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
