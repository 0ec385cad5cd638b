//! `POST /v1/segmentations` and `GET /v1/segmentations/{id}`: lesion masks bound to a series.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit::audit_caller;
use super::auth::{Caller, Tenant};
use super::series::{dicom_problem, unsupported_media};
use super::upload::{media_type, read_multipart};
use super::{ApiResult, AppState, Problem};
use crate::image::Segmentation;
use crate::pipeline::{self, SegmentationError, SegmentationFormat};
use crate::store::{SegmentationRow, UploadKind, now_ms};

/// Query parameters of a raw-body segmentation upload.
#[derive(Debug, Deserialize)]
pub struct CreateQuery {
    /// The series the mask belongs to.
    pub series_id: Option<String>,
    /// Original file name, for messages.
    pub filename: Option<String>,
}

/// `POST /v1/segmentations`: multipart (`series_id` field + `file` part) or a raw body with
/// `?series_id=`. NIfTI and NRRD label maps, DICOM SEG and RTSTRUCT are recognised by
/// content.
#[tracing::instrument(skip_all, fields(series_id = tracing::field::Empty, segmentation_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<CreateQuery>,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let limits = state.limits;
    limits.check_declared_length(&req)?;
    let (series_id, file_name, bytes) = match media_type(&req).as_str() {
        "multipart/form-data" => {
            from_multipart(read_multipart(req, &state, &limits).await?, query)?
        }
        "application/octet-stream"
        | "application/dicom"
        | "application/gzip"
        | "application/x-gzip" => {
            let body = limits.read_body(req.into_body()).await?;
            let series_id = query.series_id.ok_or_else(|| {
                Problem::bad_request(
                    "missing-series-id",
                    "query parameter 'series_id' is required",
                )
            })?;
            (series_id, query.filename, body)
        }
        other => {
            return Err(unsupported_media(
                other,
                "multipart/form-data, application/octet-stream, application/dicom or application/gzip",
            ));
        }
    };
    metrics::counter!("radscore_upload_bytes_total", "kind" => "segmentation")
        .increment(bytes.len() as u64);
    tracing::Span::current().record("series_id", series_id.as_str());

    let Some(series) = state.db.series(&caller.tenant, &series_id).await? else {
        let kind = UploadKind::Series;
        let problem = super::jobs::unknown_reference(&state, &caller.tenant, kind, &series_id);
        return Err(problem.await);
    };
    let row = create_from_bytes(&state, &caller, &series, file_name, bytes).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/segmentations/{}", row.id).parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(segmentation_json(&row)?)))
}

/// Read a segmentation onto `series`' grid and store it under the series' tenant, audited
/// as the caller's upload (also used by STOW-RS).
pub(super) async fn create_from_bytes(
    state: &AppState,
    caller: &Caller,
    series: &crate::store::SeriesRow,
    file_name: Option<String>,
    bytes: Bytes,
) -> ApiResult<SegmentationRow> {
    let grid = super::series::grid_from_row(series)?;
    let frame_of_reference = series.frame_of_reference_uid.clone();
    let seg_bytes = bytes.clone();
    let name = file_name.clone();
    let (format, seg) = tokio::task::spawn_blocking(move || {
        pipeline::read_segmentation(
            &seg_bytes,
            name.as_deref(),
            &grid,
            frame_of_reference.as_deref(),
        )
        .map_err(segmentation_problem)
    })
    .await
    .map_err(|e| Problem::internal(&e))??;

    let id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("segmentation_id", id.as_str());
    let row = store_segmentation(state, &id, series, format, file_name, bytes, &seg).await?;
    tracing::info!(
        lesions = seg.lesions.len(),
        format = format.as_str(),
        "segmentation stored"
    );
    let detail = json!({
        "series_id": series.id, "format": format.as_str(), "lesions": seg.lesions.len()
    });
    audit_caller(
        state,
        caller,
        "segmentation.upload",
        "segmentation",
        &id,
        detail,
    )
    .await?;
    Ok(row)
}

/// `GET /v1/segmentations/{id}`; 410 Gone for a deleted or purged segmentation of the
/// tenant.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let Some(row) = state.db.segmentation(&tenant, &id).await? else {
        let kind = UploadKind::Segmentation;
        return Err(super::deletion::missing(&state, &tenant, kind, &id).await);
    };
    Ok(Json(segmentation_json(&row)?))
}

/// `DELETE /v1/segmentations/{id}`, unless unfinished jobs use it (see
/// [`super::deletion`]).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::response::Response> {
    super::deletion::delete(&state, &caller, UploadKind::Segmentation, &id).await
}

fn from_multipart(
    parts: Vec<super::upload::Part>,
    query: CreateQuery,
) -> ApiResult<(String, Option<String>, Bytes)> {
    let mut series_id = query.series_id;
    let mut file = None;
    for part in parts {
        match part.field.as_str() {
            "series_id" => {
                series_id = Some(String::from_utf8_lossy(&part.bytes).trim().to_string())
            }
            "file" => file = Some((part.file_name, part.bytes)),
            other => {
                return Err(Problem::bad_request(
                    "unexpected-field",
                    format!(
                        "unexpected multipart field '{other}'; expected 'series_id' and 'file'"
                    ),
                ));
            }
        }
    }
    let series_id = series_id.ok_or_else(|| {
        Problem::bad_request(
            "missing-series-id",
            "multipart field 'series_id' is required",
        )
    })?;
    let (file_name, bytes) = file.ok_or_else(|| {
        Problem::bad_request("missing-file", "multipart field 'file' is required")
    })?;
    Ok((series_id, file_name, bytes))
}

async fn store_segmentation(
    state: &AppState,
    id: &str,
    series: &crate::store::SeriesRow,
    format: SegmentationFormat,
    file_name: Option<String>,
    bytes: Bytes,
    seg: &Segmentation,
) -> ApiResult<SegmentationRow> {
    let blob_key = format!("segmentations/{id}");
    state.blobs.put(&blob_key, bytes).await?;
    let lesions: Vec<Value> = seg
        .lesions
        .iter()
        .map(|l| {
            let [min, max] = l.bbox_zyx();
            json!({
                "label": l.label,
                "name": l.name,
                "voxel_count": l.voxel_count(),
                "bbox": { "min_zyx": min, "max_zyx": max },
            })
        })
        .collect();
    let row = SegmentationRow {
        id: id.into(),
        tenant_id: series.tenant_id.clone(),
        series_id: series.id.clone(),
        format: format.as_str().into(),
        file_name,
        blob_key: blob_key.clone(),
        lesions: Value::Array(lesions).to_string(),
        created_at_ms: now_ms(),
    };
    if let Err(e) = state.db.insert_segmentation(&row).await {
        if let Err(cleanup) = state.blobs.delete_prefix(&blob_key).await {
            tracing::warn!(error.message = %cleanup, "could not remove the blob of a failed upload");
        }
        return Err(e.into());
    }
    Ok(row)
}

fn segmentation_json(row: &SegmentationRow) -> ApiResult<Value> {
    let lesions: Value = serde_json::from_str(&row.lesions).map_err(|e| Problem::internal(&e))?;
    Ok(json!({
        "id": row.id,
        "series_id": row.series_id,
        "format": row.format,
        "file_name": row.file_name,
        "lesions": lesions,
    }))
}

/// Map a segmentation error to a 422 that names the fault.
pub fn segmentation_problem(e: SegmentationError) -> Problem {
    match e {
        SegmentationError::UnknownFormat { .. } => Problem::unprocessable(
            "unknown-segmentation-format",
            "Unknown segmentation format",
            e.to_string(),
        ),
        SegmentationError::Dicom(d) => dicom_problem(d),
        SegmentationError::Image(i) => Problem::unprocessable(
            "segmentation-refused",
            "Segmentation refused",
            i.to_string(),
        ),
    }
}
