//! `GET /v1/jobs/{id}/events`: a job's status and progress as Server-Sent Events (HTML
//! Living Standard, "Server-sent events"), until the job has ended.
//!
//! Each change of status, progress or delivery is one `event: job` whose `data` is the job
//! document of `GET /v1/jobs/{id}`; the stream ends after the event that shows a final
//! status (`succeeded`, `failed`, `cancelled`) and no delivery still `pending`. The first
//! event is sent at once, so a client that connects late still learns the current state.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::Value;

use super::auth::Tenant;
use super::jobs::job_document;
use super::{ApiResult, AppState};

/// How often the job row is read for changes. The workers may run in other processes, so
/// the database is the one place every change shows up.
// LIMITATION: changes are found by polling the job row (bounded latency of one interval),
// not pushed; a notification channel (PostgreSQL LISTEN) would make them immediate.
pub const EVENTS_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Interval of SSE comment lines that keep proxies from closing an idle stream.
pub const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// SSE event name of a job document.
pub const JOB_EVENT: &str = "job";

/// Job statuses after which nothing changes any more.
pub const FINAL_STATUSES: [&str; 3] = ["succeeded", "failed", "cancelled"];

/// `GET /v1/jobs/{id}/events`: 404 for an unknown job, else the event stream.
pub async fn job_events(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let first = super::jobs::tenant_job(&state, &tenant, &id).await?;
    let first = job_document(&state, &first).await?;
    let stream = futures::stream::unfold(
        (state, (tenant, id), Some(first), None::<Value>),
        |(state, (tenant, id), mut fresh, mut last)| async move {
            loop {
                // The stream ends after the event that showed a final status.
                if last.as_ref().is_some_and(is_final) {
                    return None;
                }
                let doc = match fresh.take() {
                    Some(doc) => doc,
                    None => {
                        tokio::time::sleep(EVENTS_POLL_INTERVAL).await;
                        // The job gone or the database unreachable ends the stream; the
                        // client can still poll `GET /v1/jobs/{id}`.
                        let row = state.db.job(&tenant, &id).await.ok().flatten()?;
                        job_document(&state, &row).await.ok()?
                    }
                };
                if last.as_ref() == Some(&doc) {
                    continue;
                }
                let event = Event::default()
                    .event(JOB_EVENT)
                    .json_data(&doc)
                    .unwrap_or_else(|_| Event::default().event(JOB_EVENT));
                last = Some(doc);
                return Some((Ok(event), (state, (tenant, id), None, last)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(EVENTS_KEEP_ALIVE)))
}

/// Whether nothing about the job will change any more: a final status and no delivery
/// still pending.
fn is_final(doc: &Value) -> bool {
    let status = doc.get("status").and_then(Value::as_str);
    let delivery = doc.pointer("/delivery/status").and_then(Value::as_str);
    status.is_some_and(|s| FINAL_STATUSES.contains(&s))
        && delivery != Some(crate::jobs::delivery::PENDING)
}
