//! The behaviours every [`radscore::store::Database`] implementation must have.

use std::collections::HashSet;
use std::time::Duration;

use radscore::jobs::RetryPolicy;
use radscore::jobs::retry::recover_expired_leases;
use radscore::store::{
    BatchRow, DEFAULT_TENANT, Db, Enqueue, ModelRow, NewJob, PendingSegmentationRow, SHARED_TENANT,
    SegmentationRow, SeriesRow, StowInstanceRow, StowSeriesRow, StowTriggerRow, now_ms,
};

/// The tenant of the rows the queue tests use.
const T: &str = "t1";

/// A lease long enough never to expire during a test.
const LONG_LEASE: Duration = Duration::from_secs(600);

/// A lease that is already over when the next statement runs.
const EXPIRED_LEASE: Duration = Duration::ZERO;

/// Wait long enough for an [`EXPIRED_LEASE`] to be in the past by the millisecond clock.
async fn let_lease_expire() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

async fn add_series_and_segmentation(db: &Db) {
    let series = SeriesRow {
        id: "s1".into(),
        tenant_id: T.into(),
        series_uid: "1.2.3".into(),
        frame_of_reference_uid: Some("1.2.3.4".into()),
        instance_count: 3,
        geometry: "{\"shape\":[3,2,2]}".into(),
        warnings: "[]".into(),
        blob_prefix: "series/s1".into(),
        created_at_ms: 17,
    };
    db.insert_series(&series).await.unwrap();
    let seg = SegmentationRow {
        id: "g1".into(),
        tenant_id: T.into(),
        series_id: "s1".into(),
        format: "nifti".into(),
        file_name: Some("mask.nii.gz".into()),
        blob_key: "segmentations/g1".into(),
        lesions: "[]".into(),
        created_at_ms: 18,
    };
    db.insert_segmentation(&seg).await.unwrap();
}

fn new_job(id: &str, key: Option<&str>) -> NewJob {
    NewJob {
        id: id.into(),
        tenant_id: T.into(),
        series_id: "s1".into(),
        segmentation_id: "g1".into(),
        request: format!("{{\"job\":\"{id}\"}}"),
        idempotency_key: key.map(str::to_string),
        kind: radscore::store::JobKind::Extraction,
    }
}

async fn db_with_jobs(db: &Db, n: usize) {
    add_series_and_segmentation(db).await;
    for i in 0..n {
        let inserted = db
            .insert_job(&new_job(&format!("j{i}"), None))
            .await
            .unwrap();
        assert!(inserted.is_inserted(), "a new job is inserted, not found");
    }
}

/// Series and segmentation rows read back as written; unknown ids are `None`.
pub async fn rows_round_trip(db: &Db) {
    assert!(db.ping().await);
    add_series_and_segmentation(db).await;
    let s = db.series(T, "s1").await.unwrap().expect("series stored");
    assert_eq!(s.frame_of_reference_uid.as_deref(), Some("1.2.3.4"));
    assert_eq!((s.instance_count, s.created_at_ms), (3, 17));
    let g = db
        .segmentation(T, "g1")
        .await
        .unwrap()
        .expect("segmentation stored");
    assert_eq!(g.file_name.as_deref(), Some("mask.nii.gz"));
    assert!(db.series(T, "nope").await.unwrap().is_none());
    assert!(db.segmentation(T, "nope").await.unwrap().is_none());
    assert!(db.job(T, "nope").await.unwrap().is_none());
}

/// A claimed job is invisible to other claimers and only its owner can finish it.
pub async fn a_job_is_claimed_once_and_finished_by_its_owner_only(db: &Db) {
    db_with_jobs(db, 1).await;
    let job = db
        .claim_job("w1", LONG_LEASE, 3)
        .await
        .unwrap()
        .expect("claimable");
    assert_eq!((job.status.as_str(), job.attempts), ("running", 1));
    assert_eq!(job.lease_owner.as_deref(), Some("w1"));
    assert!(db.claim_job("w2", LONG_LEASE, 3).await.unwrap().is_none());
    assert!(db.heartbeat("j0", "w1", LONG_LEASE, 0.5).await.unwrap());
    assert!(!db.heartbeat("j0", "w2", LONG_LEASE, 0.9).await.unwrap());
    assert!(!db.finish_job("j0", "w2", Ok("{}")).await.unwrap());
    assert!(db.finish_job("j0", "w1", Ok("{\"x\":1}")).await.unwrap());
    let row = db.job(T, "j0").await.unwrap().unwrap();
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.result.as_deref(), Some("{\"x\":1}"));
    assert_eq!(row.progress, 1.0);
    assert!(row.lease_owner.is_none());
    assert!(
        !db.finish_job("j0", "w1", Ok("{}")).await.unwrap(),
        "finished once"
    );
}

/// A job keeps its kind through insert, claim and listing, and listings filter by kind.
pub async fn jobs_keep_their_kind_and_list_by_kind(db: &Db) {
    use radscore::store::JobKind;
    db_with_jobs(db, 1).await;
    let robustness = NewJob {
        kind: JobKind::Robustness,
        ..new_job("r0", None)
    };
    assert!(db.insert_job(&robustness).await.unwrap().is_inserted());
    assert_eq!(
        db.job(T, "j0").await.unwrap().unwrap().kind(),
        JobKind::Extraction
    );
    assert_eq!(db.job(T, "r0").await.unwrap().unwrap().kind, "robustness");

    let ids = |rows: Vec<radscore::store::JobRow>| -> Vec<String> {
        rows.into_iter().map(|j| j.id).collect()
    };
    let of = |kind| db.jobs(T, None, Some(kind), 10);
    assert_eq!(ids(of(JobKind::Robustness).await.unwrap()), ["r0"]);
    assert_eq!(ids(of(JobKind::Extraction).await.unwrap()), ["j0"]);
    assert_eq!(db.jobs(T, None, None, 10).await.unwrap().len(), 2);

    let first = db.claim_job("w1", LONG_LEASE, 3).await.unwrap().unwrap();
    let second = db.claim_job("w1", LONG_LEASE, 3).await.unwrap().unwrap();
    let claimed = [
        (first.id.clone(), first.kind()),
        (second.id.clone(), second.kind()),
    ];
    assert!(
        claimed.contains(&("r0".to_string(), JobKind::Robustness)),
        "{claimed:?}"
    );
}

/// A crashed worker's job is re-queued by the sweep with a backoff, claimed again once
/// due, and failed with the reason once its attempts are spent.
pub async fn an_expired_lease_is_requeued_with_backoff_then_failed_after_max_attempts(db: &Db) {
    let no_wait = RetryPolicy {
        base: Duration::ZERO,
        max: Duration::ZERO,
    };
    db_with_jobs(db, 1).await;
    db.claim_job("w1", EXPIRED_LEASE, 2).await.unwrap().unwrap();
    let_lease_expire().await;
    assert!(
        db.claim_job("w2", EXPIRED_LEASE, 2)
            .await
            .unwrap()
            .is_none(),
        "still running"
    );
    assert_eq!(recover_expired_leases(db, &no_wait, 2).await.unwrap(), 1);
    let queued = db.job(T, "j0").await.unwrap().unwrap();
    assert_eq!((queued.status.as_str(), queued.attempts), ("queued", 1));
    assert!(queued.error.unwrap().contains("lease expired"));

    let again = db
        .claim_job("w2", EXPIRED_LEASE, 2)
        .await
        .unwrap()
        .expect("due again");
    assert_eq!(again.attempts, 2);
    assert!(
        !db.finish_job("j0", "w1", Ok("{}")).await.unwrap(),
        "w1 lost it"
    );
    let_lease_expire().await;
    assert_eq!(recover_expired_leases(db, &no_wait, 2).await.unwrap(), 1);
    let row = db.job(T, "j0").await.unwrap().unwrap();
    assert_eq!(row.status, "failed");
    assert!(row.error.unwrap().contains("every attempt"));
    assert!(row.finished_at_ms.is_some());
    assert!(db.claim_job("w3", LONG_LEASE, 9).await.unwrap().is_none());
}

/// A re-queued job is not claimable before its backoff has passed, and the sweep leaves
/// a job alone whose lease is still valid.
pub async fn a_retry_waits_for_its_backoff(db: &Db) {
    db_with_jobs(db, 1).await;
    db.claim_job("w1", LONG_LEASE, 3).await.unwrap().unwrap();
    let now = now_ms();
    assert!(
        !db.retry_or_fail("j0", "w1", Some(now), "x", Some(now))
            .await
            .unwrap()
    );
    assert!(db.expired_leases(now, 10).await.unwrap().is_empty());
    let later = now + 600_000;
    assert!(
        db.retry_or_fail("j0", "w1", Some(later), "blob store down", None)
            .await
            .unwrap()
    );
    let row = db.job(T, "j0").await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.run_after_ms), ("queued", later));
    assert!(
        db.claim_job("w2", LONG_LEASE, 3).await.unwrap().is_none(),
        "not yet due"
    );
    assert_eq!(db.queued_jobs().await.unwrap(), 1);
}

/// Many claimers racing over many jobs: each job goes to exactly one of them.
pub async fn concurrent_claimers_never_share_a_job(db: &Db) {
    const JOBS: usize = 40;
    const CLAIMERS: usize = 8;
    db_with_jobs(db, JOBS).await;
    let mut tasks = Vec::new();
    for c in 0..CLAIMERS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = db.claim_job(&format!("w{c}"), LONG_LEASE, 3).await.unwrap() {
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id.clone()), "job {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), JOBS);
    assert_eq!(db.queued_jobs().await.unwrap(), 0);
}

/// The same idempotency key returns the first job and inserts nothing.
pub async fn idempotency_key_returns_the_existing_job(db: &Db) {
    add_series_and_segmentation(db).await;
    assert!(
        db.insert_job(&new_job("a", Some("k1")))
            .await
            .unwrap()
            .is_inserted()
    );
    let Enqueue::Existing(existing) = db.insert_job(&new_job("b", Some("k1"))).await.unwrap()
    else {
        panic!("key taken")
    };
    assert_eq!(existing.id, "a");
    assert_eq!(existing.idempotency_key.as_deref(), Some("k1"));
    assert!(db.job(T, "b").await.unwrap().is_none());
    assert!(
        db.insert_job(&new_job("c", None))
            .await
            .unwrap()
            .is_inserted()
    );
    assert!(
        db.insert_job(&new_job("d", None))
            .await
            .unwrap()
            .is_inserted()
    );
    assert_eq!(db.queued_jobs().await.unwrap(), 3);
}

/// Cancelling a running job takes its lease; counts by state follow every move.
pub async fn cancel_takes_the_lease_and_counts_follow(db: &Db) {
    db_with_jobs(db, 3).await;
    let running = db.claim_job("w1", LONG_LEASE, 3).await.unwrap().unwrap();
    let (cancelled, row) = db.cancel_job(T, &running.id).await.unwrap().unwrap();
    assert!(cancelled);
    assert_eq!(row.status, "cancelled");
    assert!(!db.finish_job(&running.id, "w1", Ok("{}")).await.unwrap());
    let (again, _) = db.cancel_job(T, &running.id).await.unwrap().unwrap();
    assert!(!again, "a cancelled job is not cancelled twice");
    assert!(db.cancel_job(T, "nope").await.unwrap().is_none());

    let done = db.claim_job("w1", LONG_LEASE, 3).await.unwrap().unwrap();
    db.finish_job(&done.id, "w1", Err("bad input"))
        .await
        .unwrap();
    let counts = db.job_counts().await.unwrap();
    let expected = [("cancelled", 1), ("failed", 1), ("queued", 1)];
    let expected: Vec<(String, i64)> = expected.iter().map(|(s, n)| (s.to_string(), *n)).collect();
    assert_eq!(counts, expected);
    assert_eq!(db.queued_jobs().await.unwrap(), 1);
}

/// A released job is queued again with its attempt given back.
pub async fn release_puts_the_job_back_without_spending_an_attempt(db: &Db) {
    db_with_jobs(db, 1).await;
    db.claim_job("w1", LONG_LEASE, 1).await.unwrap().unwrap();
    db.release_job("j0", "w2").await.unwrap();
    assert_eq!(
        db.job(T, "j0").await.unwrap().unwrap().status,
        "running",
        "not w2's"
    );
    db.release_job("j0", "w1").await.unwrap();
    let row = db.job(T, "j0").await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 0));
    let again = db.claim_job("w2", LONG_LEASE, 1).await.unwrap();
    assert!(again.is_some(), "claimable again within max_attempts = 1");
}

/// A batch is stored with all its jobs or not at all; its key replays the first batch.
pub async fn a_batch_is_stored_whole_or_not_at_all(db: &Db) {
    add_series_and_segmentation(db).await;
    let batch = |id: &str| BatchRow {
        id: id.into(),
        tenant_id: T.into(),
        idempotency_key: Some("bk".into()),
        request: "[]".into(),
        job_count: 2,
        created_at_ms: 5,
    };
    let mut orphan = new_job("b2", None);
    orphan.series_id = "no-such-series".into();
    let failed = db
        .insert_batch(&batch("x"), &[new_job("b1", None), orphan])
        .await
        .unwrap();
    assert!(
        matches!(&failed, Enqueue::UploadGone { job: 1, kind: radscore::store::UploadKind::Series, id } if id == "no-such-series"),
        "a job referencing no series fails the batch: {failed:?}"
    );
    assert!(db.batch(T, "x").await.unwrap().is_none());
    assert!(
        db.job(T, "b1").await.unwrap().is_none(),
        "no job of a failed batch remains"
    );

    let jobs = [new_job("b1", None), new_job("b2", None)];
    assert!(
        db.insert_batch(&batch("x"), &jobs)
            .await
            .unwrap()
            .is_inserted()
    );
    let replay = db
        .insert_batch(&batch("y"), &[new_job("b3", None)])
        .await
        .unwrap();
    let Enqueue::Existing(replay) = replay else {
        panic!("key taken: {replay:?}")
    };
    assert_eq!(replay.id, "x");
    assert!(db.job(T, "b3").await.unwrap().is_none());
    let ids: Vec<String> = db
        .batch_jobs(T, "x")
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, ["b1", "b2"]);
    assert_eq!(db.batch(T, "x").await.unwrap().unwrap().job_count, 2);
    assert_eq!(db.queued_jobs().await.unwrap(), 2);
}

/// A series in use by a queued or running job cannot be deleted (the job ids are named);
/// once its job finished, deleting it tombstones it and its segmentation, returns their
/// blobs, keeps the job's result and clears the derived data.
pub async fn deletion_waits_for_jobs_then_tombstones_series_and_segmentations(db: &Db) {
    use radscore::store::{BlobRemoval, Deletion, DeletionReason, UploadKind};
    db_with_jobs(db, 1).await;
    let reason = DeletionReason::Deleted;
    assert_eq!(
        db.delete_upload(UploadKind::Series, Some(T), "s1", reason)
            .await
            .unwrap(),
        Deletion::InUse(vec!["j0".into()])
    );
    db.claim_job("w1", LONG_LEASE, 3).await.unwrap().unwrap();
    assert_eq!(
        db.delete_upload(UploadKind::Segmentation, Some(T), "g1", reason)
            .await
            .unwrap(),
        Deletion::InUse(vec!["j0".into()]),
        "a running job blocks the deletion too"
    );
    assert!(
        db.series(T, "s1").await.unwrap().is_some(),
        "refusal changed nothing"
    );
    assert!(
        db.finish_job("j0", "w1", Ok("{\"kept\":true}"))
            .await
            .unwrap()
    );

    let before = now_ms();
    let deleted = db
        .delete_upload(UploadKind::Series, Some(T), "s1", reason)
        .await
        .unwrap();
    let expected = vec![
        BlobRemoval {
            kind: UploadKind::Series,
            id: "s1".into(),
            blob_key: "series/s1".into(),
        },
        BlobRemoval {
            kind: UploadKind::Segmentation,
            id: "g1".into(),
            blob_key: "segmentations/g1".into(),
        },
    ];
    assert_eq!(deleted, Deletion::Deleted(expected.clone()));
    assert!(db.series(T, "s1").await.unwrap().is_none());
    assert!(db.series_by_uid(T, "1.2.3").await.unwrap().is_none());
    assert!(db.segmentation(T, "g1").await.unwrap().is_none());
    let job = db.job(T, "j0").await.unwrap().expect("finished job kept");
    assert_eq!(job.result.as_deref(), Some("{\"kept\":true}"));

    for kind in [UploadKind::Series, UploadKind::Segmentation] {
        let id = if kind == UploadKind::Series {
            "s1"
        } else {
            "g1"
        };
        let t = db
            .tombstone(kind, None, id)
            .await
            .unwrap()
            .expect("tombstone");
        assert_eq!(t.reason, DeletionReason::Deleted);
        assert!(
            t.deleted_at_ms >= before,
            "{kind:?} deleted at {}",
            t.deleted_at_ms
        );
    }
    assert!(matches!(
        db.delete_upload(UploadKind::Series, None, "s1", reason)
            .await
            .unwrap(),
        Deletion::Gone(_)
    ));
    assert!(matches!(
        db.delete_upload(UploadKind::Segmentation, None, "g1", reason)
            .await
            .unwrap(),
        Deletion::Gone(_)
    ));
    assert_eq!(
        db.delete_upload(UploadKind::Series, None, "nope", reason)
            .await
            .unwrap(),
        Deletion::NotFound
    );
    assert!(
        db.tombstone(UploadKind::Series, None, "nope")
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(db.pending_blob_removals(10).await.unwrap(), expected);
    db.mark_blobs_removed(UploadKind::Series, "s1")
        .await
        .unwrap();
    db.mark_blobs_removed(UploadKind::Segmentation, "g1")
        .await
        .unwrap();
    assert!(db.pending_blob_removals(10).await.unwrap().is_empty());
}

/// Retention lists uploads older than the cut-off that no queued or running job uses;
/// a purged one reads as purged by retention.
pub async fn expired_uploads_are_old_and_unused(db: &Db) {
    use radscore::store::{Deletion, DeletionReason, UploadKind};
    db_with_jobs(db, 1).await; // series created at 17 ms, segmentation at 18 ms
    assert!(
        db.expired_uploads(1_000, 10).await.unwrap().is_empty(),
        "job j0 is queued"
    );
    assert!(db.cancel_job(T, "j0").await.unwrap().unwrap().0);
    assert!(
        db.expired_uploads(17, 10).await.unwrap().is_empty(),
        "not older than 17"
    );
    assert_eq!(
        db.expired_uploads(18, 10).await.unwrap(),
        vec![radscore::store::ExpiredUpload {
            kind: UploadKind::Series,
            id: "s1".to_string(),
            tenant_id: T.to_string(),
        }]
    );
    let both = db.expired_uploads(1_000, 10).await.unwrap();
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(db.expired_uploads(1_000, 1).await.unwrap().len(), 1);

    let purged = db
        .delete_upload(UploadKind::Series, None, "s1", DeletionReason::Retention)
        .await
        .unwrap();
    assert!(matches!(purged, Deletion::Deleted(ref b) if b.len() == 2));
    assert!(db.expired_uploads(1_000, 10).await.unwrap().is_empty());
    let t = db
        .tombstone(UploadKind::Segmentation, None, "g1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.reason, DeletionReason::Retention);
}

fn model_row(id: &str, tenant: &str, version: &str) -> ModelRow {
    ModelRow {
        id: id.into(),
        tenant_id: tenant.into(),
        name: "m".into(),
        version: version.into(),
        sha256: format!("sha256:{id}"),
        settings_hash: "sha256:settings".into(),
        manifest: "{\"name\":\"m\"}".into(),
        blob_key: format!("models/{id}/model.onnx"),
        synthetic_demo: true,
        bundled: false,
        active: false,
        created_at_ms: 100,
        activated_at_ms: None,
    }
}

/// Models round-trip per tenant; name and version are unique per tenant; activating one
/// deactivates the other; deactivation leaves none active.
pub async fn the_model_registry_keeps_one_active_model_per_tenant(db: &Db) {
    let t = DEFAULT_TENANT;
    assert!(
        db.insert_model(&model_row("a", t, "1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.insert_model(&model_row("b", t, "2"))
            .await
            .unwrap()
            .is_none()
    );
    let dup = db.insert_model(&model_row("c", t, "1")).await.unwrap();
    assert_eq!(
        dup.map(|r| r.id).as_deref(),
        Some("a"),
        "same name and version"
    );
    assert!(
        db.insert_model(&model_row("d", "other", "1"))
            .await
            .unwrap()
            .is_none(),
        "another tenant may reuse name and version"
    );

    let ids: Vec<String> = db
        .models(t)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        db.model(t, "a").await.unwrap(),
        Some(model_row("a", t, "1"))
    );
    assert!(
        db.model(t, "d").await.unwrap().is_none(),
        "tenants are separate"
    );
    assert!(db.active_model(t).await.unwrap().is_none());

    let a = db.activate_model(t, "a").await.unwrap().expect("a exists");
    assert!(a.active && a.activated_at_ms.is_some());
    let b = db.activate_model(t, "b").await.unwrap().expect("b exists");
    assert!(b.active);
    assert!(
        !db.model(t, "a").await.unwrap().unwrap().active,
        "a was deactivated"
    );
    assert_eq!(
        db.active_model(t).await.unwrap().map(|r| r.id).as_deref(),
        Some("b")
    );
    assert!(db.active_model("other").await.unwrap().is_none());
    assert!(
        db.activate_model(t, "d").await.unwrap().is_none(),
        "other tenant's model"
    );

    let off = db
        .deactivate_model(t, "b")
        .await
        .unwrap()
        .expect("b exists");
    assert!(!off.active);
    assert!(db.active_model(t).await.unwrap().is_none());
    assert!(db.deactivate_model(t, "zz").await.unwrap().is_none());
}

/// The ids of the models `tenant` sees and the one it has active.
async fn seen(db: &Db, tenant: &str) -> (Vec<String>, Option<String>) {
    let rows = db.models(tenant).await.unwrap();
    let active: Vec<&ModelRow> = rows.iter().filter(|r| r.active).collect();
    assert!(
        active.len() <= 1,
        "{tenant}: more than one active: {rows:?}"
    );
    let from_list = active.first().map(|r| r.id.clone());
    let from_query = db.active_model(tenant).await.unwrap().map(|r| r.id);
    assert_eq!(
        from_list, from_query,
        "{tenant}: list and active_model agree"
    );
    (rows.into_iter().map(|r| r.id).collect(), from_query)
}

/// A shared model (tenant '*') is seen by every tenant and is the default active model of
/// tenants that chose none; activation and deactivation change only the caller's tenant;
/// a tenant's own model is invisible to the others and cannot be activated by them.
pub async fn shared_models_are_seen_by_all_and_activation_is_per_tenant(db: &Db) {
    let mut shared = model_row("s", SHARED_TENANT, "1");
    shared.bundled = true;
    assert!(db.insert_model(&shared).await.unwrap().is_none());
    let mut own = model_row("a", "t1", "1");
    own.created_at_ms = 200;
    assert!(db.insert_model(&own).await.unwrap().is_none());
    let s = || Some("s".to_string());
    let a = || Some("a".to_string());

    assert_eq!(
        seen(db, "t2").await,
        (vec!["s".into()], None),
        "no default yet"
    );
    assert!(
        db.activate_model(SHARED_TENANT, "s")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(seen(db, "t1").await, (vec!["s".into(), "a".into()], s()));
    assert_eq!(seen(db, "t2").await, (vec!["s".into()], s()));
    assert!(db.model("t2", "a").await.unwrap().is_none(), "t1's model");
    assert!(db.activate_model("t2", "a").await.unwrap().is_none());
    assert!(db.deactivate_model("t2", "a").await.unwrap().is_none());
    assert!(
        db.activate_model(SHARED_TENANT, "a")
            .await
            .unwrap()
            .is_none()
    );

    let on = db
        .activate_model("t1", "a")
        .await
        .unwrap()
        .expect("t1 sees a");
    assert!(on.active && on.activated_at_ms.is_some());
    assert_eq!(seen(db, "t1").await.1, a());
    assert_eq!(seen(db, "t2").await.1, s(), "t1's choice is t1's only");
    let off = db
        .deactivate_model("t1", "s")
        .await
        .unwrap()
        .expect("shared");
    assert!(!off.active);
    assert_eq!(seen(db, "t1").await.1, a(), "s was not t1's active model");

    let off = db
        .deactivate_model("t2", "s")
        .await
        .unwrap()
        .expect("shared");
    assert!(!off.active && off.activated_at_ms.is_none());
    assert_eq!(seen(db, "t2").await.1, None, "t2 deactivated the default");
    assert_eq!(
        seen(db, "t3").await.1,
        s(),
        "other tenants keep the default"
    );
    assert_eq!(seen(db, "t1").await.1, a());
    assert!(db.deactivate_model("t2", "s").await.unwrap().is_some());
    assert_eq!(seen(db, "t2").await.1, None);
    db.activate_model("t2", "s").await.unwrap().expect("shared");
    assert_eq!(seen(db, "t2").await.1, s());

    // A tenant may reuse a shared model's name and version for its own upload.
    let mut same_name = model_row("b", "t2", "1");
    same_name.created_at_ms = 300;
    assert!(db.insert_model(&same_name).await.unwrap().is_none());
    let dup = db.insert_model(&model_row("c", SHARED_TENANT, "1")).await;
    assert_eq!(dup.unwrap().map(|r| r.id).as_deref(), Some("s"));
}

/// Many activations of one tenant at once (two models, alternating) all succeed; the
/// tenant ends with exactly one active model. On PostgreSQL this once failed on the
/// one-active-row index when two transactions deactivated and activated concurrently.
pub async fn concurrent_activations_serialise(db: &Db) {
    for (id, version) in [("a", "1"), ("b", "2")] {
        assert!(
            db.insert_model(&model_row(id, T, version))
                .await
                .unwrap()
                .is_none()
        );
    }
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let db = db.clone();
            let id = if i % 2 == 0 { "a" } else { "b" };
            tokio::spawn(async move { db.activate_model(T, id).await })
        })
        .collect();
    for task in tasks {
        let row = task.await.unwrap().expect("no activation fails");
        assert!(row.is_some(), "the model exists");
    }
    let (ids, active) = seen(db, T).await;
    assert_eq!(ids, ["a", "b"]);
    assert!(active.is_some(), "one of them is active");
}

/// Another tenant's ids read like missing ones on every tenant-scoped statement; a
/// cancel from another tenant changes nothing; idempotency keys are per tenant.
pub async fn tenants_see_only_their_own_rows(db: &Db) {
    db_with_jobs(db, 1).await;
    let other = "t2";
    assert!(db.series(other, "s1").await.unwrap().is_none());
    assert!(db.series_by_uid(other, "1.2.3").await.unwrap().is_none());
    assert_eq!(
        db.series_by_uid(T, "1.2.3").await.unwrap().unwrap().id,
        "s1"
    );
    assert!(db.segmentation(other, "g1").await.unwrap().is_none());
    assert!(db.job(other, "j0").await.unwrap().is_none());
    assert!(db.cancel_job(other, "j0").await.unwrap().is_none());
    assert_eq!(db.job(T, "j0").await.unwrap().unwrap().status, "queued");

    let batch = BatchRow {
        id: "b".into(),
        tenant_id: T.into(),
        idempotency_key: Some("same".into()),
        request: "[]".into(),
        job_count: 1,
        created_at_ms: 5,
    };
    db.insert_batch(&batch, &[new_job("bj", Some("same"))])
        .await
        .unwrap();
    assert!(db.batch(other, "b").await.unwrap().is_none());
    assert!(db.batch_by_key(other, "same").await.unwrap().is_none());
    assert!(db.batch_jobs(other, "b").await.unwrap().is_empty());
    assert!(db.job_by_key(other, "same").await.unwrap().is_none());
    assert_eq!(db.job_by_key(T, "same").await.unwrap().unwrap().id, "bj");

    // Deletion and tombstones are per tenant too: 404, never another tenant's 410.
    use radscore::store::{Deletion, DeletionReason, UploadKind};
    let reason = DeletionReason::Deleted;
    let series = UploadKind::Series;
    assert_eq!(
        db.delete_upload(series, Some(other), "s1", reason)
            .await
            .unwrap(),
        Deletion::NotFound
    );
    assert_eq!(
        db.delete_upload(UploadKind::Segmentation, Some(other), "g1", reason)
            .await
            .unwrap(),
        Deletion::NotFound
    );
    db.cancel_job(T, "j0").await.unwrap();
    db.cancel_job(T, "bj").await.unwrap();
    let deleted = db
        .delete_upload(series, Some(T), "s1", reason)
        .await
        .unwrap();
    assert!(matches!(deleted, Deletion::Deleted(_)), "{deleted:?}");
    assert!(
        db.tombstone(series, Some(other), "s1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.tombstone(series, Some(T), "s1").await.unwrap().is_some());
    assert_eq!(
        db.delete_upload(series, Some(other), "s1", reason)
            .await
            .unwrap(),
        Deletion::NotFound
    );

    // A job never uses another tenant's uploads, deleted or live.
    add_upload(db, "s2", "g2").await;
    let mut theirs = new_job("o1", Some("same"));
    theirs.tenant_id = other.into();
    for (s, g) in [("s1", "g1"), ("s2", "g2")] {
        theirs.series_id = s.into();
        theirs.segmentation_id = g.into();
        let refused = db.insert_job(&theirs).await.unwrap();
        assert!(
            matches!(&refused, Enqueue::UploadGone { id, .. } if id == s),
            "{refused:?}"
        );
    }
    // The other tenant may use the same keys for its own objects.
    let series = SeriesRow {
        tenant_id: other.into(),
        ..db.series(T, "s2").await.unwrap().unwrap()
    };
    let series = SeriesRow {
        id: "os".into(),
        ..series
    };
    db.insert_series(&series).await.unwrap();
    let seg = SegmentationRow {
        id: "og".into(),
        tenant_id: other.into(),
        series_id: "os".into(),
        ..db.segmentation(T, "g2").await.unwrap().unwrap()
    };
    db.insert_segmentation(&seg).await.unwrap();
    theirs.series_id = "os".into();
    theirs.segmentation_id = "og".into();
    assert!(
        db.insert_job(&theirs).await.unwrap().is_inserted(),
        "inserted"
    );
    assert_eq!(
        db.job_by_key(other, "same").await.unwrap().unwrap().id,
        "o1"
    );
    let their_batch = BatchRow {
        id: "ob".into(),
        tenant_id: other.into(),
        ..batch
    };
    assert!(
        db.insert_batch(&their_batch, &[])
            .await
            .unwrap()
            .is_inserted()
    );
    assert_eq!(
        db.batch(other, "ob").await.unwrap().unwrap().tenant_id,
        other
    );
    assert_eq!(db.job(other, "o1").await.unwrap().unwrap().tenant_id, other);
}

/// Keys are found by id with their hash, listed, and revoked once.
pub async fn api_keys_round_trip_and_revoke(db: &Db) {
    let (row, key) = radscore::api::auth::create_key(db, "trial-1", Some("site A"), true)
        .await
        .unwrap();
    assert!(key.starts_with("rsk_") && key.contains(&row.id));
    let stored = db.api_key(&row.id).await.unwrap().expect("stored");
    assert_eq!((stored.tenant_id.as_str(), stored.admin), ("trial-1", true));
    assert_ne!(stored.key_hash, key, "the key itself is not stored");
    assert_eq!(stored.key_hash.len(), 64, "hex SHA-256");
    assert!(stored.revoked_at_ms.is_none());
    assert_eq!(db.api_keys().await.unwrap().len(), 1);
    assert!(db.revoke_api_key(&row.id, 99).await.unwrap());
    assert!(!db.revoke_api_key(&row.id, 100).await.unwrap(), "once");
    assert!(!db.revoke_api_key("nope", 100).await.unwrap());
    let revoked = db.api_key(&row.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(99));
    assert!(db.api_key("nope").await.unwrap().is_none());
    assert!(
        radscore::api::auth::create_key(db, "bad tenant", None, false)
            .await
            .is_err()
    );
}

/// Audit events come back in writing order, filtered by tenant and time.
pub async fn audit_events_are_read_back_in_order(db: &Db) {
    let event = |tenant: &str, at_ms: i64, action: &str| radscore::store::AuditEvent {
        seq: 0,
        at_ms,
        tenant_id: tenant.into(),
        key_id: Some("k".into()),
        action: action.into(),
        object_type: "job".into(),
        object_id: Some("j".into()),
        request_id: None,
        detail: "{\"lesions\":2}".into(),
    };
    db.append_audit(&event("a", 10, "job.create"))
        .await
        .unwrap();
    db.append_audit(&event("b", 20, "job.create"))
        .await
        .unwrap();
    db.append_audit(&event("a", 30, "result.read"))
        .await
        .unwrap();
    let all = db.audit_events(None, None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let a: Vec<String> = db
        .audit_events(Some("a"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(a, ["job.create", "result.read"]);
    let late = db.audit_events(Some("a"), Some(20)).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].detail, "{\"lesions\":2}");
    assert!(db.audit_events(Some("c"), None).await.unwrap().is_empty());
}

/// A delivery starts pending with no attempt, counts every attempt with its outcome and
/// error, and a second insert for the same job changes nothing.
pub async fn a_delivery_counts_attempts_until_its_outcome(db: &Db) {
    db_with_jobs(db, 1).await;
    assert!(db.delivery("j0").await.unwrap().is_none());
    db.insert_delivery("j0", "http://127.0.0.1:1/dicom-web")
        .await
        .unwrap();
    let d = db.delivery("j0").await.unwrap().expect("delivery stored");
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 0));
    assert_eq!(d.destination, "http://127.0.0.1:1/dicom-web");
    assert!(d.last_error.is_none());

    let d = db
        .record_delivery_attempt("j0", "pending", Some("connection refused"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 1));
    assert_eq!(d.last_error.as_deref(), Some("connection refused"));
    db.insert_delivery("j0", "http://elsewhere.invalid/")
        .await
        .unwrap();
    let d = db
        .record_delivery_attempt("j0", "delivered", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("delivered", 2));
    assert!(d.last_error.is_none());
    assert_eq!(d.destination, "http://127.0.0.1:1/dicom-web");
    assert!(
        db.record_delivery_attempt("nope", "failed", Some("x"))
            .await
            .unwrap()
            .is_none()
    );
}

/// A pending delivery of a succeeded job is claimed by one owner at a time; once its lease
/// has ended it is orphaned and can be claimed again; a finished delivery never is.
pub async fn an_interrupted_delivery_is_claimed_once_and_resumed_after_its_lease(db: &Db) {
    db_with_jobs(db, 1).await;
    db.insert_delivery("j0", "http://127.0.0.1:1/dicom-web")
        .await
        .unwrap();
    let now = now_ms();
    // Not succeeded yet: nothing to resume.
    assert!(db.orphaned_deliveries(now, 10).await.unwrap().is_empty());
    let job = db
        .claim_job("w", Duration::from_secs(60), 3)
        .await
        .unwrap()
        .unwrap();
    assert!(db.finish_job(&job.id, "w", Ok("{}")).await.unwrap());

    let orphans = db.orphaned_deliveries(now, 10).await.unwrap();
    assert_eq!(orphans, [("j0".to_string(), T.to_string())]);
    assert!(db.claim_delivery("j0", now, now + 1000).await.unwrap());
    assert!(!db.claim_delivery("j0", now, now + 1000).await.unwrap());
    assert!(db.orphaned_deliveries(now, 10).await.unwrap().is_empty());
    db.renew_delivery("j0", now + 5000).await.unwrap();
    assert!(
        db.orphaned_deliveries(now + 2000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.orphaned_deliveries(now + 6000, 10).await.unwrap().len(),
        1
    );
    assert!(
        db.claim_delivery("j0", now + 6000, now + 7000)
            .await
            .unwrap()
    );

    db.record_delivery_attempt("j0", "failed", Some("x"))
        .await
        .unwrap();
    assert!(
        db.orphaned_deliveries(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!db.claim_delivery("j0", i64::MAX, i64::MAX).await.unwrap());
}

/// Tenant settings are upserted member by member; a STOW-RS trigger is due only after its
/// series stopped changing, and ends once; jobs and segmentations list per tenant.
pub async fn tenant_settings_and_stow_triggers_round_trip(db: &Db) {
    db_with_jobs(db, 2).await;
    assert!(db.tenant_settings(T).await.unwrap().is_none());
    db.set_tenant_push(T, Some("http://pacs/dicom-web"), Some("Bearer k"))
        .await
        .unwrap();
    db.set_tenant_auto_trigger(T, Some("{\"default_location\":\"pleura\"}"))
        .await
        .unwrap();
    let s = db.tenant_settings(T).await.unwrap().unwrap();
    assert_eq!(s.push_url.as_deref(), Some("http://pacs/dicom-web"));
    assert_eq!(s.push_authorization.as_deref(), Some("Bearer k"));
    assert!(s.auto_trigger.is_some());
    db.set_tenant_push(T, None, None).await.unwrap();
    let s = db.tenant_settings(T).await.unwrap().unwrap();
    assert!(s.push_url.is_none() && s.push_authorization.is_none());
    assert!(s.auto_trigger.is_some(), "clearing the push keeps the rule");
    assert!(db.tenant_settings("other").await.unwrap().is_none());

    let trigger = StowTriggerRow {
        segmentation_id: "g1".into(),
        tenant_id: T.into(),
        series_uid: "1.2.3".into(),
        due_at_ms: 100,
        state: "waiting".into(),
        job_id: None,
        error: None,
        created_at_ms: 1,
    };
    db.insert_stow_trigger(&trigger).await.unwrap();
    assert!(db.due_stow_triggers(50, 10).await.unwrap().is_empty());
    db.postpone_stow_triggers(T, "1.2.3", 200).await.unwrap();
    db.postpone_stow_triggers("other", "1.2.3", 900)
        .await
        .unwrap();
    db.postpone_stow_triggers(T, "1.2.3", 150).await.unwrap();
    assert!(db.due_stow_triggers(199, 10).await.unwrap().is_empty());
    let due = db.due_stow_triggers(200, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].due_at_ms, 200);
    db.finish_stow_trigger("g1", Some("j0"), None)
        .await
        .unwrap();
    db.finish_stow_trigger("g1", None, Some("late"))
        .await
        .unwrap();
    assert!(db.due_stow_triggers(i64::MAX, 10).await.unwrap().is_empty());
    let t = db.stow_trigger("g1").await.unwrap().unwrap();
    assert_eq!(
        (t.state.as_str(), t.job_id.as_deref()),
        ("started", Some("j0"))
    );
    assert!(t.error.is_none());

    let seg = db.latest_segmentation(T, "s1").await.unwrap().unwrap();
    assert_eq!(seg.id, "g1");
    assert!(
        db.latest_segmentation("other", "s1")
            .await
            .unwrap()
            .is_none()
    );
    let all: Vec<String> = db
        .jobs(T, None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(all.len(), 2);
    assert_eq!(db.jobs(T, Some("queued"), None, 1).await.unwrap().len(), 1);
    assert!(
        db.jobs(T, Some("succeeded"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(db.jobs("other", None, None, 10).await.unwrap().is_empty());
}

/// Rounds of [`a_job_creation_and_a_deletion_of_its_upload_never_both_succeed`].
const RACE_ROUNDS: usize = 64;

/// Rounds of that test run at the same time.
const RACE_PARALLEL: usize = 8;

/// A live series `s` with its segmentation `g` in tenant [`T`].
async fn add_upload(db: &Db, s: &str, g: &str) {
    let series = SeriesRow {
        id: s.into(),
        tenant_id: T.into(),
        series_uid: format!("1.2.9.{}", s.len()),
        frame_of_reference_uid: None,
        instance_count: 1,
        geometry: "{}".into(),
        warnings: "[]".into(),
        blob_prefix: format!("series/{s}"),
        created_at_ms: 1,
    };
    db.insert_series(&series).await.unwrap();
    let seg = SegmentationRow {
        id: g.into(),
        tenant_id: T.into(),
        series_id: s.into(),
        format: "nifti".into(),
        file_name: None,
        blob_key: format!("segmentations/{g}"),
        lesions: "[]".into(),
        created_at_ms: 2,
    };
    db.insert_segmentation(&seg).await.unwrap();
}

/// An enqueue without an idempotency key, which never finds an existing row.
fn without_existing<T: std::fmt::Debug>(
    e: radscore::store::Enqueue<T>,
) -> radscore::store::Enqueue<()> {
    use radscore::store::Enqueue;
    match e {
        Enqueue::Inserted => Enqueue::Inserted,
        Enqueue::UploadGone { job, kind, id } => Enqueue::UploadGone { job, kind, id },
        Enqueue::Existing(row) => panic!("no idempotency key, yet an existing row: {row:?}"),
    }
}

/// One round: enqueue a job (round 0, 1 mod 4: alone; 2, 3: in a batch) on fresh uploads
/// while deleting its series (even rounds) or segmentation (odd rounds) at the same time.
/// Exactly one of them succeeds; returns whether the job did.
async fn race_round(db: Db, round: usize) -> bool {
    use radscore::store::{Deletion, DeletionReason, Enqueue, UploadKind};
    let (s, g, j) = (
        format!("rs{round}"),
        format!("rg{round}"),
        format!("rj{round}"),
    );
    add_upload(&db, &s, &g).await;
    let job = NewJob {
        id: j.clone(),
        tenant_id: T.into(),
        series_id: s.clone(),
        segmentation_id: g.clone(),
        request: "{}".into(),
        idempotency_key: None,
        kind: radscore::store::JobKind::Extraction,
    };
    let (kind, target) = if round.is_multiple_of(2) {
        (UploadKind::Series, s.clone())
    } else {
        (UploadKind::Segmentation, g.clone())
    };
    let in_batch = round % 4 >= 2;
    let enqueue = {
        let db = db.clone();
        tokio::spawn(async move {
            if in_batch {
                let batch = BatchRow {
                    id: format!("rb{round}"),
                    tenant_id: T.into(),
                    idempotency_key: None,
                    request: "[]".into(),
                    job_count: 1,
                    created_at_ms: 3,
                };
                without_existing(db.insert_batch(&batch, &[job]).await.unwrap())
            } else {
                without_existing(db.insert_job(&job).await.unwrap())
            }
        })
    };
    let delete = {
        let db = db.clone();
        let target = target.clone();
        tokio::spawn(async move {
            db.delete_upload(kind, Some(T), &target, DeletionReason::Deleted)
                .await
                .unwrap()
        })
    };
    let (enqueued, deleted) = (enqueue.await.unwrap(), delete.await.unwrap());
    match (&enqueued, &deleted) {
        (Enqueue::Inserted, Deletion::InUse(jobs)) => {
            assert_eq!(
                jobs,
                std::slice::from_ref(&j),
                "round {round}: the 409 names the job"
            );
            let row = db.job(T, &j).await.unwrap().expect("the job is stored");
            assert_eq!(row.status, "queued");
            assert!(db.series(T, &s).await.unwrap().is_some(), "series live");
            assert!(db.segmentation(T, &g).await.unwrap().is_some(), "seg live");
            true
        }
        (
            Enqueue::UploadGone {
                job,
                kind: gone,
                id,
            },
            Deletion::Deleted(_),
        ) => {
            assert_eq!((*job, *gone, id), (0, kind, &target), "round {round}");
            assert!(
                db.job(T, &j).await.unwrap().is_none(),
                "round {round}: no job"
            );
            assert!(
                db.tombstone(kind, Some(T), &target)
                    .await
                    .unwrap()
                    .is_some()
            );
            false
        }
        _ => panic!(
            "round {round} ({} deletion, batch: {in_batch}): exactly one of the job \
             ({enqueued:?}) and the deletion ({deleted:?}) must succeed",
            kind.as_str()
        ),
    }
}

/// A job creation (single or in a batch) and a deletion of the series or segmentation it
/// uses, run at the same time on a database with several connections, never both succeed:
/// either the job is stored and the deletion is refused naming it, or the upload is a
/// tombstone and the job is refused naming the upload. Many rounds run concurrently.
pub async fn a_job_creation_and_a_deletion_of_its_upload_never_both_succeed(db: &Db) {
    let mut job_won = 0;
    for wave in 0..RACE_ROUNDS / RACE_PARALLEL {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..RACE_PARALLEL {
            set.spawn(race_round(db.clone(), wave * RACE_PARALLEL + i));
        }
        while let Some(won) = set.join_next().await {
            job_won += usize::from(won.expect("round panicked"));
        }
    }
    // Which side wins depends on timing; both outcomes are checked when they occur.
    eprintln!("{job_won} of {RACE_ROUNDS} rounds: the job won; the deletion won the others");
}

/// A STOW-RS series resource: one row per (tenant, SeriesInstanceUID, version) however
/// many requests open it; an instance is staged once (the first bytes stay); a smaller
/// union never overwrites a larger one; a series row is updated only while live; waiting
/// segmentations are taken once.
pub async fn stow_series_stage_instances_once_and_keep_the_largest_union(db: &Db) {
    let row = StowSeriesRow {
        id: "s1".into(),
        tenant_id: T.into(),
        series_uid: "1.2.3".into(),
        version: 1,
        instance_count: 0,
        assembly_error: None,
        last_instance_at_ms: 10,
        created_at_ms: 10,
    };
    assert_eq!(db.open_stow_series(&row).await.unwrap().id, "s1");
    let racing = StowSeriesRow {
        id: "s-late".into(),
        ..row.clone()
    };
    assert_eq!(db.open_stow_series(&racing).await.unwrap().id, "s1");
    let v2 = StowSeriesRow {
        id: "s2".into(),
        version: 2,
        ..row.clone()
    };
    db.open_stow_series(&v2).await.unwrap();
    assert_eq!(
        db.latest_stow_series(T, "1.2.3").await.unwrap().unwrap().id,
        "s2"
    );
    assert!(
        db.latest_stow_series("other", "1.2.3")
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.stow_series("other", "s1").await.unwrap().is_none());

    let instance = StowInstanceRow {
        series_id: "s1".into(),
        sop_instance_uid: "1.2.3.1".into(),
        sha256: "aa".into(),
        blob_key: "series/s1/1.2.3.1.dcm".into(),
        received_at_ms: 11,
    };
    assert!(db.stage_stow_instance(&instance).await.unwrap().is_none());
    let other_bytes = StowInstanceRow {
        sha256: "bb".into(),
        ..instance.clone()
    };
    let kept = db.stage_stow_instance(&other_bytes).await.unwrap().unwrap();
    assert_eq!(kept.sha256, "aa");
    assert_eq!(db.stow_instances("s1").await.unwrap().len(), 1);
    assert!(db.stow_instances("s2").await.unwrap().is_empty());

    assert!(
        db.record_stow_assembly("s1", 2, Some("gap"), Some(20))
            .await
            .unwrap()
    );
    assert!(
        !db.record_stow_assembly("s1", 1, None, Some(15))
            .await
            .unwrap()
    );
    let s = db.stow_series(T, "s1").await.unwrap().unwrap();
    assert_eq!(
        (
            s.instance_count,
            s.assembly_error.as_deref(),
            s.last_instance_at_ms
        ),
        (2, Some("gap"), 20)
    );
    assert!(db.record_stow_assembly("s1", 3, None, None).await.unwrap());
    let s = db.stow_series(T, "s1").await.unwrap().unwrap();
    assert_eq!((s.instance_count, s.assembly_error), (3, None));

    add_series_and_segmentation(db).await;
    let series = db.series(T, "s1").await.unwrap().unwrap();
    let bigger = SeriesRow {
        instance_count: 4,
        geometry: "{\"shape\":[4,2,2]}".into(),
        ..series.clone()
    };
    assert!(db.update_series_assembly(&bigger).await.unwrap());
    assert!(
        !db.update_series_assembly(&series).await.unwrap(),
        "3 < 4 instances"
    );
    assert_eq!(db.series(T, "s1").await.unwrap().unwrap().instance_count, 4);
    assert_eq!(db.series_job_count("s1").await.unwrap(), 0);
    db.insert_job(&new_job("j1", None)).await.unwrap();
    assert_eq!(db.series_job_count("s1").await.unwrap(), 1);

    let pending = PendingSegmentationRow {
        id: "p1".into(),
        tenant_id: T.into(),
        series_id: "s2".into(),
        blob_key: "segmentations/p1".into(),
        file_name: None,
        reason: "frame outside".into(),
        created_at_ms: 12,
    };
    db.insert_pending_segmentation(&pending).await.unwrap();
    assert_eq!(db.pending_segmentations("s2").await.unwrap().len(), 1);
    assert!(
        db.pending_segmentation("other", "p1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.take_pending_segmentation("p1").await.unwrap());
    assert!(!db.take_pending_segmentation("p1").await.unwrap());
    assert!(db.pending_segmentation(T, "p1").await.unwrap().is_none());
}
