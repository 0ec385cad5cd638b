//! `POST /v1/series` and `GET /v1/series/{id}`: upload and assemble a CT series.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit::audit_caller;
use super::auth::{Caller, Tenant};
use super::spool::{Spool, SpooledPart};
use super::upload::{form_boundary, media_type};
use super::{ApiResult, AppState, Problem};
use crate::dicom::{self, FileRef, GeometryStatus, SeriesSummary};
use crate::image::Grid;
use crate::jobs::trigger;
use crate::store::{SeriesRow, StowSeriesRow, UploadKind, now_ms};

/// Query parameters of a series upload.
#[derive(Debug, Default, Deserialize)]
pub struct CreateQuery {
    /// Remove patient-identifying attributes from the stored instances (DICOM PS3.15
    /// Basic Application Level Confidentiality Profile); pixel data and geometry are kept.
    #[serde(default)]
    pub deidentify: bool,
}

/// `POST /v1/series`: a series as `application/zip` or `multipart/form-data`, spooled to
/// a temporary directory and checked one instance at a time (bounded memory).
#[tracing::instrument(skip_all, fields(series_id = tracing::field::Empty, series_uid = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<CreateQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    // A malformed parameter (`?deidentify=yes`) is a problem document like any other fault.
    let Query(query) = query.map_err(|e| Problem::bad_request("invalid-query", e.body_text()))?;
    let limits = state.limits;
    limits.check_declared_length(&req)?;
    let mut spool = Spool::new()?;
    let files = match media_type(&req).as_str() {
        "application/zip" | "application/x-zip-compressed" => {
            let (zip, len) = spool.body_to_file(req.into_body(), &limits).await?;
            metrics::counter!("radscore_upload_bytes_total", "kind" => "series").increment(len);
            let archive_limits = dicom::archive::ArchiveLimits {
                max_entries: limits.max_files,
                max_total_bytes: limits.max_uncompressed_bytes,
            };
            let dir = spool.dir().to_owned();
            tokio::task::spawn_blocking(move || {
                let files = dicom::unzip_to_dir(&zip, &dir, &archive_limits);
                // The archive is not needed once unpacked: free its disk space early.
                let _ = std::fs::remove_file(&zip);
                files
            })
            .await
            .map_err(|e| Problem::internal(&e))?
            .map_err(dicom_problem)?
        }
        "multipart/form-data" => {
            let boundary = form_boundary(&req)?;
            let parts = spool
                .multipart(req.into_body().into_data_stream(), boundary, &limits)
                .await?;
            if let Some(part) = parts.iter().find(|p| p.headerless) {
                return Err(super::spool::headerless_form_part(part.number));
            }
            let total: u64 = parts.iter().map(|p| p.len).sum();
            metrics::counter!("radscore_upload_bytes_total", "kind" => "series").increment(total);
            parts.iter().map(SpooledPart::file_ref).collect()
        }
        other => {
            return Err(unsupported_media(
                other,
                "application/zip or multipart/form-data",
            ));
        }
    };
    if files.is_empty() {
        return Err(Problem::bad_request(
            "empty-upload",
            "the upload contains no files",
        ));
    }

    let (files, summary) = check_series(files, limits.geometry, query.deidentify).await?;
    let summary = summary.map_err(dicom_problem)?;

    let id = uuid::Uuid::now_v7().to_string();
    let span = tracing::Span::current();
    span.record("series_id", id.as_str());
    span.record("series_uid", summary.series_uid.as_str());
    let row = store_series(&state, &caller.tenant, &id, &files, &summary).await?;
    drop(spool);
    tracing::info!(instances = summary.instance_count, "series stored");
    let detail = json!({ "instances": summary.instance_count, "via": "api" });
    audit_caller(&state, &caller, "series.upload", "series", &id, detail).await?;

    let mut headers = HeaderMap::new();
    if let Ok(v) = format!("/v1/series/{id}").parse() {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(series_json(&row)?)))
}

/// Check spooled instance files as a series (one file in memory at a time), after
/// de-identifying them in place when asked.
pub(super) async fn check_series(
    files: Vec<FileRef>,
    policy: dicom::GeometryPolicy,
    deidentify: bool,
) -> ApiResult<(Vec<FileRef>, Result<SeriesSummary, dicom::DicomError>)> {
    tokio::task::spawn_blocking(move || {
        if deidentify {
            for f in &files {
                if let Err(e) = dicom::deidentify::deidentify_file(&f.name, &f.path) {
                    return (files, Err(e));
                }
            }
        }
        let result = dicom::scan_series(&files, policy);
        (files, result)
    })
    .await
    .map_err(|e| Problem::internal(&e))
}

/// `GET /v1/series/{id}`; 410 Gone for a deleted or purged series of the tenant.
pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let stow = state.db.stow_series(&tenant, &id).await?;
    let row = state.db.series(&tenant, &id).await?;
    let mut doc = match (&row, &stow) {
        (Some(row), _) => series_json(row)?,
        // Received by STOW-RS, but its instances have never assembled into a series.
        (None, Some(stow))
            if state
                .db
                .tombstone(UploadKind::Series, Some(&tenant), &id)
                .await?
                .is_none() =>
        {
            json!({
                "id": stow.id,
                "series_instance_uid": stow.series_uid,
                "instance_count": stow.instance_count,
                "warnings": [],
            })
        }
        _ => return Err(super::deletion::missing(&state, &tenant, UploadKind::Series, &id).await),
    };
    if let (Some(stow), Some(d)) = (stow, doc.as_object_mut()) {
        d.insert("stow".into(), stow_json(&stow, state.stow_stable));
    }
    Ok(Json(doc))
}

/// The `stow` member of a series received by STOW-RS: its version, whether it is still
/// receiving, complete or incomplete, and why (see [`trigger::Readiness`]).
fn stow_json(stow: &StowSeriesRow, stable: std::time::Duration) -> Value {
    let readiness = trigger::Readiness::of(stow, now_ms(), stable);
    let (stable_at_ms, reason) = match &readiness {
        trigger::Readiness::Ready => (None, None),
        trigger::Readiness::Receiving {
            stable_at_ms,
            reason,
        } => (Some(*stable_at_ms), reason.clone()),
        trigger::Readiness::Incomplete { reason } => (None, Some(reason.clone())),
    };
    json!({
        "state": readiness.as_str(),
        "version": stow.version,
        "instances_received": stow.instance_count,
        "last_instance_at_ms": stow.last_instance_at_ms,
        "stable_at_ms": stable_at_ms,
        "reason": reason,
    })
}

/// `DELETE /v1/series/{id}`: the series and its segmentations, unless unfinished jobs use
/// them (see [`super::deletion`]).
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::response::Response> {
    super::deletion::delete(&state, &caller, UploadKind::Series, &id).await
}

/// Store the instance files of `tenant` (streamed from the spool), then the row; roll the
/// blobs back if anything fails.
pub(super) async fn store_series(
    state: &AppState,
    tenant: &str,
    id: &str,
    files: &[FileRef],
    summary: &SeriesSummary,
) -> ApiResult<SeriesRow> {
    let row = series_row(tenant, id, summary);
    let prefix = row.blob_prefix.clone();
    let stored = async {
        for (n, f) in files.iter().enumerate() {
            state
                .blobs
                .put_file(&format!("{prefix}/{n:06}.dcm"), &f.path)
                .await?;
        }
        state.db.insert_series(&row).await
    }
    .await;
    if let Err(e) = stored {
        if let Err(cleanup) = state.blobs.delete_prefix(&prefix).await {
            tracing::warn!(error.message = %cleanup, "could not remove blobs of a failed upload");
        }
        return Err(e.into());
    }
    Ok(row)
}

/// The row of series `id` of `tenant` assembled as `summary`; its instance blobs live under
/// `series/{id}`.
pub(super) fn series_row(tenant: &str, id: &str, summary: &SeriesSummary) -> SeriesRow {
    SeriesRow {
        id: id.to_string(),
        tenant_id: tenant.to_string(),
        series_uid: summary.series_uid.clone(),
        frame_of_reference_uid: summary.frame_of_reference_uid.clone(),
        instance_count: i64::try_from(summary.instance_count).unwrap_or(i64::MAX),
        geometry: geometry_json(
            &summary.grid,
            summary.measured_slice_spacing_mm,
            &summary.geometry,
        )
        .to_string(),
        warnings: serde_json::to_string(&summary.warnings).unwrap_or_else(|_| "[]".into()),
        blob_prefix: format!("series/{id}"),
        created_at_ms: now_ms(),
    }
}

/// The geometry document of a series (x/y/z keys are world axes of the array: x = column,
/// y = row, z = slice), with whether the grid is the acquired stack or a resampling of it.
pub fn geometry_json(
    grid: &Grid,
    measured_slice_spacing_mm: f64,
    status: &GeometryStatus,
) -> Value {
    let [nz, ny, nx] = grid.shape_vox;
    let [sz, sy, sx] = grid.spacing_mm;
    json!({
        "dimensions": { "x": nx, "y": ny, "z": nz },
        "spacing_mm": { "x": sx, "y": sy, "z": sz },
        "measured_slice_spacing_mm": measured_slice_spacing_mm,
        "origin_mm": grid.origin_mm,
        "direction": { "x": grid.direction[2], "y": grid.direction[1], "z": grid.direction[0] },
        "geometry": status.to_json(),
    })
}

/// The geometry policy that rebuilds a stored series' grid from its instances: resampled
/// series are resampled again (deterministically), others must be regular.
pub fn policy_of_row(row: &SeriesRow) -> dicom::GeometryPolicy {
    let resampled = serde_json::from_str::<Value>(&row.geometry)
        .ok()
        .and_then(|g| g["geometry"]["status"].as_str().map(|s| s == "resampled"))
        .unwrap_or(false);
    if resampled {
        dicom::GeometryPolicy::Resample
    } else {
        dicom::GeometryPolicy::Refuse
    }
}

/// Rebuild a series' voxel grid from its stored geometry document.
pub fn grid_from_row(row: &SeriesRow) -> ApiResult<Grid> {
    let g: Value = serde_json::from_str(&row.geometry).map_err(|e| Problem::internal(&e))?;
    let num = |v: &Value| v.as_f64();
    let vec3 = |v: &Value| -> Option<[f64; 3]> {
        let a = v.as_array()?;
        Some([num(a.first()?)?, num(a.get(1)?)?, num(a.get(2)?)?])
    };
    let axes = |key: &str| -> Option<[f64; 3]> {
        let o = g.get(key)?;
        Some([num(o.get("z")?)?, num(o.get("y")?)?, num(o.get("x")?)?])
    };
    let grid = (|| {
        let dims = axes("dimensions")?;
        Some(Grid {
            shape_vox: [dims[0] as usize, dims[1] as usize, dims[2] as usize],
            spacing_mm: axes("spacing_mm")?,
            origin_mm: vec3(g.get("origin_mm")?)?,
            direction: {
                let d = g.get("direction")?;
                [vec3(d.get("z")?)?, vec3(d.get("y")?)?, vec3(d.get("x")?)?]
            },
        })
    })();
    grid.ok_or_else(|| {
        Problem::internal(&format!(
            "stored geometry of series {} is incomplete",
            row.id
        ))
    })
}

fn series_json(row: &SeriesRow) -> ApiResult<Value> {
    let geometry: Value = serde_json::from_str(&row.geometry).map_err(|e| Problem::internal(&e))?;
    let warnings: Value = serde_json::from_str(&row.warnings).map_err(|e| Problem::internal(&e))?;
    let mut doc = json!({
        "id": row.id,
        "series_instance_uid": row.series_uid,
        "frame_of_reference_uid": row.frame_of_reference_uid,
        "instance_count": row.instance_count,
        "warnings": warnings,
    });
    if let (Some(d), Value::Object(g)) = (doc.as_object_mut(), geometry) {
        d.extend(g);
    }
    Ok(doc)
}

/// 415 for an upload in a media type we do not read.
pub fn unsupported_media(found: &str, accepted: &str) -> Problem {
    let found = if found.is_empty() { "(none)" } else { found };
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        format!(
            "Content-Type '{}' is not accepted here; send {accepted}",
            clip(found)
        ),
    )
}

/// Longest client-supplied text echoed in a problem `detail`.
pub const MAX_ECHO_CHARS: usize = 80;

/// Client-supplied text shortened for messages (ids, media types).
pub fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_ECHO_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX_ECHO_CHARS).collect();
        format!("{head}…")
    }
}

/// Map a DICOM ingestion error to a 4xx problem that names the fault.
pub fn dicom_problem(e: dicom::DicomError) -> Problem {
    use dicom::DicomError as E;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let (status, kind) = match &e {
        E::NoFiles => (StatusCode::BAD_REQUEST, "empty-upload"),
        E::NotDicom { .. } => (unprocessable, "not-dicom"),
        E::Malformed { .. } => (unprocessable, "malformed-dicom"),
        E::MissingTag { .. } => (unprocessable, "missing-attribute"),
        E::BadValue { .. } | E::UnknownVr { .. } | E::WrongVr { .. } | E::NotGreyscale { .. } => {
            (unprocessable, "invalid-attribute")
        }
        E::MixedPatientOrStudy { .. } => (unprocessable, "mixed-patient-or-study"),
        E::ConflictingDuplicate { .. } => (unprocessable, "conflicting-duplicate-instance"),
        E::Inconsistent { .. } => (unprocessable, "inconsistent-series"),
        E::MixedSeries { .. } => (unprocessable, "mixed-series"),
        E::DuplicatePosition { .. } => (unprocessable, "duplicate-slice-position"),
        E::MissingSlice { .. } => (unprocessable, "missing-slice"),
        E::NonUniformSpacing { .. } => (unprocessable, "non-uniform-spacing"),
        E::ShearedStack { .. } => (unprocessable, "sheared-stack"),
        E::Unsupported { .. } => (unprocessable, "unsupported-dicom"),
        E::UnsupportedTransferSyntax { .. } => (unprocessable, "unsupported-transfer-syntax"),
        E::PixelDecode { .. } => (unprocessable, "pixel-data-undecodable"),
        E::PixelDataTooShort { .. } => (unprocessable, "pixel-data-too-short"),
        E::PixelDataTooLong { .. } => (unprocessable, "pixel-data-too-long"),
        E::NotSegmentation { .. } => (unprocessable, "not-segmentation"),
        E::SegFrame { .. } => (unprocessable, "invalid-segmentation-frame"),
        E::SegFrameGrid { .. } => (unprocessable, "segmentation-grid-mismatch"),
        E::EmptySegment { .. } => (unprocessable, "empty-segment"),
        E::ResampledAway { .. } => (unprocessable, "segment-lost-in-resampling"),
        E::NotRtStruct { .. } => (unprocessable, "not-rtstruct"),
        E::FrameOfReferenceMismatch { .. } => (unprocessable, "frame-of-reference-mismatch"),
        E::RtContour { .. } => (unprocessable, "invalid-rtstruct-contour"),
        E::RtRoi { .. } => (unprocessable, "invalid-rtstruct-roi"),
        E::RtNoClosedContours { .. } => (unprocessable, "no-closed-contours"),
        E::Archive { .. } | E::ArchiveEntry { .. } => (StatusCode::BAD_REQUEST, "invalid-archive"),
        E::ArchiveLimit { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "archive-too-large"),
        E::Io { .. } => return Problem::internal(&e),
    };
    Problem::new(status, kind, "DICOM input refused", e.to_string())
}
