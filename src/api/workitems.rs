//! UPS-RS work items (PS3.18 §11, Unified Procedure Step; IHE AI Workflow for Imaging,
//! AIW-I): the jobs of the caller's tenant seen as DICOM work items, in DICOM JSON
//! (`application/dicom+json`, PS3.18 F.2), next to the REST job API.
//!
//! # Documented subset
//! - `POST /workitems` (create, 11.4): a work item whose Input Information Sequence
//!   (0040,4021) names the CT series and optionally the segmentation — by RetrieveURL
//!   (0008,1190) of a radscore resource as STOW-RS answers it (`/v1/series/{id}`,
//!   `/v1/segmentations/{id}`), or by SeriesInstanceUID (0020,000E) of a stored series
//!   (its newest segmentation is used). The lesion location comes from a Scheduled
//!   Processing Parameters (0074,1210) TEXT item with concept `(LESLOC, 99RADSCORE)`, else
//!   from the tenant's auto-trigger rule. Every segment becomes a lesion. A job is
//!   created (audited `job.create`, `via: ups-rs`); 201 with `Location`.
//! - `GET /workitems` (search, 11.9): matching on ProcedureStepState (`00741000` or the
//!   keyword), with `limit` and `offset`; 204 when nothing matches.
//! - `GET /workitems/{uid}` (retrieve, 11.5).
//! - `PUT /workitems/{uid}/state` (change state, 11.7) to `CANCELED`, and `POST
//!   /workitems/{uid}/cancelrequest` (request cancellation, 11.8): the job is cancelled.
//!   radscore performs its work items itself, so `IN PROGRESS` and `COMPLETED` are not
//!   accepted from clients (409).
//!
//! A work item's UID is its job id (a UUID) under the UUID arc: `2.25.{uuid as integer}`
//! (PS3.5 B.2), so the two identify each other without a table. Job states map to UPS
//! states: queued → SCHEDULED, running → IN PROGRESS, succeeded → COMPLETED, failed and
//! cancelled → CANCELED (a failure's reason in Reason For Cancellation, 0074,1238).
//! Progress is in the Procedure Step Progress Information Sequence (0074,1002), with the
//! job's SSE event stream as its Contact URI (0074,100A); a completed item's Output
//! Information Sequence (0040,4033) references the SR report.
//!
//! LIMITATION: UPS subscriptions (PS3.18 11.10 WebSocket event channel) are not served;
//! follow a work item with Server-Sent Events at the Contact URI it carries
//! (`/v1/jobs/{id}/events`).
//! LIMITATION: radscore assigns work item UIDs; a UID proposed by the client (query
//! parameter or SOP Instance UID in the dataset) is refused with 400.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::audit::audit_caller;
use super::auth::{Caller, Tenant};
use super::series::clip;
use super::stow::{element, sequence};
use super::{ApiResult, AppState, Problem};
use crate::features::Location;
use crate::jobs::JobRequest;
use crate::jobs::trigger::tenant_rule;
use crate::pipeline::LesionRequest;
use crate::store::{JobRow, NewJob, SegmentationRow, SeriesRow};

/// PS3.18 F.2: the DICOM JSON media type.
const DICOM_JSON: &str = "application/dicom+json";

/// SOP Classes (PS3.4 B.5): UPS Push, and the Comprehensive 3D SR of the report.
const UPS_PUSH_SOP_CLASS: &str = "1.2.840.10008.5.1.4.34.6.1";
const COMPREHENSIVE_3D_SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";

/// Attribute tags (PS3.6) as DICOM JSON keys.
const SOP_CLASS_UID: &str = "00080016";
const SOP_INSTANCE_UID: &str = "00080018";
const CODE_VALUE: &str = "00080100";
const CODING_SCHEME_DESIGNATOR: &str = "00080102";
const REFERENCED_SOP_CLASS_UID: &str = "00081150";
const REFERENCED_SOP_INSTANCE_UID: &str = "00081155";
const RETRIEVE_URL: &str = "00081190";
const REFERENCED_SOP_SEQUENCE: &str = "00081199";
const SERIES_INSTANCE_UID: &str = "0020000E";
const SCHEDULED_START_DATETIME: &str = "00404005";
const INPUT_INFORMATION_SEQUENCE: &str = "00404021";
const OUTPUT_INFORMATION_SEQUENCE: &str = "00404033";
const VALUE_TYPE: &str = "0040A040";
const CONCEPT_NAME_CODE_SEQUENCE: &str = "0040A043";
const TEXT_VALUE: &str = "0040A160";
const PROCEDURE_STEP_STATE: &str = "00741000";
const PROGRESS_INFORMATION_SEQUENCE: &str = "00741002";
const PROCEDURE_STEP_PROGRESS: &str = "00741004";
const PROGRESS_DESCRIPTION: &str = "00741006";
const COMMUNICATIONS_URI_SEQUENCE: &str = "00741008";
const CONTACT_URI: &str = "0074100A";
const CONTACT_DISPLAY_NAME: &str = "0074100C";
const PRIORITY: &str = "00741200";
const PROCEDURE_STEP_LABEL: &str = "00741204";
const PROCESSING_PARAMETERS_SEQUENCE: &str = "00741210";
const REASON_FOR_CANCELLATION: &str = "00741238";

/// Procedure Step State values (PS3.4 CC.1.1).
const SCHEDULED: &str = "SCHEDULED";
const IN_PROGRESS: &str = "IN PROGRESS";
const COMPLETED: &str = "COMPLETED";
const CANCELED: &str = "CANCELED";

/// The processing parameter concept of the lesion location (private coding scheme).
const LOCATION_CODE: (&str, &str) = ("LESLOC", "99RADSCORE");

/// Procedure Step Label of every work item.
const STEP_LABEL: &str = "radscore radiomics response prediction";

/// Work items one search returns when `limit` is not given, and at most.
const DEFAULT_SEARCH_LIMIT: usize = 100;
const MAX_SEARCH_LIMIT: usize = 1000;

/// The work item UID of a job: its UUID as an integer under 2.25.
pub fn workitem_uid(job_id: &str) -> Option<String> {
    let uuid = uuid::Uuid::parse_str(job_id).ok()?;
    Some(format!("2.25.{}", uuid.as_u128()))
}

/// The job id a work item UID names (`None` for a UID radscore did not assign).
pub fn job_id_of(uid: &str) -> Option<String> {
    let n: u128 = uid.strip_prefix("2.25.")?.parse().ok()?;
    Some(uuid::Uuid::from_u128(n).hyphenated().to_string())
}

/// `POST /workitems`: create a work item, i.e. a job.
#[tracing::instrument(skip_all, fields(job_id = tracing::field::Empty))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<Response> {
    if !query.is_empty() {
        return Err(bad(
            "radscore assigns work item UIDs; send POST /workitems without a query",
        ));
    }
    let dataset = read_dataset(&state, req).await?;
    if dataset.contains_key(SOP_INSTANCE_UID) {
        return Err(bad(
            "radscore assigns work item UIDs; leave SOP Instance UID (00080018) out",
        ));
    }
    if let Some(s) = string_value(&dataset, PROCEDURE_STEP_STATE)
        && s != SCHEDULED
    {
        return Err(bad(format!(
            "a new work item is SCHEDULED (PS3.4 CC.2.5.1), not '{}'",
            clip(&s)
        )));
    }
    let tenant = caller.tenant.as_str();
    let (series, seg) = inputs(&state, tenant, &dataset).await?;
    let location = parameter_location(&dataset)?;
    let request = job_request(&state, tenant, &series, &seg, location).await?;
    super::jobs::check_references(&state, tenant, &request).await?;
    super::jobs::check_backpressure(&state).await?;

    let id = uuid::Uuid::now_v7().to_string();
    tracing::Span::current().record("job_id", id.as_str());
    let enqueued = state
        .db
        .insert_job(&NewJob {
            id: id.clone(),
            tenant_id: tenant.to_string(),
            series_id: request.series_id.clone(),
            segmentation_id: request.segmentation_id.clone(),
            request: serde_json::to_string(&request).map_err(|e| Problem::internal(&e))?,
            idempotency_key: None,
            kind: crate::store::JobKind::Extraction,
        })
        .await?;
    // A concurrent DELETE wrote its tombstone after the checks above.
    if let crate::store::Enqueue::UploadGone { kind, id, .. } = enqueued {
        return Err(super::jobs::unknown_reference(&state, tenant, kind, &id).await);
    }
    state.job_enqueued.notify_waiters();
    let detail = json!({
        "via": "ups-rs",
        "series_id": request.series_id,
        "segmentation_id": request.segmentation_id,
        "lesions": request.lesions.len(),
    });
    audit_caller(&state, &caller, "job.create", "job", &id, detail).await?;
    tracing::info!(lesions = request.lesions.len(), "work item created");

    let row = super::jobs::tenant_job(&state, tenant, &id).await?;
    let item = workitem(&state, &row).await?;
    let mut resp = dicom_json(StatusCode::CREATED, &Value::Array(vec![item]));
    if let Some(uid) = workitem_uid(&id)
        && let Ok(v) = HeaderValue::from_str(&format!("/workitems/{uid}"))
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /workitems?ProcedureStepState=&limit=&offset=`.
pub async fn search(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let mut statuses: Vec<Option<&str>> = vec![None];
    let (mut limit, mut offset) = (DEFAULT_SEARCH_LIMIT, 0usize);
    for (key, value) in &query {
        match key.as_str() {
            "ProcedureStepState" | PROCEDURE_STEP_STATE => {
                statuses = job_statuses(value)?.into_iter().map(Some).collect();
            }
            "limit" => limit = number(key, value, 1, MAX_SEARCH_LIMIT)?,
            "offset" => offset = number(key, value, 0, usize::MAX)?,
            // Every attribute is returned anyway.
            "includefield" => {}
            other => {
                return Err(bad(format!(
                    "matching on '{}' is not supported; supported: ProcedureStepState \
                     (00741000), limit, offset, includefield",
                    clip(other)
                )));
            }
        }
    }
    let fetch = i64::try_from(limit.saturating_add(offset)).unwrap_or(i64::MAX);
    let mut rows: Vec<JobRow> = Vec::new();
    for status in statuses {
        // Work items are extraction jobs (see `workitem_job`).
        let kind = Some(crate::store::JobKind::Extraction);
        rows.extend(state.db.jobs(&tenant, status, kind, fetch).await?);
    }
    rows.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
    let mut items = Vec::new();
    for row in rows.iter().skip(offset).take(limit) {
        items.push(workitem(&state, row).await?);
    }
    if items.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(dicom_json(StatusCode::OK, &Value::Array(items)))
}

/// `GET /workitems/{uid}`.
pub async fn retrieve(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(uid): Path<String>,
) -> ApiResult<Response> {
    let row = workitem_job(&state, &tenant, &uid).await?;
    let item = workitem(&state, &row).await?;
    Ok(dicom_json(StatusCode::OK, &Value::Array(vec![item])))
}

/// `PUT /workitems/{uid}/state` with Procedure Step State `CANCELED`.
pub async fn change_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(uid): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let row = workitem_job(&state, &caller.tenant, &uid).await?;
    let dataset = read_dataset(&state, req).await?;
    let wanted = string_value(&dataset, PROCEDURE_STEP_STATE)
        .ok_or_else(|| bad("the dataset must hold Procedure Step State (00741000)"))?;
    if wanted != CANCELED {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "ups-state-not-allowed",
            "State change not allowed",
            format!(
                "radscore performs its work items itself; a client may only set {CANCELED}, \
                 not '{}'",
                clip(&wanted)
            ),
        ));
    }
    let row = cancel(&state, &caller, &row).await?;
    let item = workitem(&state, &row).await?;
    Ok(dicom_json(StatusCode::OK, &Value::Array(vec![item])))
}

/// `POST /workitems/{uid}/cancelrequest`: 202 once the job is cancelled.
pub async fn cancel_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(uid): Path<String>,
) -> ApiResult<Response> {
    let row = workitem_job(&state, &caller.tenant, &uid).await?;
    let row = cancel(&state, &caller, &row).await?;
    let item = workitem(&state, &row).await?;
    Ok(dicom_json(StatusCode::ACCEPTED, &Value::Array(vec![item])))
}

/// Cancel the job of a work item; 409 naming its state when it has already ended.
async fn cancel(state: &AppState, caller: &Caller, row: &JobRow) -> ApiResult<JobRow> {
    let (cancelled, row) = state
        .db
        .cancel_job(&caller.tenant, &row.id)
        .await?
        .ok_or_else(|| Problem::internal(&"job vanished"))?;
    if !cancelled {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "ups-already-final",
            "Work item already final",
            format!("the work item is {} already", ups_state(&row.status)),
        )
        .with("state", ups_state(&row.status)));
    }
    tracing::info!(job_id = %row.id, "work item cancelled");
    let detail = json!({ "via": "ups-rs" });
    audit_caller(state, caller, "job.cancel", "job", &row.id, detail).await?;
    Ok(row)
}

/// The job of work item `uid` in `tenant`: 404 for an unknown UID and another tenant's.
async fn workitem_job(state: &AppState, tenant: &str, uid: &str) -> ApiResult<JobRow> {
    let not_found = || Problem::not_found("work item", uid);
    let id = job_id_of(uid).ok_or_else(not_found)?;
    // Work items are extraction jobs; a robustness job has no UPS representation.
    let row = state.db.job(tenant, &id).await?;
    row.filter(|r| r.kind() == crate::store::JobKind::Extraction)
        .ok_or_else(not_found)
}

/// The request body: a DICOM JSON array of one dataset (or the dataset itself).
async fn read_dataset(state: &AppState, req: Request) -> ApiResult<Map<String, Value>> {
    state.limits.check_declared_length(&req)?;
    let media = super::upload::media_type(&req);
    if media != DICOM_JSON && media != "application/json" {
        return Err(super::series::unsupported_media(&media, DICOM_JSON));
    }
    let body = state.limits.read_body(req.into_body()).await?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    let dataset = match doc {
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        Value::Object(_) => doc,
        _ => {
            return Err(bad(
                "the body must be a DICOM JSON array holding one dataset",
            ));
        }
    };
    match dataset {
        Value::Object(map) => Ok(map),
        _ => Err(bad("the dataset must be a DICOM JSON object")),
    }
}

/// The series and segmentation the Input Information Sequence names.
async fn inputs(
    state: &AppState,
    tenant: &str,
    dataset: &Map<String, Value>,
) -> ApiResult<(SeriesRow, SegmentationRow)> {
    let items = items_of(dataset, INPUT_INFORMATION_SEQUENCE);
    if items.is_empty() {
        return Err(unprocessable(
            "the Input Information Sequence (00404021) must name the CT series",
        ));
    }
    let (mut series, mut seg) = (None, None);
    for (i, item) in items.iter().enumerate() {
        if let Some(url) = string_value(item, RETRIEVE_URL) {
            let path = url.rsplit_once("/v1/").map(|(_, p)| p).unwrap_or_default();
            if let Some(id) = path.strip_prefix("series/") {
                series = Some(state.db.series(tenant, id).await?.ok_or_else(|| {
                    unprocessable(format!("input {i}: series '{}' does not exist", clip(id)))
                })?);
            } else if let Some(id) = path.strip_prefix("segmentations/") {
                seg = Some(state.db.segmentation(tenant, id).await?.ok_or_else(|| {
                    unprocessable(format!(
                        "input {i}: segmentation '{}' does not exist",
                        clip(id)
                    ))
                })?);
            } else {
                return Err(unprocessable(format!(
                    "input {i}: RetrieveURL '{}' names no radscore series or segmentation",
                    clip(&url)
                )));
            }
        } else if let Some(uid) = string_value(item, SERIES_INSTANCE_UID) {
            series = Some(state.db.series_by_uid(tenant, &uid).await?.ok_or_else(|| {
                unprocessable(format!(
                    "input {i}: no stored series has UID '{}'",
                    clip(&uid)
                ))
            })?);
        } else {
            return Err(unprocessable(format!(
                "input {i}: an item needs a RetrieveURL (00081190) or a SeriesInstanceUID \
                 (0020000E)"
            )));
        }
    }
    let Some(series) = series else {
        return Err(unprocessable("no input names the CT series"));
    };
    let seg = match seg {
        Some(seg) => seg,
        None => state
            .db
            .latest_segmentation(tenant, &series.id)
            .await?
            .ok_or_else(|| unprocessable("the series has no segmentation; upload one first"))?,
    };
    Ok((series, seg))
}

/// The lesion location of the Scheduled Processing Parameters, if one is given.
fn parameter_location(dataset: &Map<String, Value>) -> ApiResult<Option<Location>> {
    for item in items_of(dataset, PROCESSING_PARAMETERS_SEQUENCE) {
        let concept = items_of(item, CONCEPT_NAME_CODE_SEQUENCE);
        let is_location = concept.first().is_some_and(|c| {
            string_value(c, CODE_VALUE).as_deref() == Some(LOCATION_CODE.0)
                && string_value(c, CODING_SCHEME_DESIGNATOR).as_deref() == Some(LOCATION_CODE.1)
        });
        let is_text = string_value(item, VALUE_TYPE).is_none_or(|v| v == "TEXT");
        if !is_location || !is_text {
            continue;
        }
        let text = string_value(item, TEXT_VALUE).unwrap_or_default();
        return Location::parse(&text).map(Some).ok_or_else(|| {
            let allowed: Vec<&str> = Location::ALL.iter().map(|l| l.as_str()).collect();
            unprocessable(format!(
                "the lesion location parameter '{}' is not one of {}",
                clip(&text),
                allowed.join(", ")
            ))
        });
    }
    Ok(None)
}

/// A job on every segment, at the given location or by the tenant's rule.
async fn job_request(
    state: &AppState,
    tenant: &str,
    series: &SeriesRow,
    seg: &SegmentationRow,
    location: Option<Location>,
) -> ApiResult<JobRequest> {
    let rule = tenant_rule(&state.db, tenant).await?;
    if location.is_none() && rule.is_none() {
        return Err(unprocessable(format!(
            "no lesion location: add a Scheduled Processing Parameters (00741210) TEXT item \
             with concept ({}, {}) or set the tenant's auto-trigger rule",
            LOCATION_CODE.0, LOCATION_CODE.1
        )));
    }
    let summaries: Vec<Value> =
        serde_json::from_str(&seg.lesions).map_err(|e| Problem::internal(&e))?;
    let lesions = summaries
        .iter()
        .filter_map(|l| {
            let label = u32::try_from(l["label"].as_u64()?).ok()?;
            let location = match (location, &rule) {
                (Some(l), _) => l,
                (None, Some(rule)) => rule.location(l["name"].as_str()),
                (None, None) => return None,
            };
            Some(LesionRequest { label, location })
        })
        .collect();
    Ok(JobRequest {
        series_id: series.id.clone(),
        segmentation_id: seg.id.clone(),
        lesions,
        model: None,
        model_id: rule.and_then(|r| r.model_id),
        // The service's settings when the job runs (no per-job settings here).
        settings: None,
        settings_source: None,
        pyradiomics_params: None,
        naming: None,
        // The default interval, as for a REST job without the option.
        prediction_interval: None,
    })
}

/// The UPS state of a job status.
fn ups_state(status: &str) -> &'static str {
    match status {
        "queued" => SCHEDULED,
        "running" => IN_PROGRESS,
        "succeeded" => COMPLETED,
        _ => CANCELED,
    }
}

/// The job statuses a UPS state matches.
fn job_statuses(state: &str) -> ApiResult<Vec<&'static str>> {
    match state {
        SCHEDULED => Ok(vec!["queued"]),
        IN_PROGRESS => Ok(vec!["running"]),
        COMPLETED => Ok(vec!["succeeded"]),
        CANCELED => Ok(vec!["failed", "cancelled"]),
        other => Err(bad(format!(
            "ProcedureStepState '{}' is not one of {SCHEDULED}, {IN_PROGRESS}, {COMPLETED}, \
             {CANCELED}",
            clip(other)
        ))),
    }
}

/// The work item of a job as a DICOM JSON dataset.
async fn workitem(state: &AppState, row: &JobRow) -> ApiResult<Value> {
    let series_uid = state
        .db
        .series(&row.tenant_id, &row.series_id)
        .await?
        .map(|s| s.series_uid);
    let mut item = Map::new();
    let mut put = |tag: &str, vr: &str, value: Value| {
        item.insert(tag.to_string(), element(vr, json!([value])));
    };
    put(SOP_CLASS_UID, "UI", json!(UPS_PUSH_SOP_CLASS));
    if let Some(uid) = workitem_uid(&row.id) {
        put(SOP_INSTANCE_UID, "UI", json!(uid));
    }
    put(PROCEDURE_STEP_STATE, "CS", json!(ups_state(&row.status)));
    put(PRIORITY, "CS", json!("MEDIUM"));
    put(PROCEDURE_STEP_LABEL, "LO", json!(STEP_LABEL));
    if let Some(dt) = dicom_datetime(row.created_at_ms) {
        put(SCHEDULED_START_DATETIME, "DT", json!(dt));
    }
    let mut input = Map::new();
    if let Some(uid) = series_uid {
        input.insert(SERIES_INSTANCE_UID.into(), element("UI", json!([uid])));
    }
    let urls = [format!("/v1/series/{}", row.series_id)];
    input.insert(RETRIEVE_URL.into(), element("UR", json!(urls)));
    item.insert(
        INPUT_INFORMATION_SEQUENCE.into(),
        sequence(vec![Value::Object(input)]),
    );
    item.insert(PROGRESS_INFORMATION_SEQUENCE.into(), progress(row));
    if row.status == "succeeded" {
        item.insert(OUTPUT_INFORMATION_SEQUENCE.into(), output(row));
    }
    Ok(Value::Object(item))
}

/// Procedure Step Progress Information: percent done, the job status, a failure's reason,
/// and the job's event stream as the contact URI.
fn progress(row: &JobRow) -> Value {
    let mut info = Map::new();
    let percent = (row.progress * 100.0).clamp(0.0, 100.0).round();
    info.insert(
        PROCEDURE_STEP_PROGRESS.into(),
        element("DS", json!([percent])),
    );
    info.insert(
        PROGRESS_DESCRIPTION.into(),
        element("ST", json!([format!("job {}", row.status)])),
    );
    if let Some(error) = &row.error {
        info.insert(
            REASON_FOR_CANCELLATION.into(),
            element("LT", json!([error])),
        );
    } else if row.status == "cancelled" {
        info.insert(
            REASON_FOR_CANCELLATION.into(),
            element("LT", json!(["cancelled on request"])),
        );
    }
    let mut contact = Map::new();
    contact.insert(
        CONTACT_URI.into(),
        element("UR", json!([format!("/v1/jobs/{}/events", row.id)])),
    );
    contact.insert(
        CONTACT_DISPLAY_NAME.into(),
        element("PN", json!([{ "Alphabetic": "radscore job events (SSE)" }])),
    );
    info.insert(
        COMMUNICATIONS_URI_SEQUENCE.into(),
        sequence(vec![Value::Object(contact)]),
    );
    sequence(vec![Value::Object(info)])
}

/// Output Information: the SR report of a completed job.
fn output(row: &JobRow) -> Value {
    let (series_uid, instance_uid) = crate::sr::report_uids(&row.id);
    let mut reference = Map::new();
    reference.insert(
        REFERENCED_SOP_CLASS_UID.into(),
        element("UI", json!([COMPREHENSIVE_3D_SR])),
    );
    reference.insert(
        REFERENCED_SOP_INSTANCE_UID.into(),
        element("UI", json!([instance_uid])),
    );
    let mut out = Map::new();
    out.insert(
        SERIES_INSTANCE_UID.into(),
        element("UI", json!([series_uid])),
    );
    out.insert(
        REFERENCED_SOP_SEQUENCE.into(),
        sequence(vec![Value::Object(reference)]),
    );
    out.insert(
        RETRIEVE_URL.into(),
        element("UR", json!([format!("/v1/jobs/{}/result.dcm", row.id)])),
    );
    sequence(vec![Value::Object(out)])
}

/// A DICOM DT value (PS3.5 6.2) in UTC: `YYYYMMDDHHMMSS.FFFFFF+0000`.
fn dicom_datetime(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let format = time::macros::format_description!(
        "[year][month][day][hour][minute][second].[subsecond digits:6]+0000"
    );
    t.format(&format).ok()
}

/// The items of sequence `tag` (none when absent or malformed).
fn items_of<'a>(dataset: &'a Map<String, Value>, tag: &str) -> Vec<&'a Map<String, Value>> {
    dataset
        .get(tag)
        .and_then(|e| e.get("Value"))
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// The first value of attribute `tag` as a string.
fn string_value(dataset: &Map<String, Value>, tag: &str) -> Option<String> {
    dataset
        .get(tag)?
        .get("Value")?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_string)
}

fn number(key: &str, value: &str, min: usize, max: usize) -> ApiResult<usize> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            bad(format!(
                "'{key}' must be an integer from {min} to {max}, got '{}'",
                clip(value)
            ))
        })
}

fn dicom_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"[]".to_vec());
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(DICOM_JSON));
    resp
}

fn bad<D: Into<String>>(detail: D) -> Problem {
    Problem::bad_request("invalid-workitem", detail)
}

fn unprocessable<D: Into<String>>(detail: D) -> Problem {
    Problem::unprocessable("invalid-workitem", "Invalid work item", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workitem_uids_and_job_ids_name_each_other() {
        let id = "0190a000-0000-7000-8000-00000000002a";
        let uid = workitem_uid(id).unwrap();
        assert!(uid.starts_with("2.25.") && uid.len() <= 64, "{uid}");
        assert!(uid[5..].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(job_id_of(&uid).as_deref(), Some(id));
        assert_eq!(job_id_of("1.2.3"), None);
        assert_eq!(job_id_of("2.25.x"), None);
    }

    #[test]
    fn states_map_both_ways() {
        for status in ["queued", "running", "succeeded", "failed", "cancelled"] {
            let state = ups_state(status);
            assert!(job_statuses(state).unwrap().contains(&status), "{status}");
        }
        assert!(job_statuses("DONE").is_err());
    }

    #[test]
    fn datetime_is_a_dicom_dt() {
        assert_eq!(
            dicom_datetime(86_400_123).as_deref(),
            Some("19700102000000.123000+0000")
        );
    }
}
