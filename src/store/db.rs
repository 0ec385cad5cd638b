//! The relational store: series, segmentations and the job table that is also the queue,
//! behind the [`Database`] trait with one implementation per backend.
//!
//! [`Db::connect`] picks the backend from the URL scheme: `sqlite:` (the embedded default,
//! [`super::sqlite`]) or `postgres:`/`postgresql:` ([`super::postgres`], for API replicas
//! and workers on several machines). Both run the same statements (see [`super::sql`])
//! except where the backends differ: connection setup, migrations and the claim.
//!
//! # Queue semantics
//! A job row moves `queued → running → succeeded | failed | cancelled`. A worker claims
//! the oldest queued row whose `run_after_ms` has passed, in one atomic statement, and
//! holds a lease (`lease_owner`, `lease_expires_at_ms`) that it renews while it works.
//! A failed attempt (its lease expired because the worker died, or a transient error) is
//! queued again with a backoff in `run_after_ms` ([`Database::retry_or_fail`]), up to
//! `max_attempts`; after that it is failed with the reason. Completion is conditional on
//! still owning the lease, so a worker that lost its lease cannot overwrite a newer
//! attempt's result.
//!
//! LIMITATION: lease times come from each process's clock; nodes sharing a PostgreSQL
//! database need synchronised clocks (NTP), as a skew larger than the lease steals jobs.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::FromRow;

use super::{ModelRow, StoreError};

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names by its scheme.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl(scheme.to_string())),
        }
    }
}

/// The database handle used by the API and the workers. Cheap to clone; every
/// [`Database`] method is called through it.
#[derive(Clone)]
pub struct Db(Arc<dyn Database>);

impl Db {
    /// Open the database at `url` (SQLite or PostgreSQL by scheme) and apply migrations.
    ///
    /// SQLite URLs look like `sqlite://var/radscore.db` or `sqlite::memory:`; PostgreSQL
    /// URLs like `postgres://user@host:5432/db` (add `?options[search_path]=schema` to use
    /// a schema other than `public`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let db: Arc<dyn Database> = match Backend::from_url(url)? {
            Backend::Sqlite => Arc::new(super::sqlite::SqliteStore::connect(url).await?),
            Backend::Postgres => Arc::new(super::postgres::PgStore::connect(url).await?),
        };
        db.migrate().await?;
        Ok(Db(db))
    }
}

impl Deref for Db {
    type Target = dyn Database;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Db").field(&self.0.backend()).finish()
    }
}

/// Every statement radscore runs, implemented once per backend.
///
/// A new table or query is added here and in both implementations (most statements are
/// shared through [`super::sql::impl_database`]), and covered by the store contract
/// tests that run against SQLite and PostgreSQL.
#[async_trait::async_trait]
pub trait Database: Send + Sync {
    /// The engine behind this store.
    fn backend(&self) -> Backend;

    /// Apply the embedded migrations of this backend (idempotent).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Whether the database answers a trivial query (readiness).
    async fn ping(&self) -> bool;

    /// Insert a series row.
    async fn insert_series(&self, row: &SeriesRow) -> Result<(), StoreError>;

    /// A series of `tenant` by id (`None` for another tenant's series, as for a missing one).
    async fn series(&self, tenant: &str, id: &str) -> Result<Option<SeriesRow>, StoreError>;

    /// The most recently stored series of `tenant` with this SeriesInstanceUID (STOW-RS
    /// binds a pushed segmentation to the series it references by UID).
    async fn series_by_uid(
        &self,
        tenant: &str,
        series_uid: &str,
    ) -> Result<Option<SeriesRow>, StoreError>;

    /// Insert a segmentation row.
    async fn insert_segmentation(&self, row: &SegmentationRow) -> Result<(), StoreError>;

    /// The live segmentations of `tenant` bound to series `series_id`, oldest first.
    async fn segmentations_of_series(
        &self,
        tenant: &str,
        series_id: &str,
    ) -> Result<Vec<SegmentationRow>, StoreError>;

    /// A segmentation of `tenant` by id.
    async fn segmentation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<SegmentationRow>, StoreError>;

    /// Enqueue a job. With an idempotency key that the job's tenant already used, nothing
    /// is inserted and the existing job is returned instead ([`Enqueue::Existing`]).
    ///
    /// The insert checks in the same transaction that the job's series and segmentation
    /// are live rows of the job's tenant (and that the segmentation belongs to the
    /// series), else inserts nothing ([`Enqueue::UploadGone`]): a concurrent
    /// [`Database::delete_upload`] either sees this job and refuses ([`Deletion::InUse`]),
    /// or wrote its tombstone first and this insert is refused. PostgreSQL: the insert
    /// holds `FOR SHARE` row locks on the series, then the segmentation (the order a
    /// series deletion locks them), which the deletion's `UPDATE` waits for; SQLite: the
    /// insert is the transaction's first statement, so it holds the single write lock
    /// before it reads.
    async fn insert_job(&self, job: &NewJob) -> Result<Enqueue<JobRow>, StoreError>;

    /// Cancel a queued or running job; returns whether this call cancelled it and the job
    /// as it is afterwards (`None` if it does not exist). A running job's worker loses its
    /// lease and its result is dropped.
    async fn cancel_job(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(bool, JobRow)>, StoreError>;

    /// A job of `tenant` by id.
    async fn job(&self, tenant: &str, id: &str) -> Result<Option<JobRow>, StoreError>;

    /// The job `tenant` created with an idempotency key.
    async fn job_by_key(&self, tenant: &str, key: &str) -> Result<Option<JobRow>, StoreError>;

    /// Claim the oldest claimable job for `worker`: queued, due (`run_after_ms` passed)
    /// and with fewer than `max_attempts` attempts. Atomic, also across processes; `None`
    /// when nothing is claimable.
    async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Option<JobRow>, StoreError>;

    /// Running jobs whose lease expired before `now_ms` (their worker is gone), oldest
    /// first, at most `limit`.
    async fn expired_leases(&self, now_ms: i64, limit: i64) -> Result<Vec<JobRow>, StoreError>;

    /// End a failed attempt of the job `owner` holds: queue it again, claimable from
    /// `retry_at_ms`, or (`None`) fail it for good; `reason` is kept in `error`. With
    /// `expired_before_ms`, only when the lease expired before that time (a sweeper must
    /// not take a job whose worker just renewed it). `false` when nothing matched.
    async fn retry_or_fail(
        &self,
        job_id: &str,
        owner: &str,
        retry_at_ms: Option<i64>,
        reason: &str,
        expired_before_ms: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Renew the lease and record progress; `false` if the lease was lost.
    async fn heartbeat(
        &self,
        job_id: &str,
        worker: &str,
        lease: Duration,
        progress: f64,
    ) -> Result<bool, StoreError>;

    /// Finish a job this worker holds: `succeeded` with a result or `failed` with a
    /// reason. Returns `false` if the lease was lost (the result is discarded).
    async fn finish_job(
        &self,
        job_id: &str,
        worker: &str,
        outcome: Result<&str, &str>,
    ) -> Result<bool, StoreError>;

    /// Put a job this worker holds back in the queue (graceful shutdown).
    async fn release_job(&self, job_id: &str, worker: &str) -> Result<(), StoreError>;

    /// Store a batch and its jobs in one transaction (all or none), under the batch's
    /// tenant. With an idempotency key the tenant already used, nothing is inserted and the
    /// existing batch is returned. Each job's uploads are checked and locked as by
    /// [`Database::insert_job`]; when one is no longer live, nothing is stored
    /// ([`Enqueue::UploadGone`] names the first such job).
    async fn insert_batch(
        &self,
        batch: &BatchRow,
        jobs: &[NewJob],
    ) -> Result<Enqueue<BatchRow>, StoreError>;

    /// A batch of `tenant` by id.
    async fn batch(&self, tenant: &str, id: &str) -> Result<Option<BatchRow>, StoreError>;

    /// The batch `tenant` created with an idempotency key.
    async fn batch_by_key(&self, tenant: &str, key: &str) -> Result<Option<BatchRow>, StoreError>;

    /// The jobs of a batch of `tenant`, in submission order.
    async fn batch_jobs(&self, tenant: &str, batch_id: &str) -> Result<Vec<JobRow>, StoreError>;

    /// Delete a series (with its segmentations) or a segmentation: in one transaction,
    /// refuse when a queued or running job uses it ([`Deletion::InUse`]), else turn the
    /// rows into tombstones (derived data and UIDs cleared, `reason` recorded) and return
    /// the blobs to remove. Finished jobs and their results are kept. `tenant` restricts
    /// the lookup to one tenant's objects (`None`: any tenant, for retention). A series
    /// takes the STOW-RS segmentations waiting for it along (tombstoned under their ids),
    /// and a STOW-RS series resource whose instances never assembled (no series row yet)
    /// is deleted too: its tombstone row is written then, with its staged instances as the
    /// blobs to remove.
    async fn delete_upload(
        &self,
        kind: UploadKind,
        tenant: Option<&str>,
        id: &str,
        reason: DeletionReason,
    ) -> Result<Deletion, StoreError>;

    /// When and why a series or segmentation was deleted; `None` for a live or unknown id.
    async fn tombstone(
        &self,
        kind: UploadKind,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<Option<Tombstone>, StoreError>;

    /// Record that the blobs of a deleted series or segmentation are gone.
    async fn mark_blobs_removed(&self, kind: UploadKind, id: &str) -> Result<(), StoreError>;

    /// Deleted uploads whose blobs were not removed yet (a removal that failed half-way),
    /// at most `limit`.
    async fn pending_blob_removals(&self, limit: i64) -> Result<Vec<BlobRemoval>, StoreError>;

    /// Live uploads created before `created_before_ms` that no queued or running job uses,
    /// oldest first, at most `limit` (series first, then segmentations): what a retention
    /// purge removes. STOW-RS series resources whose instances never assembled are listed
    /// as series when their last instance came before `created_before_ms`.
    async fn expired_uploads(
        &self,
        created_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<ExpiredUpload>, StoreError>;

    /// Number of jobs waiting to run (queued), for backpressure.
    async fn queued_jobs(&self) -> Result<i64, StoreError>;

    /// Number of jobs per status, for metrics.
    async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Register a model (`row.active` and `row.activated_at_ms` are ignored: activation
    /// is per tenant). When the owner already has a model with this name and version,
    /// nothing is inserted and that one is returned.
    async fn insert_model(&self, row: &ModelRow) -> Result<Option<ModelRow>, StoreError>;

    /// The models the tenant sees (its own and the shared ones), oldest first, with
    /// `active` as the tenant's.
    async fn models(&self, tenant: &str) -> Result<Vec<ModelRow>, StoreError>;

    /// One model the tenant sees, by id; `None` for a missing or another tenant's id.
    async fn model(&self, tenant: &str, id: &str) -> Result<Option<ModelRow>, StoreError>;

    /// The tenant's active model: its own choice, else the shared default; `None` when
    /// the tenant deactivated it (or there is no shared default).
    async fn active_model(&self, tenant: &str) -> Result<Option<ModelRow>, StoreError>;

    /// Make `id` the tenant's active model (its previous one is no longer active), in one
    /// statement so concurrent activations serialise; `None` if the tenant cannot see it.
    /// Called with [`crate::store::SHARED_TENANT`] it sets the shared default.
    async fn activate_model(&self, tenant: &str, id: &str) -> Result<Option<ModelRow>, StoreError>;

    /// When `id` is the tenant's active model, the tenant has none active afterwards
    /// (other tenants are not affected); `None` if the tenant cannot see `id`.
    async fn deactivate_model(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ModelRow>, StoreError>;

    /// Record that a job's report is to be pushed to `destination`: status `pending`, no
    /// attempt yet. A second call for the same job changes nothing.
    async fn insert_delivery(&self, job_id: &str, destination: &str) -> Result<(), StoreError>;

    /// Count one delivery attempt of a job's report and set its outcome: `status`
    /// (`pending` while retries remain, `delivered` or `failed`) and the attempt's error
    /// (`None` clears it). Returns the delivery as it is afterwards.
    async fn record_delivery_attempt(
        &self,
        job_id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<Option<DeliveryRow>, StoreError>;

    /// The delivery of a job's report, if one was recorded.
    async fn delivery(&self, job_id: &str) -> Result<Option<DeliveryRow>, StoreError>;

    /// Take the delivery of `job_id` for this process until `lease_until_ms`: only while it
    /// is `pending` and nobody holds it (no lease, or the lease ended before `now_ms`).
    /// Atomic, also across processes; `false` when another process has it or it is over.
    async fn claim_delivery(
        &self,
        job_id: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Extend the lease of a delivery this process holds (before each attempt).
    async fn renew_delivery(&self, job_id: &str, lease_until_ms: i64) -> Result<(), StoreError>;

    /// Pending deliveries of succeeded jobs that nobody holds at `now_ms` (cut off by a
    /// process exit, or never started), oldest first, at most `limit`: `(job_id, tenant)`.
    async fn orphaned_deliveries(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// The tenant's DICOMweb settings, if an admin set any.
    async fn tenant_settings(&self, tenant: &str) -> Result<Option<TenantSettingsRow>, StoreError>;

    /// Set (or, with `None`, clear) the tenant's push destination and its Authorization.
    async fn set_tenant_push(
        &self,
        tenant: &str,
        url: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Set (or, with `None`, clear) the tenant's auto-trigger rule (JSON).
    async fn set_tenant_auto_trigger(
        &self,
        tenant: &str,
        rule: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Record a segmentation received by STOW-RS that is to start a job once its series
    /// is stable (at `due_at_ms`).
    async fn insert_stow_trigger(&self, row: &StowTriggerRow) -> Result<(), StoreError>;

    /// A new instance of `series_uid` arrived: waiting triggers of that series are due at
    /// `due_at_ms` at the earliest.
    async fn postpone_stow_triggers(
        &self,
        tenant: &str,
        series_uid: &str,
        due_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Waiting triggers due before `now_ms`, oldest first, at most `limit`.
    async fn due_stow_triggers(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<StowTriggerRow>, StoreError>;

    /// End a waiting trigger: `started` with the job it created, or `skipped` with why.
    async fn finish_stow_trigger(
        &self,
        segmentation_id: &str,
        job_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The trigger of a segmentation, if it had one.
    async fn stow_trigger(
        &self,
        segmentation_id: &str,
    ) -> Result<Option<StowTriggerRow>, StoreError>;

    /// Open the STOW-RS series resource `row` (its tenant, SeriesInstanceUID and version);
    /// when a concurrent request opened that version first, nothing is inserted. Returns
    /// the row that holds the version.
    async fn open_stow_series(&self, row: &StowSeriesRow) -> Result<StowSeriesRow, StoreError>;

    /// The newest STOW-RS series resource of `tenant` with this SeriesInstanceUID.
    async fn latest_stow_series(
        &self,
        tenant: &str,
        series_uid: &str,
    ) -> Result<Option<StowSeriesRow>, StoreError>;

    /// The STOW-RS assembly state of series `id` of `tenant` (`None` for a series that did
    /// not come from STOW-RS).
    async fn stow_series(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<StowSeriesRow>, StoreError>;

    /// Stage an instance of a STOW-RS series; `None` when inserted, else the instance
    /// already staged under that SOPInstanceUID (nothing is changed).
    async fn stage_stow_instance(
        &self,
        row: &StowInstanceRow,
    ) -> Result<Option<StowInstanceRow>, StoreError>;

    /// The SeriesInstanceUID of the newest STOW-RS series resource of `tenant` that holds
    /// the instance `sop_instance_uid`.
    async fn stow_series_uid_of_instance(
        &self,
        tenant: &str,
        sop_instance_uid: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Every staged instance of a STOW-RS series resource.
    async fn stow_instances(&self, series_id: &str) -> Result<Vec<StowInstanceRow>, StoreError>;

    /// Record the outcome of assembling `instance_count` instances of a STOW-RS series
    /// (`assembly_error` names why they are not a series) unless a larger union was
    /// recorded already (a concurrent request assembled more), and move the time of the
    /// last new instance forward to `last_instance_at_ms` when given. Returns whether the
    /// outcome was recorded.
    async fn record_stow_assembly(
        &self,
        series_id: &str,
        instance_count: i64,
        assembly_error: Option<&str>,
        last_instance_at_ms: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Replace the assembled members of a live series row (geometry, instance count,
    /// warnings, frame of reference) unless it already holds more instances.
    async fn update_series_assembly(&self, row: &SeriesRow) -> Result<bool, StoreError>;

    /// How many jobs (any state) use series `id`.
    async fn series_job_count(&self, series_id: &str) -> Result<i64, StoreError>;

    /// Record a STOW-RS segmentation waiting for its series.
    async fn insert_pending_segmentation(
        &self,
        row: &PendingSegmentationRow,
    ) -> Result<(), StoreError>;

    /// A waiting STOW-RS segmentation of `tenant` by id.
    async fn pending_segmentation(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<PendingSegmentationRow>, StoreError>;

    /// The waiting STOW-RS segmentations of a series resource, oldest first.
    async fn pending_segmentations(
        &self,
        series_id: &str,
    ) -> Result<Vec<PendingSegmentationRow>, StoreError>;

    /// Remove a waiting segmentation to bind it; `false` when another request took it.
    async fn take_pending_segmentation(&self, id: &str) -> Result<bool, StoreError>;

    /// The newest live segmentation of a series of `tenant`.
    async fn latest_segmentation(
        &self,
        tenant: &str,
        series_id: &str,
    ) -> Result<Option<SegmentationRow>, StoreError>;

    /// The tenant's jobs, newest first, optionally of one status and of one kind, at most
    /// `limit`.
    async fn jobs(
        &self,
        tenant: &str,
        status: Option<&str>,
        kind: Option<JobKind>,
        limit: i64,
    ) -> Result<Vec<JobRow>, StoreError>;
    /// Store a new API key (its hash, never the key).
    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError>;

    /// An API key by its public id, revoked or not.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRow>, StoreError>;

    /// Every API key, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError>;

    /// Revoke a key at `at_ms`; `false` when no unrevoked key has this id.
    async fn revoke_api_key(&self, id: &str, at_ms: i64) -> Result<bool, StoreError>;

    /// Append an event to the audit log (the only write the audit log accepts).
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Audit events in order of writing, of one tenant or all, from `since_ms` on.
    async fn audit_events(
        &self,
        tenant: Option<&str>,
        since_ms: Option<i64>,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

/// A stored series.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct SeriesRow {
    pub id: String,
    /// The tenant (trial or site) the series belongs to.
    pub tenant_id: String,
    pub series_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub instance_count: i64,
    /// JSON: the series geometry as returned by the API.
    pub geometry: String,
    /// JSON array of warning strings.
    pub warnings: String,
    pub blob_prefix: String,
    pub created_at_ms: i64,
}

/// A stored segmentation.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct SegmentationRow {
    pub id: String,
    pub tenant_id: String,
    pub series_id: String,
    pub format: String,
    pub file_name: Option<String>,
    pub blob_key: String,
    /// JSON array of lesion summaries.
    pub lesions: String,
    pub created_at_ms: i64,
}

/// A job as stored.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct JobRow {
    pub id: String,
    pub tenant_id: String,
    pub series_id: String,
    pub segmentation_id: String,
    /// JSON: the validated job request.
    pub request: String,
    pub status: String,
    pub progress: f64,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub error: Option<String>,
    /// JSON: the job result, when succeeded.
    pub result: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Client-supplied `Idempotency-Key`, when given.
    pub idempotency_key: Option<String>,
    /// Not claimable before this time (backoff after a failed attempt).
    pub run_after_ms: i64,
    /// What the job computes ([`JobKind`]'s stored name).
    pub kind: String,
}

impl JobRow {
    /// What the job computes; an unknown stored name reads as [`JobKind::Extraction`],
    /// the kind of every job before kinds existed.
    pub fn kind(&self) -> JobKind {
        JobKind::parse(&self.kind).unwrap_or(JobKind::Extraction)
    }
}

/// What a job computes. Every kind shares the queue, leases, retries and cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Features and scores of the lesions (`POST /v1/jobs`, batches, triggers, work items).
    Extraction,
    /// Per-location feature ICCs under perturbations (`POST /v1/robustness`).
    Robustness,
}

impl JobKind {
    /// Every kind, in the order listings name them.
    pub const ALL: [JobKind; 2] = [JobKind::Extraction, JobKind::Robustness];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Extraction => "extraction",
            JobKind::Robustness => "robustness",
        }
    }

    /// The kind of a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A batch of jobs submitted together.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct BatchRow {
    pub id: String,
    pub tenant_id: String,
    /// Client-supplied `Idempotency-Key`, unique across the tenant's batches.
    pub idempotency_key: Option<String>,
    /// JSON: the validated job requests, for replay checks.
    pub request: String,
    pub job_count: i64,
    pub created_at_ms: i64,
}

/// The DICOMweb push of one job's report.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct DeliveryRow {
    pub job_id: String,
    /// STOW-RS base URL the report goes to (never holds credentials).
    pub destination: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    pub updated_at_ms: i64,
}

/// A tenant's DICOMweb settings, set by an admin (`radscore tenants …`).
#[derive(Clone, FromRow)]
pub struct TenantSettingsRow {
    pub tenant_id: String,
    /// DICOMweb base URL reports are pushed to; `None`: the process default.
    pub push_url: Option<String>,
    /// `Authorization` header value for pushes; never logged or returned.
    pub push_authorization: Option<String>,
    /// JSON: the auto-trigger rule ([`crate::jobs::trigger::TriggerRule`]).
    pub auto_trigger: Option<String>,
    pub updated_at_ms: i64,
}

impl fmt::Debug for TenantSettingsRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSettingsRow")
            .field("tenant_id", &self.tenant_id)
            .field("push_url", &self.push_url.as_ref().map(|_| "<set>"))
            .field(
                "push_authorization",
                &self.push_authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("auto_trigger", &self.auto_trigger)
            .finish()
    }
}

/// A series resource assembled by STOW-RS from instances received in several requests.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StowSeriesRow {
    /// The series id (`/v1/series/{id}`), also before its instances assemble.
    pub id: String,
    pub tenant_id: String,
    pub series_uid: String,
    /// 1 for the first resource of the SeriesInstanceUID; one more for each resource opened
    /// because a job had used the previous one.
    pub version: i64,
    pub instance_count: i64,
    /// Why the instances are not a series yet (gap, single slice…); `None` when they are.
    pub assembly_error: Option<String>,
    /// When the last new instance arrived.
    pub last_instance_at_ms: i64,
    pub created_at_ms: i64,
}

/// One instance staged for a STOW-RS series resource.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StowInstanceRow {
    pub series_id: String,
    pub sop_instance_uid: String,
    /// SHA-256 of the instance file, hex: the same SOPInstanceUID with other bytes conflicts.
    pub sha256: String,
    pub blob_key: String,
    pub received_at_ms: i64,
}

/// A STOW-RS segmentation waiting for its series to receive the instances it maps onto.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct PendingSegmentationRow {
    /// The segmentation id it will have once bound.
    pub id: String,
    pub tenant_id: String,
    /// The STOW-RS series resource it waits for.
    pub series_id: String,
    pub blob_key: String,
    pub file_name: Option<String>,
    /// Why it is not bound yet (the mapping error on the instances received so far).
    pub reason: String,
    pub created_at_ms: i64,
}

/// A segmentation received by STOW-RS that starts a job once its series is stable.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StowTriggerRow {
    pub segmentation_id: String,
    pub tenant_id: String,
    /// SeriesInstanceUID of the series the segmentation references.
    pub series_uid: String,
    /// Not before this time (pushed back by every new instance of the series).
    pub due_at_ms: i64,
    /// `waiting`, `started` or `skipped`.
    pub state: String,
    pub job_id: Option<String>,
    /// Why no job was started (`skipped`).
    pub error: Option<String>,
    pub created_at_ms: i64,
}

/// What is needed to enqueue a job.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub tenant_id: String,
    pub series_id: String,
    pub segmentation_id: String,
    pub request: String,
    /// Client-supplied `Idempotency-Key`, unique across the tenant's jobs.
    pub idempotency_key: Option<String>,
    /// What the job computes.
    pub kind: JobKind,
}

/// What an enqueue ([`Database::insert_job`], [`Database::insert_batch`]) did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueue<T> {
    /// Stored.
    Inserted,
    /// The idempotency key was used before: nothing was stored; this is the earlier one.
    Existing(T),
    /// Nothing was stored: job number `job` (0 for a single job) names an upload that is
    /// not a live row of its tenant (deleted, possibly concurrently, or never stored).
    UploadGone {
        job: usize,
        kind: UploadKind,
        id: String,
    },
}

impl<T> Enqueue<T> {
    /// Whether the enqueue stored something.
    pub fn is_inserted(&self) -> bool {
        matches!(self, Enqueue::Inserted)
    }
}

/// A kind of upload that can be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    Series,
    Segmentation,
}

impl UploadKind {
    /// The word used in messages and metrics (`series`, `segmentation`).
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Series => "series",
            UploadKind::Segmentation => "segmentation",
        }
    }
}

/// Why an upload was deleted, as stored in its tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionReason {
    /// A `DELETE` request (or the deletion of the series a segmentation belongs to).
    Deleted,
    /// The retention period (`RADSCORE_RETENTION_HOURS`) ran out.
    Retention,
}

impl DeletionReason {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionReason::Deleted => "deleted",
            DeletionReason::Retention => "retention",
        }
    }

    /// Parse a stored value; anything unknown reads as a deletion request.
    pub fn parse(s: &str) -> Self {
        match s {
            "retention" => DeletionReason::Retention,
            _ => DeletionReason::Deleted,
        }
    }
}

/// When and why an upload was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub deleted_at_ms: i64,
    pub reason: DeletionReason,
}

/// The blobs of one deleted upload: a series prefix or a segmentation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRemoval {
    pub kind: UploadKind,
    pub id: String,
    pub blob_key: String,
}

/// An upload whose retention period ran out (see [`Store::expired_uploads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredUpload {
    pub kind: UploadKind,
    pub id: String,
    /// Its owner, for the audit log entry of the purge.
    pub tenant_id: String,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// Now a tombstone; these blobs are to be removed (the series' and its
    /// segmentations').
    Deleted(Vec<BlobRemoval>),
    /// It was deleted before.
    Gone(Tombstone),
    /// Queued or running jobs use it (their ids, oldest first); nothing was changed.
    InUse(Vec<String>),
    /// No such id.
    NotFound,
}

/// A stored API key: its public id and the SHA-256 of the whole key, never the key.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct ApiKeyRow {
    /// Public id, also the key's prefix (lookup without scanning hashes).
    pub id: String,
    pub tenant_id: String,
    /// Operator's label for the key.
    pub name: Option<String>,
    /// Admin keys may also read the tenant's audit log.
    pub admin: bool,
    /// Hex SHA-256 of the whole key.
    #[serde(skip)]
    pub key_hash: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// One audit log entry: who (tenant, key id) did what to which object, when. Never key
/// material, pixel data or patient identifiers.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct AuditEvent {
    /// Position in the log (assigned by the database; 0 before insertion).
    pub seq: i64,
    pub at_ms: i64,
    pub tenant_id: String,
    /// The API key's public id; `None` when authentication is disabled.
    pub key_id: Option<String>,
    /// e.g. `series.upload`, `job.create`, `result.read`.
    pub action: String,
    /// e.g. `series`, `job`.
    pub object_type: String,
    pub object_id: Option<String>,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// JSON object with non-identifying facts (counts, formats, statuses).
    pub detail: String,
}

/// Milliseconds of a duration, saturating, in the database's time unit.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
