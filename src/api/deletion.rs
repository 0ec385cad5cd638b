//! `DELETE /v1/series/{id}` and `DELETE /v1/segmentations/{id}`, and the 410 Gone answer
//! for a series or segmentation that was deleted or purged by the retention policy.
//!
//! Deleting a series deletes its segmentations too, and the STOW-RS segmentations still
//! waiting for it. A STOW-RS series whose instances never assembled into a series is
//! deleted like any other (its staged instances and waiting segmentations go; a `GET`
//! answers 410). Both are refused with 409 while a queued or running job uses them (the
//! problem names the jobs); results of finished jobs are kept, as they do not depend on the
//! uploads. See [`crate::jobs::retention`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::audit::audit_caller;
use super::auth::Caller;
use super::jobs::rfc3339;
use super::series::clip;
use super::{ApiResult, AppState, Problem};
use crate::jobs::retention::delete_upload;
use crate::store::{Deletion, DeletionReason, Tombstone, UploadKind};

/// Delete the caller's `id` of `kind` for a `DELETE` request: 204, or 404 (also for
/// another tenant's id) / 409 / 410. Audited as `delete.series` / `delete.segmentation`.
#[tracing::instrument(skip_all, fields(kind = kind.as_str(), id = %clip(id)))]
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    kind: UploadKind,
    id: &str,
) -> ApiResult<Response> {
    // A STOW-RS series resource: not while a request of its series stages or binds.
    let _serialised = match kind {
        UploadKind::Series => match state.db.stow_series(&caller.tenant, id).await? {
            Some(stow) => {
                Some(super::stow_series::series_lock(&caller.tenant, &stow.series_uid).await)
            }
            None => None,
        },
        UploadKind::Segmentation => None,
    };
    let deletion = delete_upload(
        &state.db,
        &state.blobs,
        kind,
        Some(&caller.tenant),
        id,
        DeletionReason::Deleted,
    )
    .await?;
    match deletion {
        Deletion::Deleted(removed) => {
            tracing::info!(uploads = removed.len(), "upload deleted");
            let action = match kind {
                UploadKind::Series => "delete.series",
                UploadKind::Segmentation => "delete.segmentation",
            };
            let detail = serde_json::json!({ "uploads_removed": removed.len() });
            audit_caller(state, caller, action, kind.as_str(), id, detail).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Deletion::Gone(tombstone) => Err(gone(kind, id, &tombstone)),
        Deletion::NotFound => Err(Problem::not_found(kind.as_str(), id)),
        Deletion::InUse(jobs) => Err(in_use(kind, id, &jobs)),
    }
}

/// 409: queued or running jobs still use the upload.
fn in_use(kind: UploadKind, id: &str, jobs: &[String]) -> Problem {
    let what = match kind {
        UploadKind::Series => "its segmentations",
        UploadKind::Segmentation => "it",
    };
    Problem::new(
        StatusCode::CONFLICT,
        "upload-in-use",
        "Upload in use by unfinished jobs",
        format!(
            "{} '{}' cannot be deleted while queued or running jobs use {what}: {}; \
             wait for them to finish or cancel them with DELETE /v1/jobs/{{id}}",
            kind.as_str(),
            clip(id),
            jobs.join(", ")
        ),
    )
    .with("job_ids", jobs.to_vec())
}

/// 410: the upload was deleted, saying when and why.
pub fn gone(kind: UploadKind, id: &str, tombstone: &Tombstone) -> Problem {
    let when = rfc3339(Some(tombstone.deleted_at_ms)).unwrap_or_else(|| "an unknown time".into());
    let why = match tombstone.reason {
        DeletionReason::Deleted => "deleted by a DELETE request",
        DeletionReason::Retention => {
            "purged by the retention policy (RADSCORE_RETENTION_HOURS): older than the \
             retention period, and no queued or running job used it"
        }
    };
    Problem::new(
        StatusCode::GONE,
        "gone",
        "Resource deleted",
        format!(
            "{} '{}' was {why} at {when}; results of its finished jobs are kept",
            kind.as_str(),
            clip(id)
        ),
    )
    .with("deleted_at", when)
    .with("reason", tombstone.reason.as_str())
}

/// The problem for an id that names no live upload of `tenant`: 410 when the tenant
/// deleted it, else 404.
pub async fn missing(state: &AppState, tenant: &str, kind: UploadKind, id: &str) -> Problem {
    match state.db.tombstone(kind, Some(tenant), id).await {
        Ok(Some(t)) => gone(kind, id, &t),
        Ok(None) => Problem::not_found(kind.as_str(), id),
        Err(e) => e.into(),
    }
}
