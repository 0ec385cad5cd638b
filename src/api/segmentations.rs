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
use super::upload::{UploadLimits, media_type, read_multipart};
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
    query: Result<Query<CreateQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    // A malformed query (e.g. `series_id` twice) is a problem document, not axum's plain
    // text (found by the break test).
    let Query(query) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    // A segmentation is read into memory to be mapped: its own, smaller body limit, and a
    // 413 that names it.
    let limits = state.limits.for_segmentation();
    let too_large = UploadLimits::rename_too_large(|| {
        state
            .limits
            .segmentation_too_large("the segmentation upload")
    });
    limits.check_declared_length(&req).map_err(&too_large)?;
    let (series_id, file_name, bytes) = match media_type(&req).as_str() {
        "multipart/form-data" => {
            let parts = read_multipart(req, &limits).await.map_err(&too_large)?;
            from_multipart(parts, query)?
        }
        "application/octet-stream"
        | "application/dicom"
        | "application/gzip"
        | "application/x-gzip" => {
            let body = limits
                .read_body(req.into_body())
                .await
                .map_err(&too_large)?;
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
    let id = uuid::Uuid::now_v7().to_string();
    create_from_bytes_as(state, caller, series, &id, file_name, bytes).await
}

/// As [`create_from_bytes`], with the id the segmentation gets (a STOW-RS segmentation
/// that waited for its series keeps the id it was answered with).
pub(super) async fn create_from_bytes_as(
    state: &AppState,
    caller: &Caller,
    series: &crate::store::SeriesRow,
    id: &str,
    file_name: Option<String>,
    bytes: Bytes,
) -> ApiResult<SegmentationRow> {
    let grid = super::series::grid_from_row(series)?;
    let acquired = acquired_stack(state, series, &bytes).await?;
    let frame_of_reference = series.frame_of_reference_uid.clone();
    let seg_bytes = bytes.clone();
    let name = file_name.clone();
    let series_uid = series.series_uid.clone();
    let series_id = series.id.clone();
    let (format, seg) = tokio::task::spawn_blocking(move || {
        check_referenced_series(&seg_bytes, name.as_deref(), &series_uid, &series_id)?;
        pipeline::read_segmentation_on(
            &seg_bytes,
            name.as_deref(),
            crate::dicom::MaskTarget::new(&grid, acquired.as_ref()),
            frame_of_reference.as_deref(),
        )
        .map_err(segmentation_problem)
    })
    .await
    .map_err(|e| Problem::internal(&e))??;

    tracing::Span::current().record("segmentation_id", id);
    let row = store_segmentation(state, id, series, format, file_name, bytes, &seg).await?;
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
        id,
        detail,
    )
    .await?;
    Ok(row)
}

/// The acquired slices of a resampled series (`RADSCORE_GEOMETRY=resample`), for a DICOM
/// SEG or RTSTRUCT: those place their masks on the acquired slices, which are not the
/// series grid, so the stored instances' headers are read again (one instance in memory at
/// a time, as a job does) and the masks resampled like the image. `None` for a regular
/// series and for label maps, which are on the series grid already.
async fn acquired_stack(
    state: &AppState,
    series: &crate::store::SeriesRow,
    bytes: &[u8],
) -> ApiResult<Option<crate::dicom::AcquiredStack>> {
    let policy = super::series::policy_of_row(series);
    if policy != crate::dicom::GeometryPolicy::Resample
        || SegmentationFormat::sniff(bytes) != Some(SegmentationFormat::DicomSeg)
    {
        return Ok(None);
    }
    // The instance headers come from the process-wide header cache after the first read.
    // LIMITATION: the first SEG/RTSTRUCT upload per process re-reads every instance header.
    let keys = state.blobs.list(&series.blob_prefix).await?;
    let files = crate::jobs::worker::BlobInstances::new(state.blobs.clone(), keys);
    let planned = tokio::task::spawn_blocking(move || {
        crate::dicom::plan_series(&files, policy).map(|plan| plan.summary().acquired.clone())
    })
    .await
    .map_err(|e| Problem::internal(&e))?;
    // The instances were checked when the series was stored: failing now is our fault.
    planned.map_err(|e| Problem::internal(&e))
}

/// A DICOM SEG names the series it segments (ReferencedSeriesSequence, PS3.3 C.8.20.2),
/// an RT Structure Set the series its ROIs were drawn on (RT Referenced Series Sequence,
/// C.8.8.5); it must be the series it is uploaded for, as STOW-RS routes it (a series of
/// the same frame of reference is another image: its features would not be the
/// contoured image's). Files that are not a readable SEG or RTSTRUCT are left to
/// [`pipeline::read_segmentation`] to report.
fn check_referenced_series(
    bytes: &[u8],
    file_name: Option<&str>,
    series_uid: &str,
    series_id: &str,
) -> ApiResult<()> {
    if pipeline::SegmentationFormat::sniff(bytes) != Some(SegmentationFormat::DicomSeg) {
        return Ok(());
    }
    let Ok(identity) = crate::dicom::identify(file_name.unwrap_or("segmentation"), bytes) else {
        return Ok(());
    };
    let (kind, attribute) = match identity.sop_class_uid.as_deref() {
        Some(crate::dicom::seg::SEGMENTATION_STORAGE) => ("DICOM SEG", "ReferencedSeriesSequence"),
        Some(crate::dicom::rtstruct::RT_STRUCTURE_SET_STORAGE) => (
            "RT Structure Set",
            "ReferencedFrameOfReferenceSequence > RT Referenced Study Sequence > RT \
             Referenced Series Sequence",
        ),
        _ => return Ok(()),
    };
    match identity.referenced_series_uid {
        Some(referenced) if !referenced.is_empty() && referenced != series_uid => {
            Err(Problem::unprocessable(
                "segmentation-series-mismatch",
                "Segmentation references another series",
                format!(
                    "the {kind} references series {referenced} ({attribute}), but it was \
                     uploaded for series '{series_id}' whose SeriesInstanceUID is {series_uid}"
                ),
            )
            .with("referenced_series_uid", referenced)
            .with("series_instance_uid", series_uid))
        }
        _ => Ok(()),
    }
}

/// `GET /v1/segmentations/{id}`; 410 Gone for a deleted or purged segmentation of the
/// tenant.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let Some(row) = state.db.segmentation(&tenant, &id).await? else {
        // A STOW-RS segmentation waiting for the CT instances it maps onto.
        if let Some(pending) = state.db.pending_segmentation(&tenant, &id).await? {
            return Ok(Json(json!({
                "id": pending.id,
                "series_id": pending.series_id,
                "status": "pending",
                "reason": pending.reason,
                "file_name": pending.file_name,
                "lesions": [],
            })));
        }
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
            let warnings: Vec<&str> = seg
                .warnings
                .iter()
                .filter(|(label, _)| *label == l.label)
                .map(|(_, message)| message.as_str())
                .collect();
            json!({
                "label": l.label,
                "name": l.name,
                "voxel_count": l.voxel_count(),
                "bbox": { "min_zyx": min, "max_zyx": max },
                "warnings": warnings,
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
        "status": "bound",
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
