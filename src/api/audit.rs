//! The audit trail: [`audit`] appends who (tenant, key id) did what to which object, and
//! when, to the append-only `audit_log` table; `GET /v1/audit` lets an admin key read its
//! tenant's events, and `radscore audit export` writes them as JSON lines.
//!
//! Events carry ids, counts, formats and statuses only: never key material, pixel data or
//! patient identifiers (no DICOM attribute values beyond UIDs radscore itself assigns).
//! The store has no statement that updates or deletes an event, and the database refuses
//! both by trigger (see `migrations/*/0005_auth_tenancy_audit.sql`).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, current_request_id};
use super::{ApiResult, AppState, Problem};
use crate::store::{AuditEvent, now_ms};

/// Append an audit event for the request being served. `action` is dotted
/// (`series.upload`, `job.create`, `result.read`, `delete.series`, …), `detail` a JSON
/// object of non-identifying facts. The request id is taken from the request in scope.
///
/// # Errors
/// A 500 problem when the event cannot be stored: an action that cannot be traced is
/// not done silently.
pub async fn audit(
    state: &AppState,
    tenant: &str,
    key_id: Option<&str>,
    action: &str,
    object_type: &str,
    object_id: &str,
    detail: Value,
) -> ApiResult<()> {
    let event = AuditEvent {
        seq: 0,
        at_ms: now_ms(),
        tenant_id: tenant.to_string(),
        key_id: key_id.map(str::to_string),
        action: action.to_string(),
        object_type: object_type.to_string(),
        object_id: Some(object_id.to_string()),
        request_id: current_request_id(),
        detail: detail.to_string(),
    };
    state.db.append_audit(&event).await?;
    Ok(())
}

/// [`audit`] for the caller of the request.
pub async fn audit_caller(
    state: &AppState,
    caller: &Caller,
    action: &str,
    object_type: &str,
    object_id: &str,
    detail: Value,
) -> ApiResult<()> {
    audit(
        state,
        &caller.tenant,
        caller.key_id.as_deref(),
        action,
        object_type,
        object_id,
        detail,
    )
    .await
}

/// An event as exported (API and JSON lines): times in RFC 3339, `detail` as an object.
pub fn event_json(event: &AuditEvent) -> Value {
    let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
    json!({
        "seq": event.seq,
        "time": super::jobs::rfc3339(Some(event.at_ms)),
        "tenant": event.tenant_id,
        "key_id": event.key_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "request_id": event.request_id,
        "detail": detail,
    })
}

/// Parse an RFC 3339 time into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// RFC 3339 time; only events at or after it.
    pub since: Option<String>,
}

/// `GET /v1/audit?since=`: the caller's tenant's events, oldest first (admin keys only).
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    if !caller.admin {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Admin key required",
            "the audit log can be read with an admin key only (radscore keys create --admin)",
        ));
    }
    let since_ms = match query.since.as_deref() {
        None => None,
        Some(text) => Some(parse_rfc3339_ms(text).ok_or_else(|| {
            Problem::bad_request(
                "invalid-since",
                format!(
                    "'since' must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got '{}'",
                    super::series::clip(text)
                ),
            )
        })?),
    };
    let events = state
        .db
        .audit_events(Some(&caller.tenant), since_ms)
        .await?;
    let events: Vec<Value> = events.iter().map(event_json).collect();
    Ok(Json(json!({ "events": events })))
}
