//! Deletion and retention of uploads: a `DELETE` request and the retention purge both
//! turn a series or segmentation into a tombstone in the database (refused while a
//! queued or running job uses it), then remove its blobs. Results of finished jobs live
//! in the job rows and are kept.
//!
//! The periodic task ([`run_retention_task`]) runs in every process that runs workers
//! (`radscore serve` without `--no-workers`, `radscore worker`); `radscore purge` runs one
//! pass by hand. Each pass first retries blob removals that failed half-way (a tombstone
//! whose `blobs_removed_at_ms` is still empty), then, when a retention period is set,
//! deletes every upload older than the period that no queued or running job uses —
//! including uploads no job ever used. Several processes may purge at once: each
//! deletion is one transaction, and a second attempt finds a tombstone.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{
    AuditEvent, BlobRemoval, BlobStore, Db, Deletion, DeletionReason, StoreError, UploadKind,
    now_ms,
};

/// Most uploads one purge step looks at; a pass repeats steps until fewer are found.
const PURGE_BATCH: i64 = 500;

/// Most purge steps in one pass, so a pass ends even if uploads keep expiring meanwhile.
const MAX_PURGE_STEPS: usize = 100;

/// Retention policy of a worker process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionPolicy {
    /// Uploads older than this are purged; `None` keeps them forever.
    pub period: Option<Duration>,
    /// Time between purge passes.
    pub sweep_interval: Duration,
}

/// What one purge pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Series deleted because the retention period ran out.
    pub series: usize,
    /// Segmentations deleted because the retention period ran out (not counting those
    /// deleted with their series).
    pub segmentations: usize,
    /// Deleted uploads whose blob removal was retried (and succeeded).
    pub blob_retries: usize,
}

/// Delete a series (with its segmentations) or a segmentation: tombstone in the database,
/// then remove the blobs. `tenant` restricts the lookup (`None`: any tenant).
///
/// # Errors
/// A database or blob store error. When the blob store fails after the tombstone was
/// written, the upload stays deleted and the next purge pass removes the blobs.
///
/// # Concurrent job creation
/// The tombstone and the check for queued or running jobs are one transaction, and a job
/// insert checks that its uploads are live in its own (see
/// [`crate::store::Database::insert_job`]): of a job creation and a deletion of its
/// upload racing each other exactly one succeeds (the other gets
/// [`Deletion::InUse`] or [`crate::store::Enqueue::UploadGone`]).
pub async fn delete_upload(
    db: &Db,
    blobs: &BlobStore,
    kind: UploadKind,
    tenant: Option<&str>,
    id: &str,
    reason: DeletionReason,
) -> Result<Deletion, StoreError> {
    let deletion = db.delete_upload(kind, tenant, id, reason).await?;
    if let Deletion::Deleted(removals) = &deletion {
        for removal in removals {
            metrics::counter!(
                "radscore_uploads_deleted_total",
                "kind" => removal.kind.as_str(),
                "reason" => reason.as_str()
            )
            .increment(1);
        }
        remove_blobs(db, blobs, removals).await?;
    }
    Ok(deletion)
}

/// Remove each upload's blobs and record that they are gone.
async fn remove_blobs(
    db: &Db,
    blobs: &BlobStore,
    removals: &[BlobRemoval],
) -> Result<(), StoreError> {
    for removal in removals {
        blobs.delete_prefix(&removal.blob_key).await?;
        db.mark_blobs_removed(removal.kind, &removal.id).await?;
    }
    Ok(())
}

/// One purge pass at `now_ms`: retry pending blob removals, then delete the uploads older
/// than `period` (none when `period` is `None`). Each purged upload is written to its
/// tenant's audit log with the action a `DELETE` request writes, no key id (the service
/// itself acted) and `"reason": "retention"`.
///
/// # Errors
/// The first database or blob store error; what was done before it stays done.
pub async fn purge(
    db: &Db,
    blobs: &BlobStore,
    period: Option<Duration>,
    now_ms: i64,
) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport::default();
    let pending = db.pending_blob_removals(PURGE_BATCH).await?;
    remove_blobs(db, blobs, &pending).await?;
    report.blob_retries = pending.len();

    let Some(period) = period else {
        return Ok(report);
    };
    let cutoff_ms = now_ms.saturating_sub(crate::store::db::duration_ms(period));
    for _ in 0..MAX_PURGE_STEPS {
        let expired = db.expired_uploads(cutoff_ms, PURGE_BATCH).await?;
        for upload in &expired {
            let kind = upload.kind;
            let deletion =
                delete_upload(db, blobs, kind, None, &upload.id, DeletionReason::Retention).await?;
            // Gone: deleted with its series earlier in this pass. InUse: a job was created
            // since the listing; the next pass looks again.
            if let Deletion::Deleted(removed) = &deletion {
                audit_purge(db, upload, removed.len(), period).await?;
                match kind {
                    UploadKind::Series => report.series += 1,
                    UploadKind::Segmentation => report.segmentations += 1,
                }
            }
        }
        if expired.len() < usize::try_from(PURGE_BATCH).unwrap_or(usize::MAX) {
            break;
        }
    }
    Ok(report)
}

/// Write the audit log entry of one purged upload (see [`purge`]).
async fn audit_purge(
    db: &Db,
    upload: &crate::store::ExpiredUpload,
    uploads_removed: usize,
    period: Duration,
) -> Result<(), StoreError> {
    let action = match upload.kind {
        UploadKind::Series => "delete.series",
        UploadKind::Segmentation => "delete.segmentation",
    };
    let detail = serde_json::json!({
        "reason": DeletionReason::Retention.as_str(),
        "retention_hours": period.as_secs_f64() / 3600.0,
        "uploads_removed": uploads_removed,
    });
    db.append_audit(&AuditEvent {
        seq: 0,
        at_ms: now_ms(),
        tenant_id: upload.tenant_id.clone(),
        key_id: None,
        action: action.to_string(),
        object_type: upload.kind.as_str().to_string(),
        object_id: Some(upload.id.clone()),
        request_id: None,
        detail: detail.to_string(),
    })
    .await
}

/// Run a purge pass every `policy.sweep_interval` until `shutdown` is cancelled.
pub async fn run_retention_task(
    db: Db,
    blobs: BlobStore,
    policy: RetentionPolicy,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(policy.sweep_interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        match purge(&db, &blobs, policy.period, now_ms()).await {
            Ok(r) if r == PurgeReport::default() => {
                tracing::debug!("retention pass: nothing to do")
            }
            Ok(r) => tracing::info!(
                series = r.series,
                segmentations = r.segmentations,
                blob_retries = r.blob_retries,
                "retention pass purged uploads"
            ),
            Err(e) => {
                tracing::warn!(error.message = %e, "retention pass failed; retried next pass")
            }
        }
    }
}
