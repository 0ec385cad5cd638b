//! `GET /v1/jobs`: the caller's tenant's jobs, newest first, however they were created
//! (`POST /v1/jobs`, batches, auto-triggers, UPS-RS work items).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Tenant;
use super::{ApiResult, AppState, Problem};
use crate::store::JobKind;

/// Jobs listed when `limit` is not given.
pub const DEFAULT_JOB_LIST_LIMIT: i64 = 100;

/// Most jobs one listing returns.
pub const MAX_JOB_LIST_LIMIT: i64 = 1000;

/// Job states a listing can be filtered by.
pub const JOB_STATES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

/// Query parameters of `GET /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Only jobs in this state.
    pub status: Option<String>,
    /// Only jobs of this kind (`extraction` or `robustness`).
    pub kind: Option<String>,
    /// At most this many jobs (1 to [`MAX_JOB_LIST_LIMIT`]).
    pub limit: Option<i64>,
}

/// `GET /v1/jobs?status=&kind=&limit=`.
pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<JobListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    if let Some(status) = query.status.as_deref()
        && !JOB_STATES.contains(&status)
    {
        return Err(Problem::bad_request(
            "invalid-query",
            format!(
                "'status' must be one of {}, got '{}'",
                JOB_STATES.join(", "),
                super::series::clip(status)
            ),
        ));
    }
    let kind = match query.kind.as_deref() {
        None => None,
        Some(name) => Some(JobKind::parse(name).ok_or_else(|| {
            let kinds: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
            Problem::bad_request(
                "invalid-query",
                format!(
                    "'kind' must be one of {}, got '{}'",
                    kinds.join(", "),
                    super::series::clip(name)
                ),
            )
        })?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_JOB_LIST_LIMIT);
    if !(1..=MAX_JOB_LIST_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(
            "invalid-query",
            format!("'limit' must be 1 to {MAX_JOB_LIST_LIMIT}, got {limit}"),
        ));
    }
    let rows = state
        .db
        .jobs(&tenant, query.status.as_deref(), kind, limit)
        .await?;
    let jobs: Vec<Value> = rows.iter().map(super::jobs::job_json).collect();
    Ok(Json(json!({ "jobs": jobs })))
}
