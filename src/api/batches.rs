//! `POST /v1/batches` (many jobs in one request, validated up front, enqueued together)
//! and `GET /v1/batches/{id}` (one status for all of them).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::audit::audit_caller;
use super::auth::{Caller, Tenant};
use super::jobs::{
    bounded_array, check_labels, check_references, parse_job_request, read_json_request,
    unknown_reference,
};
use super::{ApiResult, AppState, Problem};
use crate::store::{BatchRow, Enqueue, JobRow, NewJob, now_ms};

/// Most jobs in one batch (each job may hold up to [`super::jobs::MAX_LESIONS_PER_JOB`]
/// lesions).
pub const MAX_JOBS_PER_BATCH: usize = 1000;

/// Job states, in the order the batch status lists their counts.
const JOB_STATES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

/// `POST /v1/batches` with `{jobs: [{series_id, segmentation_id, lesions, model?}, …]}`:
/// every job is validated before any is enqueued; all or none are stored.
#[tracing::instrument(skip_all, fields(batch_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let tenant = caller.tenant.as_str();
    let (idempotency_key, doc) = read_json_request(&state, req).await?;
    let mut requests = parse_batch(&doc)?;
    for request in &mut requests {
        super::job_settings::settle(request, &state.settings);
    }
    // Series and segmentation are looked up once per pair; the labels of every job.
    let mut checked = HashMap::new();
    for (i, request) in requests.iter().enumerate() {
        let pair = (request.series_id.clone(), request.segmentation_id.clone());
        match checked.get(&pair) {
            Some(seg) if request.model.is_none() && request.model_id.is_none() => {
                check_labels(seg, &request.lesions).map_err(|p| in_job(i, p))?;
            }
            _ => {
                let seg = check_references(&state, tenant, request)
                    .await
                    .map_err(|p| in_job(i, p))?;
                checked.insert(pair, seg);
            }
        }
    }
    let request_json = serde_json::to_string(&requests).map_err(|e| Problem::internal(&e))?;
    // A client retry is answered from the stored batch, even when the queue is full now.
    if let Some(key) = &idempotency_key
        && let Some(previous) = state.db.batch_by_key(tenant, key).await?
    {
        return replay(&state, previous, &request_json).await;
    }
    check_room(&state, requests.len()).await?;

    let batch_id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("batch_id", batch_id.as_str());
    let mut jobs = Vec::with_capacity(requests.len());
    for request in &requests {
        jobs.push(NewJob {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.to_string(),
            series_id: request.series_id.clone(),
            segmentation_id: request.segmentation_id.clone(),
            request: serde_json::to_string(request).map_err(|e| Problem::internal(&e))?,
            idempotency_key: None,
            kind: crate::store::JobKind::Extraction,
        });
    }
    let batch = BatchRow {
        id: batch_id,
        tenant_id: tenant.to_string(),
        idempotency_key,
        request: request_json,
        job_count: i64::try_from(jobs.len()).unwrap_or(i64::MAX),
        created_at_ms: now_ms(),
    };
    match state.db.insert_batch(&batch, &jobs).await? {
        Enqueue::Inserted => {}
        // Another request with the same key won the race.
        Enqueue::Existing(previous) => return replay(&state, previous, &batch.request).await,
        // A concurrent DELETE wrote its tombstone after the checks above.
        Enqueue::UploadGone { job, kind, id } => {
            let problem = unknown_reference(&state, tenant, kind, &id).await;
            return Err(in_job(job, problem));
        }
    }
    state.job_enqueued.notify_waiters();
    tracing::info!(jobs = jobs.len(), "batch queued");
    let detail = json!({ "jobs": jobs.len() });
    audit_caller(&state, &caller, "batch.create", "batch", &batch.id, detail).await?;
    accepted(&state, &batch).await
}

/// Answer a repeated creation: the original batch when the request is the same, else 409.
async fn replay(
    state: &AppState,
    previous: BatchRow,
    request_json: &str,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    if previous.request != request_json {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "idempotency-key-reused",
            "Idempotency key reused",
            format!(
                "this Idempotency-Key already created batch '{}' with a different request",
                previous.id
            ),
        ));
    }
    accepted(state, &previous).await
}

/// 202 with the batch status and its `Location`.
async fn accepted(
    state: &AppState,
    stored: &BatchRow,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let rows = state.db.batch_jobs(&stored.tenant_id, &stored.id).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/batches/{}", stored.id).parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(batch_json(stored, &rows)),
    ))
}

/// `GET /v1/batches/{id}`: counts by state, overall progress and a link per job.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let batch = state
        .db
        .batch(&tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("batch", &id))?;
    let rows = state.db.batch_jobs(&tenant, &id).await?;
    Ok(Json(batch_json(&batch, &rows)))
}

/// The `jobs` array, each entry checked like a `POST /v1/jobs` body.
fn parse_batch(doc: &Value) -> ApiResult<Vec<crate::jobs::JobRequest>> {
    let obj = doc
        .as_object()
        .ok_or_else(|| invalid("the body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| k.as_str() != "jobs") {
        return Err(invalid(format!("unknown field '{k}'; expected 'jobs'")));
    }
    let items = bounded_array(obj, "jobs", MAX_JOBS_PER_BATCH, invalid)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_job_request(item).map_err(|p| in_job(i, p)))
        .collect()
}

/// Name the failing entry in a per-job problem.
fn in_job(index: usize, mut problem: Problem) -> Problem {
    problem.detail = format!("jobs[{index}]: {}", problem.detail);
    problem.with("job_index", index)
}

fn invalid<D: Into<String>>(detail: D) -> Problem {
    Problem::unprocessable("invalid-batch-request", "Invalid batch request", detail)
}

/// 429 with `Retry-After` when the batch would take the queue past its bound.
async fn check_room(state: &AppState, jobs: usize) -> ApiResult<()> {
    let queued = u64::try_from(state.db.queued_jobs().await?).unwrap_or(0);
    let max = state.limits.max_queued_jobs;
    if queued.saturating_add(jobs as u64) > max {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue-full",
            "Queue full",
            format!("{queued} jobs are queued; {jobs} more would pass the limit of {max}"),
        );
        p.retry_after_s = Some(super::jobs::QUEUE_FULL_RETRY_AFTER_S);
        return Err(p);
    }
    Ok(())
}

/// The status document of a batch: `queued` until a job starts, `running` while any job
/// is unfinished, then `finished`.
pub fn batch_json(batch: &BatchRow, jobs: &[JobRow]) -> Value {
    let count = |state: &str| jobs.iter().filter(|j| j.status == state).count();
    let counts: serde_json::Map<String, Value> = JOB_STATES
        .iter()
        .map(|s| (s.to_string(), json!(count(s))))
        .collect();
    let unfinished = count("queued") + count("running");
    let status = if unfinished == 0 {
        "finished"
    } else if unfinished == jobs.len() && count("running") == 0 {
        "queued"
    } else {
        "running"
    };
    let progress = if jobs.is_empty() {
        0.0
    } else {
        jobs.iter().map(|j| j.progress).sum::<f64>() / jobs.len() as f64
    };
    let links: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "status": j.status,
                "url": format!("/v1/jobs/{}", j.id),
                "result_url": (j.status == "succeeded")
                    .then(|| format!("/v1/jobs/{}/result", j.id)),
            })
        })
        .collect();
    json!({
        "id": batch.id,
        "status": status,
        "job_count": batch.job_count,
        "counts": counts,
        "progress": progress,
        "created_at": super::jobs::rfc3339(Some(batch.created_at_ms)),
        "jobs": links,
    })
}
