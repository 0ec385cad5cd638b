//! `GET /v1/jobs/{id}/result.dcm`: the job result as a DICOM SR measurement report
//! (TID 1500, see [`crate::sr`]).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use serde_json::json;

use super::audit::audit_caller;
use super::auth::Caller;
use super::series::clip;
use super::{ApiResult, AppState, Problem};
use crate::jobs::report::{ReportError, report_for_job};
use crate::sr::DICOM_MEDIA_TYPE;
use crate::store::JobKind;

/// The report as `application/dicom`; 409 while the job has not succeeded.
#[tracing::instrument(skip_all, fields(job_id = %id))]
pub async fn result_dcm(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let row = super::jobs::tenant_job(&state, &caller.tenant, &id).await?;
    super::jobs::require_kind(&row, JobKind::Extraction, "a DICOM report")?;
    match report_for_job(&state.db, &state.blobs, &row).await {
        Ok(bytes) => {
            audit_caller(
                &state,
                &caller,
                "result.read",
                "job",
                &row.id,
                json!({"format": "dicom-sr"}),
            )
            .await?;
            Ok(([(header::CONTENT_TYPE, DICOM_MEDIA_TYPE)], bytes))
        }
        Err(ReportError::NotSucceeded(status)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "job-not-succeeded",
            "Job has no result",
            format!(
                "job '{}' is {status}; a DICOM report exists only for a succeeded job",
                clip(&id)
            ),
        )
        .with("status", status)),
        // LIMITATION: the report is built from the source series' headers, so it cannot be
        // rebuilt once the series was deleted or purged by retention (the JSON result stays).
        Err(ReportError::Missing(what)) => Err(Problem::new(
            StatusCode::GONE,
            "report-source-gone",
            "Report source deleted",
            format!(
                "the {what} of job '{}' was deleted; its DICOM report can no longer be built \
                 (the JSON result is still at /v1/jobs/{{id}}/result)",
                clip(&id)
            ),
        )),
        Err(e) => Err(Problem::internal(&e)),
    }
}
