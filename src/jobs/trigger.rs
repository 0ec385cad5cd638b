//! Auto-trigger: a job starts without an API call when a segmentation (DICOM SEG or RT
//! Structure Set) arrives by STOW-RS for a series and the tenant's rule says so (an RT
//! Structure Set's ROI Names play the Segment Labels' part).
//!
//! The rule ([`TriggerRule`], JSON in the tenant settings, set by an admin with `radscore
//! tenants set-trigger` or `PUT /v1/tenant/dicomweb`) gives the lesion location: from each
//! segment's label when it names one (see [`location_from_label`]), else the rule's
//! default. A segmentation bound by STOW-RS under a rule (at once, or when the CT instances
//! it waited for arrive, see [`crate::api::stow_series`]) is recorded as a waiting trigger
//! due `RADSCORE_STOW_STABLE_S` seconds later; every further new instance of the referenced
//! series pushes that time back, so the job starts once, when the series has been stable
//! that long (the completeness rule PACS routers use, see [`Readiness`]); a series whose
//! instances are then not a series (a gap) skips the trigger with that reason. The worker's background task
//! ([`run_background`]) creates the job for each due trigger, audited as `job.create` with
//! `"via": "auto-trigger"`; it is then an ordinary job (`GET /v1/jobs`, events, push).
//!
//! While the job queue holds `RADSCORE_MAX_QUEUED_JOBS` jobs, a due trigger waits (tried
//! again every few seconds) instead of adding to it, as `POST /v1/jobs` answers 429.
//!
//! Each trigger creates at most one job, also with several worker processes: the job's
//! idempotency key is `auto-trigger:{segmentation id}`, so a second insert returns the
//! first job.
//!
//! LIMITATION: SEG Anatomic Region codes are not read; the location comes from the
//! Segment Label or the rule's default.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::JobRequest;
use super::worker::JobContext;
use crate::features::Location;
use crate::pipeline::LesionRequest;
use crate::store::{
    AuditEvent, Db, Enqueue, NewJob, StoreError, StowSeriesRow, StowTriggerRow, now_ms,
};

/// How often the background task looks for due triggers and orphaned deliveries.
const BACKGROUND_TICK: Duration = Duration::from_secs(1);

/// Most triggers fired per tick.
const TRIGGER_BATCH: i64 = 50;

/// How long a due trigger waits when the job queue is full before it is tried again.
const QUEUE_FULL_WAIT: Duration = Duration::from_secs(5);

/// Most lesions of an automatically created job (as for `POST /v1/jobs`).
const MAX_LESIONS: usize = 1000;

/// Prefix of the idempotency key of an automatically created job.
pub const IDEMPOTENCY_PREFIX: &str = "auto-trigger:";

/// Why a STOW-RS series resource opened by a segmentation (a SEG or RT Structure Set that
/// arrived before its CT) is not a series: it holds no instance yet.
const NO_INSTANCE_REASON: &str = "no CT instance of the series has been received yet";

/// A tenant's rule: when a SEG arrives by STOW-RS referencing a stored series, start a job
/// on every segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRule {
    /// Location of a segment whose label names none.
    pub default_location: Location,
    /// Take the location from the Segment Label when it names one.
    #[serde(default = "yes")]
    pub location_from_label: bool,
    /// Registered model to score with; the active model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

fn yes() -> bool {
    true
}

impl TriggerRule {
    /// Parse a rule document, with a message naming the fault.
    ///
    /// # Errors
    /// Not a rule object (unknown field, unknown location, wrong type).
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| {
            let allowed: Vec<&str> = Location::ALL.iter().map(|l| l.as_str()).collect();
            format!(
                "the auto-trigger rule is invalid: {e} (expected {{\"default_location\": one \
                 of {}, \"location_from_label\": bool, \"model_id\": string}})",
                allowed.join(", ")
            )
        })
    }

    /// The location of a segment labelled `label`.
    pub fn location(&self, label: Option<&str>) -> Location {
        label
            .filter(|_| self.location_from_label)
            .and_then(location_from_label)
            .unwrap_or(self.default_location)
    }
}

/// The location a Segment Label names, by words: `pleura`/`pleural`, `lymph`/`node`,
/// `peritoneum`/`peritoneal`, `soft tissue`, or a location's wire name; `None` otherwise.
pub fn location_from_label(label: &str) -> Option<Location> {
    let text = label.to_ascii_lowercase().replace(['-', '_'], " ");
    let has = |w: &str| text.split_whitespace().any(|t| t.starts_with(w));
    if has("pleur") {
        Some(Location::Pleura)
    } else if has("lymph") || has("node") {
        Some(Location::LymphNode)
    } else if has("periton") {
        Some(Location::Peritoneum)
    } else if text.contains("soft tissue") {
        Some(Location::SoftTissue)
    } else {
        None
    }
}

/// The tenant's rule, if one is set (an unreadable stored rule counts as none, logged).
pub async fn tenant_rule(db: &Db, tenant: &str) -> Result<Option<TriggerRule>, StoreError> {
    let Some(json) = db
        .tenant_settings(tenant)
        .await?
        .and_then(|s| s.auto_trigger)
    else {
        return Ok(None);
    };
    match TriggerRule::parse(&json) {
        Ok(rule) => Ok(Some(rule)),
        Err(e) => {
            tracing::error!(error.message = %e, "the stored auto-trigger rule is unusable");
            Ok(None)
        }
    }
}

/// Whether a series may be used by a job: a series received by STOW-RS is complete once no
/// new instance arrived for the stability delay and its instances assemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Uploaded with `POST /v1/series`, or received by STOW-RS, stable and assembled.
    Ready,
    /// Still receiving instances: stable at `stable_at_ms` (Unix ms) unless more arrive;
    /// `reason` says why the instances received so far are not a series, if they are not.
    Receiving {
        stable_at_ms: i64,
        reason: Option<String>,
    },
    /// Stable, but the instances received are not a series (a gap, no CT instance yet…).
    Incomplete { reason: String },
}

impl Readiness {
    /// The readiness of a STOW-RS series resource at `now_ms` with the delay `stable`.
    pub fn of(row: &StowSeriesRow, now_ms: i64, stable: Duration) -> Self {
        let stable_ms = i64::try_from(stable.as_millis()).unwrap_or(i64::MAX);
        let stable_at_ms = row.last_instance_at_ms.saturating_add(stable_ms);
        // A resource with no instance has nothing to assemble, so no assembly error either:
        // it is not a series (found by the break test: it showed `complete`).
        let reason = row
            .assembly_error
            .clone()
            .or_else(|| (row.instance_count == 0).then(|| NO_INSTANCE_REASON.to_owned()));
        match (reason, now_ms < stable_at_ms) {
            (reason, true) => Readiness::Receiving {
                stable_at_ms,
                reason,
            },
            (Some(reason), false) => Readiness::Incomplete { reason },
            (None, false) => Readiness::Ready,
        }
    }

    /// The state's wire name in `GET /v1/series/{id}` (`stow.state`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Readiness::Ready => "complete",
            Readiness::Receiving { .. } => "receiving",
            Readiness::Incomplete { .. } => "incomplete",
        }
    }

    /// Whole seconds from `now_ms` until a series still receiving instances becomes
    /// stable (at least 1, for a `Retry-After` header); `None` in the other states.
    pub fn retry_after_s(&self, now_ms: i64) -> Option<u64> {
        match self {
            Readiness::Receiving { stable_at_ms, .. } => {
                let wait_ms = u64::try_from(stable_at_ms.saturating_sub(now_ms)).unwrap_or(0);
                Some(wait_ms.div_ceil(1000).max(1))
            }
            _ => None,
        }
    }

    /// Why a job may not use the series yet (`None` when it may).
    pub fn refusal(&self, series_id: &str) -> Option<String> {
        match self {
            Readiness::Ready => None,
            Readiness::Receiving {
                stable_at_ms,
                reason,
            } => Some(format!(
                "series '{series_id}' is still receiving instances by STOW-RS; it is complete \
                 once none arrives until {} (RADSCORE_STOW_STABLE_S after the last){}",
                time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(*stable_at_ms) * 1_000_000
                )
                .ok()
                .and_then(|t| t
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok())
                .unwrap_or_else(|| format!("{stable_at_ms} (Unix ms)")),
                reason
                    .as_deref()
                    .map(|r| format!("; the instances so far are not a series: {r}"))
                    .unwrap_or_default()
            )),
            Readiness::Incomplete { reason } => Some(format!(
                "series '{series_id}' received by STOW-RS is incomplete: {reason}"
            )),
        }
    }
}

/// The readiness of series `series_id` of `tenant` (see [`Readiness`]).
pub async fn readiness(
    db: &Db,
    tenant: &str,
    series_id: &str,
    stable: Duration,
) -> Result<Readiness, StoreError> {
    Ok(match db.stow_series(tenant, series_id).await? {
        Some(row) => Readiness::of(&row, now_ms(), stable),
        None => Readiness::Ready,
    })
}

/// A CT series arrived by STOW-RS: waiting triggers of that series wait `stable` longer.
pub async fn series_arrived(
    db: &Db,
    tenant: &str,
    series_uid: &str,
    stable: Duration,
) -> Result<(), StoreError> {
    db.postpone_stow_triggers(tenant, series_uid, due_after(stable))
        .await
}

/// A segmentation of `series_uid` was stored by STOW-RS: under the tenant's rule, record a
/// trigger due once the series has been stable for `stable`. Returns whether it did.
pub async fn segmentation_arrived(
    db: &Db,
    tenant: &str,
    segmentation_id: &str,
    series_uid: &str,
    stable: Duration,
) -> Result<bool, StoreError> {
    if tenant_rule(db, tenant).await?.is_none() {
        return Ok(false);
    }
    let row = StowTriggerRow {
        segmentation_id: segmentation_id.to_string(),
        tenant_id: tenant.to_string(),
        series_uid: series_uid.to_string(),
        due_at_ms: due_after(stable),
        state: "waiting".into(),
        job_id: None,
        error: None,
        created_at_ms: now_ms(),
    };
    db.insert_stow_trigger(&row).await?;
    tracing::info!(segmentation_id, series_uid, "auto-trigger armed");
    Ok(true)
}

fn due_after(stable: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(stable.as_millis()).unwrap_or(i64::MAX))
}

/// Until `shutdown`: every tick, start the jobs of due triggers and resume report
/// deliveries cut off by a process exit (at once at startup).
pub async fn run_background(ctx: Arc<JobContext>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(BACKGROUND_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = fire_due(&ctx).await {
            tracing::warn!(error.message = %e, "could not start auto-triggered jobs");
        }
        if let Err(e) = ctx.push.resume_orphans(&ctx.db, &ctx.blobs).await {
            tracing::warn!(error.message = %e, "could not resume report deliveries");
        }
    }
}

/// Start the job of every due trigger; returns how many jobs were created.
///
/// # Errors
/// The store cannot be read or written.
pub async fn fire_due(ctx: &JobContext) -> Result<usize, StoreError> {
    let mut created = 0;
    for trigger in ctx.db.due_stow_triggers(now_ms(), TRIGGER_BATCH).await? {
        // The queue bound holds for these jobs too: a full queue delays the trigger (as a
        // 429 delays a client), it never drops it.
        let queued = u64::try_from(ctx.db.queued_jobs().await?).unwrap_or(0);
        if queued >= ctx.queue.max_queued_jobs {
            tracing::warn!(segmentation_id = %trigger.segmentation_id, queued,
                "job queue full; the auto-trigger waits");
            let (tenant, series_uid) = (&trigger.tenant_id, &trigger.series_uid);
            let due = due_after(QUEUE_FULL_WAIT);
            ctx.db
                .postpone_stow_triggers(tenant, series_uid, due)
                .await?;
            continue;
        }
        let span = tracing::info_span!("auto_trigger", segmentation_id = %trigger.segmentation_id,
            series_uid = %trigger.series_uid);
        let _enter = span.enter();
        let created_job = match job_request(&ctx.db, &trigger).await? {
            Ok(request) => create_job(&ctx.db, &trigger, &request)
                .await?
                .map(|(job_id, new)| (job_id, new, request)),
            Err(reason) => Err(reason),
        };
        match created_job {
            Ok((job_id, new, request)) => {
                ctx.db
                    .finish_stow_trigger(&trigger.segmentation_id, Some(&job_id), None)
                    .await?;
                if new {
                    created += 1;
                    ctx.job_enqueued.notify_waiters();
                    tracing::info!(job_id = %job_id, lesions = request.lesions.len(),
                        "auto-triggered job queued");
                }
            }
            Err(reason) => {
                tracing::warn!(reason = %reason, "auto-trigger skipped");
                ctx.db
                    .finish_stow_trigger(&trigger.segmentation_id, None, Some(&reason))
                    .await?;
            }
        }
    }
    Ok(created)
}

/// The job a trigger starts, or why it starts none.
async fn job_request(
    db: &Db,
    trigger: &StowTriggerRow,
) -> Result<Result<JobRequest, String>, StoreError> {
    let Some(rule) = tenant_rule(db, &trigger.tenant_id).await? else {
        return Ok(Err("the tenant's auto-trigger rule was removed".into()));
    };
    let Some(seg) = db
        .segmentation(&trigger.tenant_id, &trigger.segmentation_id)
        .await?
    else {
        return Ok(Err("the segmentation was deleted".into()));
    };
    // Due once the series was stable for the delay: only whether it assembled is left.
    let ready = readiness(db, &trigger.tenant_id, &seg.series_id, Duration::ZERO).await?;
    if let Some(reason) = ready.refusal(&seg.series_id) {
        return Ok(Err(reason));
    }
    let summaries: Vec<serde_json::Value> = serde_json::from_str(&seg.lesions)?;
    let lesions: Vec<LesionRequest> = summaries
        .iter()
        .filter_map(|l| {
            let label = u32::try_from(l["label"].as_u64()?).ok()?;
            let location = rule.location(l["name"].as_str());
            Some(LesionRequest { label, location })
        })
        .collect();
    if lesions.is_empty() || lesions.len() > MAX_LESIONS {
        return Ok(Err(format!(
            "the segmentation has {} segments; a job takes 1 to {MAX_LESIONS}",
            lesions.len()
        )));
    }
    Ok(Ok(JobRequest {
        series_id: seg.series_id,
        segmentation_id: seg.id,
        lesions,
        model: None,
        model_id: rule.model_id,
        // The service's settings when the job runs (no per-job settings here).
        settings: None,
        settings_source: None,
        pyradiomics_params: None,
        naming: None,
        // The default interval, as for a REST job without the option.
        prediction_interval: None,
    }))
}

/// Insert the job (once per trigger) and audit it; `(job id, whether this call made it)`,
/// or why none was made (its series or segmentation was deleted meanwhile).
async fn create_job(
    db: &Db,
    trigger: &StowTriggerRow,
    request: &JobRequest,
) -> Result<Result<(String, bool), String>, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let existing = db
        .insert_job(&NewJob {
            id: id.clone(),
            tenant_id: trigger.tenant_id.clone(),
            series_id: request.series_id.clone(),
            segmentation_id: request.segmentation_id.clone(),
            request: serde_json::to_string(request)?,
            idempotency_key: Some(format!("{IDEMPOTENCY_PREFIX}{}", trigger.segmentation_id)),
            kind: crate::store::JobKind::Extraction,
        })
        .await?;
    match existing {
        Enqueue::Inserted => {}
        Enqueue::Existing(previous) => return Ok(Ok((previous.id, false))),
        Enqueue::UploadGone { kind, id, .. } => {
            return Ok(Err(format!(
                "{} '{id}' was deleted before the job was queued",
                kind.as_str()
            )));
        }
    }
    let detail = json!({
        "via": "auto-trigger",
        "series_id": request.series_id,
        "segmentation_id": request.segmentation_id,
        "lesions": request.lesions.len(),
    });
    db.append_audit(&AuditEvent {
        seq: 0,
        at_ms: now_ms(),
        tenant_id: trigger.tenant_id.clone(),
        key_id: None,
        action: "job.create".into(),
        object_type: "job".into(),
        object_id: Some(id.clone()),
        request_id: None,
        detail: detail.to_string(),
    })
    .await?;
    Ok(Ok((id, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_locations_by_their_words() {
        assert_eq!(
            location_from_label("Pleural lesion 1"),
            Some(Location::Pleura)
        );
        assert_eq!(location_from_label("LN-4R"), None);
        assert_eq!(
            location_from_label("lymph_node_2"),
            Some(Location::LymphNode)
        );
        assert_eq!(
            location_from_label("Peritoneal implant"),
            Some(Location::Peritoneum)
        );
        assert_eq!(
            location_from_label("soft-tissue mass"),
            Some(Location::SoftTissue)
        );
        assert_eq!(location_from_label("GTV-1"), None);
    }

    #[test]
    fn rule_parses_with_defaults_and_names_faults() {
        let rule = TriggerRule::parse(r#"{"default_location":"pleura"}"#).unwrap();
        assert!(rule.location_from_label);
        assert_eq!(rule.location(Some("GTV-1")), Location::Pleura);
        assert_eq!(rule.location(Some("node 3")), Location::LymphNode);
        let fixed =
            TriggerRule::parse(r#"{"default_location":"other","location_from_label":false}"#)
                .unwrap();
        assert_eq!(fixed.location(Some("node 3")), Location::Other);
        let e = TriggerRule::parse(r#"{"default_location":"lung"}"#).unwrap_err();
        assert!(e.contains("soft_tissue"), "{e}");
        assert!(TriggerRule::parse(r#"{"default_location":"pleura","x":1}"#).is_err());
    }

    #[test]
    fn a_resource_without_instances_is_never_complete() {
        let row = StowSeriesRow {
            id: "s1".into(),
            tenant_id: "t".into(),
            series_uid: "1.2.3".into(),
            version: 1,
            instance_count: 0,
            assembly_error: None,
            last_instance_at_ms: 1_000,
            created_at_ms: 1_000,
        };
        let stable = Duration::from_secs(30);
        let receiving = Readiness::of(&row, 2_000, stable);
        assert!(
            matches!(&receiving, Readiness::Receiving { reason: Some(r), .. } if r == NO_INSTANCE_REASON),
            "{receiving:?}"
        );
        let later = Readiness::of(&row, 60_000, stable);
        assert_eq!(
            later,
            Readiness::Incomplete {
                reason: NO_INSTANCE_REASON.into()
            }
        );
        assert!(later.refusal("s1").unwrap().contains("no CT instance"));
        let assembled = StowSeriesRow {
            instance_count: 2,
            ..row
        };
        assert_eq!(Readiness::of(&assembled, 60_000, stable), Readiness::Ready);
    }

    #[test]
    fn a_receiving_series_says_when_to_retry() {
        let receiving = Readiness::Receiving {
            stable_at_ms: 10_500,
            reason: None,
        };
        assert_eq!(receiving.retry_after_s(2_000), Some(9));
        assert_eq!(receiving.retry_after_s(10_000), Some(1));
        // Past the moment (a clock step, or the row not yet re-read): retry at once.
        assert_eq!(receiving.retry_after_s(20_000), Some(1));
        assert_eq!(Readiness::Ready.retry_after_s(0), None);
        let incomplete = Readiness::Incomplete {
            reason: "gap".into(),
        };
        assert_eq!(incomplete.retry_after_s(0), None);
        let text = receiving.refusal("s1").unwrap();
        assert!(text.contains("until 1970-01-01T00:00:10.5Z"), "{text}");
    }
}
