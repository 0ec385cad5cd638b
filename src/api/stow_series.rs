//! STOW-RS series assembled across requests, as PACS routers do: a PACS may push a series
//! one instance per request, or in several requests, in any order.
//!
//! Each accepted CT instance (per instance: parseable, a CT SOP class, the study of the
//! path, native Pixel Data of the declared size that decodes) is staged under the series
//! resource of its tenant and SeriesInstanceUID: its blob at `series/{id}/{SOP Instance
//! UID}.dcm` and a `stow_instances` row with its SHA-256. A re-sent identical instance is
//! the same instance; another file under a staged SOPInstanceUID is refused (0x0110),
//! the staged one stays. After the request the resource is re-assembled from the union
//! of its instances; the series id never changes, so RetrieveURLs are stable.
//!
//! Completeness is decided by the stability delay (`RADSCORE_STOW_STABLE_S`): until no new
//! instance arrived for that long the series is `receiving` and jobs on it are refused
//! (409 `series-not-stable`); then it is `complete` when its instances assemble, else
//! `incomplete` (409 `series-incomplete`, with the assembly error). An incomplete union
//! never refuses the instances: `GET /v1/series/{id}` shows the state and reason under
//! `stow` (see [`crate::jobs::trigger::Readiness`]).
//!
//! A segmentation (SEG or RTSTRUCT) that references a series still receiving instances and
//! does not map onto the instances received so far, arrives before they assemble, or
//! arrives before any CT instance of its series (it then opens the series resource, with
//! no instances) waits: it is answered with its segmentation id (`GET` shows
//! `status: pending` and why) and bound — mapped onto the whole assembled series, auditing
//! it and arming the auto-trigger — by the request whose CT instances make the mapping
//! succeed. Deleting the series resource (also one that never assembled) deletes the
//! segmentations waiting for it.
//!
//! Once a job has used a series resource, its instances are frozen (a job's input never
//! changes under it): a later instance of that SeriesInstanceUID opens the next version,
//! a new series resource that starts with the previous version's instances. Segmentations
//! stay bound to the version they were bound to; new ones bind to the newest.
//!
//! Every request re-plans the whole union, from the process-wide header cache
//! ([`dicom::HEADER_CACHE_PLANES`]): a series pushed one instance per request costs one
//! header read per instance, not O(n²) (the listing and planning in memory stay O(n) per
//! request).
//! LIMITATION: the header cache is per process: each API process reads a union's headers
//! once, and an evicted instance is read again.
//! LIMITATION: requests of one series are serialised within a process only; with several
//! API processes, concurrent requests of one series may leave a smaller union assembled
//! until its next instance (the store never records a smaller union over a larger one).
//! LIMITATION: the lesion summary of a segmentation bound before the last CT instance is
//! mapped on the instances received then; a job maps it onto the whole series again.
//! A series resource whose CT instances never arrive (or never assemble) has no series
//! row; `DELETE /v1/series/{id}` and the retention purge (counted from its last instance)
//! remove it and the segmentations waiting for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::audit::audit_caller;
use super::auth::Caller;
use super::stow::{Outcomes, PROCESSING_FAILURE, Pushed};
use super::{ApiResult, AppState, Problem};
use crate::dicom;
use crate::jobs::trigger;
use crate::jobs::worker::BlobInstances;
use crate::store::{
    PendingSegmentationRow, SeriesRow, StowInstanceRow, StowSeriesRow, UploadKind, now_ms,
};

/// One instance of a request after its own checks: its SHA-256 (hex) and SOPInstanceUID.
struct Checked {
    pushed: Pushed,
    sha256: String,
    sop_instance_uid: String,
}

/// What staging did with one instance.
enum Staged {
    /// A new instance of the series.
    New,
    /// The same bytes as an instance already staged.
    Again,
    /// Other bytes under a staged SOPInstanceUID: refused with this comment.
    Conflict(String),
}

/// Stage the CT instances of `series_uid` a request carries and re-assemble the series
/// resource from every instance received so far.
#[tracing::instrument(skip_all, fields(series_uid = %series_uid, series_id = tracing::field::Empty))]
pub(super) async fn receive_ct(
    state: &AppState,
    caller: &Caller,
    series_uid: &str,
    instances: Vec<Pushed>,
    outcomes: &mut Outcomes,
) -> ApiResult<()> {
    let checked = check_instances(instances, outcomes).await?;
    if checked.is_empty() {
        return Ok(());
    }
    let _serialised = series_lock(&caller.tenant, series_uid).await;
    let tenant = caller.tenant.as_str();
    let latest = live_latest(state, tenant, series_uid).await?;
    let mut known = match &latest {
        Some(latest) => known_instances(state, &latest.id).await?,
        None => HashMap::new(),
    };
    // Re-sent instances only: answered from the newest resource, which stays as it is.
    let any_new = checked
        .iter()
        .any(|c| !known.contains_key(&c.sop_instance_uid));
    // A resource a job has used is frozen: new instances open the next version.
    let reuse = match &latest {
        Some(latest) => !any_new || state.db.series_job_count(&latest.id).await? == 0,
        None => false,
    };
    let series = match latest {
        Some(latest) if reuse => latest,
        latest => {
            let opened = open_next(state, tenant, series_uid, latest).await?;
            known = known_instances(state, &opened.id).await?;
            opened
        }
    };
    tracing::Span::current().record("series_id", series.id.as_str());

    let url = format!("/v1/series/{}", series.id);
    let mut new_instances = 0_usize;
    for instance in checked {
        match stage(state, &series, &mut known, &instance).await? {
            Staged::New => {
                new_instances += 1;
                outcomes
                    .stored
                    .push((instance.pushed.identity, url.clone()));
            }
            Staged::Again => outcomes
                .stored
                .push((instance.pushed.identity, url.clone())),
            Staged::Conflict(comment) => {
                let identity = instance.pushed.identity;
                outcomes
                    .failed
                    .push((identity, PROCESSING_FAILURE, comment));
            }
        }
    }
    if new_instances == 0 {
        return Ok(());
    }

    let assembled = assemble(state, &series).await?;
    let detail = json!({ "instances": new_instances, "via": "stow-rs", "version": series.version });
    audit_caller(state, caller, "series.upload", "series", &series.id, detail).await?;
    trigger::series_arrived(&state.db, &caller.tenant, series_uid, state.stow_stable).await?;
    if let Some(row) = assembled {
        bind_pending(state, caller, &series, &row).await?;
    }
    Ok(())
}

/// The per-instance checks, off the runtime: parseable with a SOPInstanceUID, native Pixel
/// Data of the declared size that decodes. A failing instance fails alone.
async fn check_instances(
    instances: Vec<Pushed>,
    outcomes: &mut Outcomes,
) -> ApiResult<Vec<Checked>> {
    let results = tokio::task::spawn_blocking(move || {
        instances
            .into_iter()
            .map(|pushed| {
                let checked = check_instance(&pushed);
                (pushed, checked)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| Problem::internal(&e))?;

    let mut checked = Vec::with_capacity(results.len());
    for (pushed, result) in results {
        match result {
            Ok((sha256, sop_instance_uid)) => checked.push(Checked {
                pushed,
                sha256,
                sop_instance_uid,
            }),
            Err(comment) => outcomes
                .failed
                .push((pushed.identity, PROCESSING_FAILURE, comment)),
        }
    }
    Ok(checked)
}

/// One instance's SHA-256 and SOPInstanceUID, or why it is refused.
fn check_instance(pushed: &Pushed) -> Result<(String, String), String> {
    let name = &pushed.file.name;
    let Some(sop_instance_uid) = pushed
        .identity
        .sop_instance_uid
        .clone()
        .filter(|u| !u.is_empty())
    else {
        return Err(format!(
            "{name}: the instance has no SOPInstanceUID (0008,0018)"
        ));
    };
    dicom::check_instance(&pushed.file).map_err(|e| format!("{name} refused: {e}"))?;
    let bytes = std::fs::read(&pushed.file.path)
        .map_err(|e| format!("{name}: the spooled part cannot be read back: {e}"))?;
    Ok((hex::encode(Sha256::digest(&bytes)), sop_instance_uid))
}

/// Serialise the requests of one series in this process (the guard's lifetime): its CT
/// instances and the segmentations that reference it.
pub(super) async fn series_lock(
    tenant: &str,
    series_uid: &str,
) -> tokio::sync::OwnedMutexGuard<()> {
    type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let lock = {
        let mut locks = LOCKS
            .get_or_init(Locks::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Drop the locks nobody holds, so the map stays as small as the series in flight.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks
            .entry(format!("{tenant}\u{0}{series_uid}"))
            .or_default()
            .clone()
    };
    lock.lock_owned().await
}

/// The newest STOW-RS resource of `series_uid` unless it was deleted.
async fn live_latest(
    state: &AppState,
    tenant: &str,
    series_uid: &str,
) -> ApiResult<Option<StowSeriesRow>> {
    let Some(latest) = state.db.latest_stow_series(tenant, series_uid).await? else {
        return Ok(None);
    };
    let deleted = state
        .db
        .tombstone(UploadKind::Series, Some(tenant), &latest.id)
        .await?
        .is_some();
    Ok((!deleted).then_some(latest))
}

/// The SOPInstanceUIDs staged for a resource, with their SHA-256.
async fn known_instances(state: &AppState, series_id: &str) -> ApiResult<HashMap<String, String>> {
    Ok(state
        .db
        .stow_instances(series_id)
        .await?
        .into_iter()
        .map(|i| (i.sop_instance_uid, i.sha256))
        .collect())
}

/// Open the next resource of `series_uid` after `previous` (a job used it; `None` for the
/// first or after a deletion): it starts with the previous version's instances.
async fn open_next(
    state: &AppState,
    tenant: &str,
    series_uid: &str,
    previous: Option<StowSeriesRow>,
) -> ApiResult<StowSeriesRow> {
    let version = match &previous {
        Some(p) => p.version + 1,
        // The first, or the one after a deleted resource.
        None => state
            .db
            .latest_stow_series(tenant, series_uid)
            .await?
            .map_or(1, |l| l.version + 1),
    };
    let now = now_ms();
    let row = StowSeriesRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_string(),
        series_uid: series_uid.to_string(),
        version,
        instance_count: 0,
        assembly_error: None,
        last_instance_at_ms: now,
        created_at_ms: now,
    };
    let opened = state.db.open_stow_series(&row).await?;
    if opened.id != row.id {
        return Ok(opened);
    }
    let carried = match &previous {
        Some(p) => state.db.stow_instances(&p.id).await?,
        None => Vec::new(),
    };
    tracing::info!(
        version,
        carried = carried.len(),
        "STOW-RS series resource opened"
    );
    for instance in carried {
        let bytes = state.blobs.get(&instance.blob_key).await?;
        let key = instance_key(&opened.id, &instance.sop_instance_uid);
        state.blobs.put(&key, bytes).await?;
        let row = StowInstanceRow {
            series_id: opened.id.clone(),
            blob_key: key,
            received_at_ms: now,
            ..instance
        };
        state.db.stage_stow_instance(&row).await?;
    }
    Ok(opened)
}

/// The blob of an instance of a series resource (listed by the worker with the series).
fn instance_key(series_id: &str, sop_instance_uid: &str) -> String {
    format!("series/{series_id}/{sop_instance_uid}.dcm")
}

/// Stage one instance under `series`: `known` maps the SOPInstanceUIDs staged so far to
/// their SHA-256 (this request's included). The blob is written before the row, so a
/// staged row always has its file.
async fn stage(
    state: &AppState,
    series: &StowSeriesRow,
    known: &mut HashMap<String, String>,
    instance: &Checked,
) -> ApiResult<Staged> {
    let uid = &instance.sop_instance_uid;
    if let Some(sha256) = known.get(uid) {
        return Ok(if *sha256 == instance.sha256 {
            Staged::Again
        } else {
            Staged::Conflict(conflict_comment(&instance.pushed.file.name, uid))
        });
    }
    let row = StowInstanceRow {
        series_id: series.id.clone(),
        sop_instance_uid: uid.clone(),
        sha256: instance.sha256.clone(),
        blob_key: instance_key(&series.id, uid),
        received_at_ms: now_ms(),
    };
    state
        .blobs
        .put_file(&row.blob_key, &instance.pushed.file.path)
        .await?;
    let staged = match state.db.stage_stow_instance(&row).await? {
        None => Staged::New,
        // Staged meanwhile by another process.
        Some(other) if other.sha256 == row.sha256 => Staged::Again,
        Some(_) => Staged::Conflict(conflict_comment(&instance.pushed.file.name, uid)),
    };
    known.insert(uid.clone(), row.sha256);
    Ok(staged)
}

fn conflict_comment(name: &str, sop_instance_uid: &str) -> String {
    format!(
        "{name}: SOPInstanceUID {sop_instance_uid} was received before with other content; \
         the instance received first is kept (a changed instance needs a new SOPInstanceUID)"
    )
}

/// Re-assemble `series` from all its staged instances: record the outcome and, when they
/// assemble, insert or update the series row (returned).
async fn assemble(state: &AppState, series: &StowSeriesRow) -> ApiResult<Option<SeriesRow>> {
    let prefix = format!("series/{}", series.id);
    let keys = state.blobs.list(&prefix).await?;
    let count = i64::try_from(keys.len()).unwrap_or(i64::MAX);
    let files = BlobInstances::new(state.blobs.clone(), keys);
    let policy = state.limits.geometry;
    let summary = tokio::task::spawn_blocking(move || {
        dicom::plan_series(&files, policy).map(|plan| plan.summary().clone())
    })
    .await
    .map_err(|e| Problem::internal(&e))?;
    let now = Some(now_ms());

    let summary = match summary {
        Ok(summary) => summary,
        Err(dicom::DicomError::Io { .. }) => {
            return Err(Problem::internal(
                &"a staged STOW-RS instance could not be read",
            ));
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::info!(instances = count, reason = %reason, "STOW-RS series not assembled yet");
            state
                .db
                .record_stow_assembly(&series.id, count, Some(reason.as_str()), now)
                .await?;
            return Ok(None);
        }
    };
    let row = super::series::series_row(&series.tenant_id, &series.id, &summary);
    let current = state.db.series(&series.tenant_id, &series.id).await?;
    if current.is_some() {
        state.db.update_series_assembly(&row).await?;
    } else {
        state.db.insert_series(&row).await?;
    }
    state
        .db
        .record_stow_assembly(&series.id, count, None, now)
        .await?;
    tracing::info!(instances = count, "STOW-RS series assembled");
    Ok(Some(row))
}

/// Bind the segmentations waiting for `series` that map onto it now.
async fn bind_pending(
    state: &AppState,
    caller: &Caller,
    series: &StowSeriesRow,
    row: &SeriesRow,
) -> ApiResult<()> {
    for pending in state.db.pending_segmentations(&series.id).await? {
        if !state.db.take_pending_segmentation(&pending.id).await? {
            continue;
        }
        let bytes = state.blobs.get(&pending.blob_key).await?;
        let file_name = pending.file_name.clone();
        match super::segmentations::create_from_bytes_as(
            state,
            caller,
            row,
            &pending.id,
            file_name,
            bytes,
        )
        .await
        {
            Ok(seg) => {
                tracing::info!(segmentation_id = %seg.id, "waiting STOW-RS segmentation bound");
                let (db, stable) = (&state.db, state.stow_stable);
                trigger::segmentation_arrived(db, &caller.tenant, &seg.id, &row.series_uid, stable)
                    .await?;
            }
            Err(problem) => {
                let waiting = PendingSegmentationRow {
                    reason: problem.detail.clone(),
                    ..pending
                };
                state.db.insert_pending_segmentation(&waiting).await?;
                if !problem.status.is_client_error() {
                    return Err(problem);
                }
            }
        }
    }
    Ok(())
}

/// Where a pushed segmentation of `referenced` goes: bound to a series row now, or waiting
/// for a STOW-RS series (the one receiving its CT instances, or a new one when none has
/// arrived yet).
pub(super) enum SegTarget {
    Bind(SeriesRow, Option<StowSeriesRow>),
    Wait(StowSeriesRow, String),
}

/// The target of a segmentation that references `referenced` (see [`SegTarget`]).
pub(super) async fn seg_target(
    state: &AppState,
    tenant: &str,
    name: &str,
    referenced: &str,
) -> ApiResult<SegTarget> {
    let stow = live_latest(state, tenant, referenced).await?;
    let series = state.db.series_by_uid(tenant, referenced).await?;
    if let Some(stow) = stow {
        let assembled = series.as_ref().is_some_and(|s| s.id == stow.id);
        return Ok(match (&stow.assembly_error, assembled, series) {
            (None, true, Some(series)) => SegTarget::Bind(series, Some(stow)),
            (error, _, _) => {
                let reason = format!(
                    "the CT instances of series '{}' received so far are not a series{}",
                    stow.id,
                    error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
                SegTarget::Wait(stow, reason)
            }
        });
    }
    Ok(match series {
        Some(series) => SegTarget::Bind(series, None),
        // Before any CT instance: the series resource it will bind to opens now.
        None => {
            let stow = open_next(state, tenant, referenced, None).await?;
            tracing::info!(series_id = %stow.id, "STOW-RS series resource opened by a segmentation");
            let reason = format!(
                "{name}: no CT instance of the referenced series '{referenced}' has been \
                 received yet"
            );
            SegTarget::Wait(stow, reason)
        }
    })
}

/// Whether a segmentation that does not map onto `stow` now should wait for more
/// instances: only while the series is still receiving them.
pub(super) fn may_wait(state: &AppState, stow: &StowSeriesRow) -> bool {
    matches!(
        trigger::Readiness::of(stow, now_ms(), state.stow_stable),
        trigger::Readiness::Receiving { .. }
    )
}

/// Keep a segmentation for `stow` until its CT instances arrive; returns its id.
pub(super) async fn wait_for_series(
    state: &AppState,
    stow: &StowSeriesRow,
    file_name: Option<String>,
    bytes: bytes::Bytes,
    reason: String,
) -> ApiResult<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let blob_key = format!("segmentations/{id}");
    state.blobs.put(&blob_key, bytes).await?;
    let row = PendingSegmentationRow {
        id: id.clone(),
        tenant_id: stow.tenant_id.clone(),
        series_id: stow.id.clone(),
        blob_key,
        file_name,
        reason,
        created_at_ms: now_ms(),
    };
    state.db.insert_pending_segmentation(&row).await?;
    tracing::info!(segmentation_id = %id, series_id = %stow.id, "STOW-RS segmentation waits for its series");
    Ok(id)
}
