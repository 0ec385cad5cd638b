//! DICOMweb STOW-RS (PS3.18 10.5): `POST /studies` and `POST /studies/{study}`, so that a
//! PACS or `dicomweb-client` can push instances directly.
//!
//! Each body part is one DICOM instance. CT instances are staged under the series resource
//! of their SeriesInstanceUID, which is re-assembled from every instance received so far,
//! in this request or earlier ones (see [`super::stow_series`]: one series per
//! SeriesInstanceUID however a PACS splits it, complete once stable for
//! `RADSCORE_STOW_STABLE_S`). A DICOM Segmentation is stored like a `POST
//! /v1/segmentations` upload, bound to the series its ReferencedSeriesSequence names
//! (pushed in the same request or before), or waits for that series' CT instances when it
//! does not map onto those received so far; an RT Structure Set likewise, on the series
//! its Referenced Frame of Reference Sequence names. Anything else fails alone. The answer is the
//! Store Instances Response Module (PS3.18 10.5.3, Table 10.5.3-1) as DICOM JSON (PS3.18
//! F.2): ReferencedSOPSequence for stored instances, each with a RetrieveURL naming the
//! radscore resource it became (`/v1/series/{id}` or `/v1/segmentations/{id}`),
//! FailedSOPSequence with a FailureReason (PS3.4 GG.4-1 codes) and an ErrorComment saying
//! why. Status: 200 all stored, 202 some, 409 none.
//!
//! A bound segmentation (SEG or RTSTRUCT) arms the tenant's auto-trigger rule, and every new CT instance
//! postpones the waiting triggers of its SeriesInstanceUID (see [`crate::jobs::trigger`]).

use std::collections::BTreeMap;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::related::{self, APPLICATION_DICOM, RelatedError};
use super::spool::{Spool, SpooledPart};
use super::stow_series::{self, SegTarget};
use super::{ApiResult, AppState, Problem, segmentations};
use crate::dicom::{self, FileRef, InstanceIdentity};
use crate::jobs::trigger;

/// PS3.18 F.2: the media type of the response.
const DICOM_JSON: &str = "application/dicom+json";

/// SOP Class UIDs (PS3.4 B.5): the CT images radscore assembles, DICOM Segmentation and
/// RT Structure Set (both stored as segmentations).
const CT_IMAGE_STORAGE: [&str; 3] = [
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.2.2",
];
const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const RT_STRUCTURE_SET_STORAGE: &str = crate::dicom::rtstruct::RT_STRUCTURE_SET_STORAGE;

/// Failure Reason values (PS3.18 Table 10.5.3-2, PS3.4 GG.4-1).
pub(super) const PROCESSING_FAILURE: u16 = 0x0110;
const OUT_OF_RESOURCES: u16 = 0xA700;
const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
const DOES_NOT_MATCH: u16 = 0xA900;
const CANNOT_UNDERSTAND: u16 = 0xC000;
const TRANSFER_SYNTAX_NOT_SUPPORTED: u16 = 0xC122;

/// Problem types of a segmentation refused for its own content (its structure, attributes,
/// pixel data or frame of reference), which no CT instance still to come can change: such a
/// segmentation fails at once even while its series is receiving, instead of being answered
/// as stored and waiting for ever (found by the break test: a SEG with short pixel data).
/// LIMITATION: faults sharing a type with grid mismatches (two frames of a segment on one
/// plane, a non-planar contour) still wait while the series receives, visible as `pending`.
const INTRINSIC_SEGMENTATION_FAULTS: [&str; 13] = [
    "not-dicom",
    "malformed-dicom",
    "missing-attribute",
    "invalid-attribute",
    "unsupported-dicom",
    "unsupported-transfer-syntax",
    "pixel-data-undecodable",
    "pixel-data-too-short",
    "pixel-data-too-long",
    "not-segmentation",
    "not-rtstruct",
    "no-closed-contours",
    "frame-of-reference-mismatch",
];

/// Attribute tags of the response (PS3.6), as DICOM JSON keys.
const RETRIEVE_URL: &str = "00081190";
const FAILED_SOP_SEQUENCE: &str = "00081198";
const REFERENCED_SOP_SEQUENCE: &str = "00081199";
const REFERENCED_SOP_CLASS_UID: &str = "00081150";
const REFERENCED_SOP_INSTANCE_UID: &str = "00081155";
const FAILURE_REASON: &str = "00081197";
const ERROR_COMMENT: &str = "00000902";

/// `POST /studies`.
#[tracing::instrument(skip_all)]
pub async fn store(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Response> {
    store_instances(state, caller, None, req).await
}

/// `POST /studies/{study}`: instances of another study fail with 0xA900.
#[tracing::instrument(skip_all)]
pub async fn store_in_study(
    State(state): State<AppState>,
    caller: Caller,
    Path(study): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    store_instances(state, caller, Some(dicom::sanitize_uid(&study)), req).await
}

/// 400 when the query asks for `deidentify`: STOW-RS stores instances as pushed (the
/// bytes are what dedupes a re-sent instance), so ignoring the parameter would keep the
/// patient attributes the caller asked to drop; `POST /v1/series?deidentify=true` does it.
fn refuse_deidentify(query: Option<&str>) -> ApiResult<()> {
    let asked = query
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair.split('=').next() == Some("deidentify"));
    if asked {
        return Err(Problem::bad_request(
            "unsupported-parameter",
            "STOW-RS does not de-identify: the query parameter 'deidentify' is not supported \
             on /studies, and nothing was stored; upload the series with \
             POST /v1/series?deidentify=true instead",
        ));
    }
    Ok(())
}

/// One pushed instance on its way through (its bytes spooled to disk).
pub(super) struct Pushed {
    pub(super) file: FileRef,
    pub(super) identity: InstanceIdentity,
}

/// The outcome of every instance, in body order.
#[derive(Default)]
pub(super) struct Outcomes {
    /// Stored instances with the RetrieveURL of the resource they joined.
    pub(super) stored: Vec<(InstanceIdentity, String)>,
    /// Failed instances with their Failure Reason and Error Comment.
    pub(super) failed: Vec<(InstanceIdentity, u16, String)>,
}

async fn store_instances(
    state: AppState,
    caller: Caller,
    study: Option<String>,
    req: Request,
) -> ApiResult<Response> {
    refuse_deidentify(req.uri().query())?;
    let mut spool = Spool::new()?;
    let parts = read_body(&state, req, &mut spool).await?;
    if parts.is_empty() {
        return Err(Problem::bad_request(
            "empty-upload",
            "the multipart/related body has no parts",
        ));
    }
    for part in parts.iter().filter(|p| p.headerless) {
        check_headerless_part(part).await?;
    }
    let mut outcomes = Outcomes::default();
    let (ct, segs) = sort_parts(parts, study.as_deref(), &mut outcomes).await?;
    for (series_uid, instances) in ct {
        store_ct_instances(&state, &caller, &series_uid, instances, &mut outcomes).await?;
    }
    for seg in segs {
        store_segmentation(&state, &caller, seg, &mut outcomes).await?;
    }
    drop(spool);
    tracing::info!(
        stored = outcomes.stored.len(),
        failed = outcomes.failed.len(),
        "STOW-RS request processed"
    );
    Ok(response(&outcomes, study.as_deref()))
}

async fn read_body(
    state: &AppState,
    req: Request,
    spool: &mut Spool,
) -> ApiResult<Vec<SpooledPart>> {
    state.limits.check_declared_length(&req)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = related::boundary(&content_type).map_err(related_problem)?;
    // Parts are spooled to disk one chunk at a time: memory stays bounded.
    let parts = spool
        .multipart(req.into_body().into_data_stream(), boundary, &state.limits)
        .await?;
    let total: u64 = parts.iter().map(|p| p.len).sum();
    metrics::counter!("radscore_upload_bytes_total", "kind" => "stow").increment(total);
    Ok(parts)
}

/// A part without header lines has no Content-Type, which PS3.18 10.5.1.2 reads as the
/// request's `application/dicom`; it is taken as such when it opens as a DICOM Part 10
/// file ("DICM" after the 128-byte preamble, or at its start as [`dicom::identify`]
/// also reads), else the request is refused naming the part: without headers a body that
/// is not DICOM more likely means a broken multipart body than one bad instance.
async fn check_headerless_part(part: &SpooledPart) -> ApiResult<()> {
    use crate::dicom::precheck::{PART10_HEAD_BYTES, part10_meta_start};
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(PART10_HEAD_BYTES);
    let file = tokio::fs::File::open(&part.path)
        .await
        .map_err(|e| Problem::internal(&e))?;
    file.take(PART10_HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .await
        .map_err(|e| Problem::internal(&e))?;
    if part10_meta_start(&head).is_some() {
        return Ok(());
    }
    Err(Problem::bad_request(
        "malformed-multipart",
        format!(
            "part {} of the multipart/related body has no header lines and is not a DICOM \
             Part 10 file (no 'DICM' after the 128-byte preamble); send each instance with \
             Content-Type: application/dicom",
            part.number
        ),
    )
    .with("part", part.number))
}

fn related_problem(e: RelatedError) -> Problem {
    match e {
        RelatedError::MediaType { .. } => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            e.to_string(),
        ),
        RelatedError::TooLarge { .. } | RelatedError::TooManyParts { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
            "Upload too large",
            e.to_string(),
        ),
        RelatedError::NoBoundary | RelatedError::Malformed { .. } => {
            Problem::bad_request("malformed-multipart", e.to_string())
        }
    }
}

type SortedParts = (BTreeMap<String, Vec<Pushed>>, Vec<Pushed>);

/// Identify every part: CT instances by series, segmentations, and failures.
async fn sort_parts(
    parts: Vec<SpooledPart>,
    study: Option<&str>,
    outcomes: &mut Outcomes,
) -> ApiResult<SortedParts> {
    let identified = tokio::task::spawn_blocking(move || {
        parts
            .into_iter()
            .map(|part| {
                let identity = identify_part(&part);
                (part, identity)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| Problem::internal(&e))?;

    let (mut ct, mut segs) = (BTreeMap::<String, Vec<Pushed>>::new(), Vec::new());
    for (part, identity) in identified {
        let name = format!("part {}", part.number);
        let identity = match identity {
            Ok(identity) => identity,
            Err((identity, reason, comment)) => {
                outcomes.failed.push((identity, reason, comment));
                continue;
            }
        };
        let class = identity.sop_class_uid.as_deref().unwrap_or_default();
        let fail = |reason: u16, comment: String| (identity.clone(), reason, comment);
        if let Some(expected) = study
            && identity.study_instance_uid.as_deref() != Some(expected)
        {
            let comment = format!("{name}: StudyInstanceUID differs from the study {expected}");
            outcomes.failed.push(fail(DOES_NOT_MATCH, comment));
            continue;
        }
        let pushed = Pushed {
            file: FileRef {
                name,
                path: part.path.clone(),
            },
            identity: identity.clone(),
        };
        if CT_IMAGE_STORAGE.contains(&class) {
            let series = identity.series_instance_uid.clone().unwrap_or_default();
            ct.entry(series).or_default().push(pushed);
        } else if class == SEGMENTATION_STORAGE || class == RT_STRUCTURE_SET_STORAGE {
            // An RTSTRUCT without an RT Referenced Series is routed by the image its first
            // contour references (see `store_segmentation`).
            segs.push(pushed);
        } else {
            let comment = format!(
                "{}: SOP Class {class} is not stored here (CT images, segmentations and RT \
                 structure sets only)",
                pushed.file.name
            );
            outcomes.failed.push(fail(SOP_CLASS_NOT_SUPPORTED, comment));
        }
    }
    Ok((ct, segs))
}

type PartFailure = (InstanceIdentity, u16, String);

/// Parse one part's header; a part that is not a DICOM instance fails alone.
fn identify_part(part: &SpooledPart) -> Result<InstanceIdentity, PartFailure> {
    let name = format!("part {}", part.number);
    if let Some(media) = part.media_type.as_deref()
        && media != APPLICATION_DICOM
    {
        let comment = format!("{name}: Content-Type '{media}' is not application/dicom");
        return Err((InstanceIdentity::default(), CANNOT_UNDERSTAND, comment));
    }
    let bytes = std::fs::read(&part.path).map_err(|e| {
        let comment = format!("{name}: the spooled part cannot be read back: {e}");
        (InstanceIdentity::default(), PROCESSING_FAILURE, comment)
    })?;
    dicom::identify(&name, &bytes).map_err(|e| {
        let reason = match e {
            dicom::DicomError::UnsupportedTransferSyntax { .. } => TRANSFER_SYNTAX_NOT_SUPPORTED,
            _ => CANNOT_UNDERSTAND,
        };
        (InstanceIdentity::default(), reason, e.to_string())
    })
}

/// Stage the pushed CT instances of one SeriesInstanceUID (see [`super::stow_series`]).
async fn store_ct_instances(
    state: &AppState,
    caller: &Caller,
    series_uid: &str,
    instances: Vec<Pushed>,
    outcomes: &mut Outcomes,
) -> ApiResult<()> {
    if series_uid.is_empty() {
        for pushed in instances {
            let comment = format!(
                "{}: the instance has no SeriesInstanceUID (0020,000E)",
                pushed.file.name
            );
            outcomes
                .failed
                .push((pushed.identity, CANNOT_UNDERSTAND, comment));
        }
        return Ok(());
    }
    stow_series::receive_ct(state, caller, series_uid, instances, outcomes).await
}

/// Store one pushed segmentation on the series it references, or keep it waiting for
/// that series' CT instances.
async fn store_segmentation(
    state: &AppState,
    caller: &Caller,
    seg: Pushed,
    outcomes: &mut Outcomes,
) -> ApiResult<()> {
    let Pushed { file, identity } = seg;
    let mut referenced = identity.referenced_series_uid.clone().unwrap_or_default();
    if referenced.is_empty()
        && let Some(image) = identity.referenced_image_uid.as_deref()
        && let Some(series_uid) = state
            .db
            .stow_series_uid_of_instance(&caller.tenant, image)
            .await?
    {
        referenced = series_uid;
    }
    if referenced.is_empty() {
        let comment = format!(
            "{}: names no referenced series (ReferencedSeriesSequence, or for an RTSTRUCT the \
             RT Referenced Series Sequence) and references no CT instance received by STOW-RS \
             (an RTSTRUCT's Contour Image Sequence)",
            file.name
        );
        outcomes.failed.push((identity, DOES_NOT_MATCH, comment));
        return Ok(());
    }
    let bytes = match read_segmentation(state, &file).await? {
        Ok(bytes) => bytes,
        Err(comment) => {
            outcomes.failed.push((identity, OUT_OF_RESOURCES, comment));
            return Ok(());
        }
    };
    let _serialised = stow_series::series_lock(&caller.tenant, &referenced).await;
    let target = stow_series::seg_target(state, &caller.tenant, &file.name, &referenced).await?;
    if let Some(url) = already_stored(state, &caller.tenant, &target, &bytes).await? {
        outcomes.stored.push((identity, url));
        return Ok(());
    }
    let (series, stow) = match target {
        SegTarget::Bind(series, stow) => (series, stow),
        SegTarget::Wait(stow, reason) => {
            let id =
                stow_series::wait_for_series(state, &stow, Some(file.name), bytes, reason).await?;
            outcomes
                .stored
                .push((identity, format!("/v1/segmentations/{id}")));
            return Ok(());
        }
    };
    let name = Some(file.name.clone());
    match segmentations::create_from_bytes(state, caller, &series, name, bytes.clone()).await {
        Ok(row) => {
            let (db, stable) = (&state.db, state.stow_stable);
            trigger::segmentation_arrived(db, &caller.tenant, &row.id, &series.series_uid, stable)
                .await?;
            let url = format!("/v1/segmentations/{}", row.id);
            outcomes.stored.push((identity, url));
        }
        // Its frames may lie on CT instances that have not arrived yet.
        Err(problem)
            if problem.status.is_client_error()
                && !INTRINSIC_SEGMENTATION_FAULTS.contains(&problem.kind)
                && stow
                    .as_ref()
                    .is_some_and(|s| stow_series::may_wait(state, s)) =>
        {
            let stow = stow.as_ref().expect("checked just above");
            let id =
                stow_series::wait_for_series(state, stow, Some(file.name), bytes, problem.detail)
                    .await?;
            outcomes
                .stored
                .push((identity, format!("/v1/segmentations/{id}")));
        }
        Err(problem) if problem.status.is_client_error() => {
            outcomes
                .failed
                .push((identity, PROCESSING_FAILURE, problem.detail));
        }
        Err(problem) => return Err(problem),
    }
    Ok(())
}

/// The URL of a segmentation with exactly these bytes already stored for the same series,
/// bound to it or waiting for it. A PACS retry re-sends instances; storing a segmentation
/// again would add a second one and, with an auto-trigger rule, a second job and report.
/// Identical bytes are a no-op success, as for CT instances.
async fn already_stored(
    state: &AppState,
    tenant: &str,
    target: &SegTarget,
    bytes: &bytes::Bytes,
) -> ApiResult<Option<String>> {
    let (bound, waiting) = match target {
        SegTarget::Bind(series, stow) => (Some(series), stow.as_ref()),
        SegTarget::Wait(stow, _) => (None, Some(stow)),
    };
    let mut stored: Vec<(String, String)> = Vec::new();
    if let Some(series) = bound {
        for row in state.db.segmentations_of_series(tenant, &series.id).await? {
            stored.push((row.id, row.blob_key));
        }
    }
    if let Some(stow) = waiting {
        for row in state.db.pending_segmentations(&stow.id).await? {
            stored.push((row.id, row.blob_key));
        }
    }
    for (id, blob_key) in stored {
        // A blob that cannot be read (being deleted) is not a match.
        if state.blobs.get(&blob_key).await.is_ok_and(|b| b == *bytes) {
            tracing::info!(segmentation_id = %id, "STOW-RS segmentation re-sent; already stored");
            return Ok(Some(format!("/v1/segmentations/{id}")));
        }
    }
    Ok(None)
}

/// A pushed segmentation's bytes, or a comment naming the segmentation limit it exceeds: a
/// segmentation is read into memory to be mapped (as a `POST /v1/segmentations` upload
/// is), so it has the segmentation limit; series instances stay on disk.
async fn read_segmentation(
    state: &AppState,
    file: &FileRef,
) -> ApiResult<Result<bytes::Bytes, String>> {
    let limit = state.limits.segmentation_limit_bytes();
    let size = match tokio::fs::metadata(&file.path).await {
        Ok(meta) => meta.len(),
        Err(e) => return Err(Problem::internal(&e)),
    };
    if size > limit {
        let what = format!("the segmentation ({size} bytes)");
        let detail = state.limits.segmentation_too_large(&what).detail;
        return Ok(Err(format!("{}: {detail}", file.name)));
    }
    match tokio::fs::read(&file.path).await {
        Ok(bytes) => Ok(Ok(bytes::Bytes::from(bytes))),
        Err(e) => Err(Problem::internal(&e)),
    }
}

/// The Store Instances Response as DICOM JSON with the PS3.18 status.
fn response(outcomes: &Outcomes, study: Option<&str>) -> Response {
    let status = match (outcomes.stored.is_empty(), outcomes.failed.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, _) => StatusCode::CONFLICT,
    };
    let stored: Vec<Value> = outcomes
        .stored
        .iter()
        .map(|(identity, url)| {
            let mut item = sop_reference(identity);
            item.insert(RETRIEVE_URL.into(), element("UR", json!([url])));
            Value::Object(item)
        })
        .collect();
    let failed: Vec<Value> = outcomes
        .failed
        .iter()
        .map(|(identity, reason, comment)| {
            let mut item = sop_reference(identity);
            item.insert(FAILURE_REASON.into(), element("US", json!([reason])));
            item.insert(ERROR_COMMENT.into(), element("LO", json!([comment])));
            Value::Object(item)
        })
        .collect();
    let mut body = Map::new();
    if let Some(study) = study {
        body.insert(
            RETRIEVE_URL.into(),
            element("UR", json!([format!("/studies/{study}")])),
        );
    }
    body.insert(FAILED_SOP_SEQUENCE.into(), sequence(failed));
    body.insert(REFERENCED_SOP_SEQUENCE.into(), sequence(stored));

    let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(DICOM_JSON));
    resp
}

/// ReferencedSOPClassUID and ReferencedSOPInstanceUID of an item, when known.
fn sop_reference(identity: &InstanceIdentity) -> Map<String, Value> {
    let mut item = Map::new();
    if let Some(class) = &identity.sop_class_uid {
        item.insert(
            REFERENCED_SOP_CLASS_UID.into(),
            element("UI", json!([class])),
        );
    }
    if let Some(instance) = &identity.sop_instance_uid {
        item.insert(
            REFERENCED_SOP_INSTANCE_UID.into(),
            element("UI", json!([instance])),
        );
    }
    item
}

/// A DICOM JSON attribute (PS3.18 F.2.2): its VR and values.
pub(super) fn element(vr: &str, values: Value) -> Value {
    json!({ "vr": vr, "Value": values })
}

/// A sequence attribute; empty sequences carry no `Value` (PS3.18 F.2.5).
pub(super) fn sequence(items: Vec<Value>) -> Value {
    if items.is_empty() {
        json!({ "vr": "SQ" })
    } else {
        json!({ "vr": "SQ", "Value": items })
    }
}
