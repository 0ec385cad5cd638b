//! The relational store: series, segmentations and the job table that is also the queue.
//!
//! # Queue semantics
//! A job row moves `queued → running → succeeded | failed`. A worker claims the oldest
//! claimable row in one atomic `UPDATE … RETURNING` and holds a lease (`lease_owner`,
//! `lease_expires_at_ms`) that it renews while it works. A row whose lease has expired
//! (crashed worker) is claimable again, up to `max_attempts`; after that it is failed with
//! the reason. Completion is conditional on still owning the lease, so a worker that lost
//! its lease cannot overwrite a newer attempt's result.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{FromRow, SqlitePool};

use super::{StoreError, now_ms};

/// How long a connection waits on a locked SQLite database before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection pool size for the embedded SQLite database.
const SQLITE_MAX_CONNECTIONS: u32 = 8;

/// The database handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

/// A stored series.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct SeriesRow {
    pub id: String,
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
}

/// What is needed to enqueue a job.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub series_id: String,
    pub segmentation_id: String,
    pub request: String,
    /// Client-supplied `Idempotency-Key`, unique across jobs.
    pub idempotency_key: Option<String>,
}

/// The column list of [`JobRow`], as a literal so statements stay static strings.
macro_rules! job_columns {
    () => {
        "id, series_id, segmentation_id, request, status, progress, attempts, lease_owner, \
         lease_expires_at_ms, error, result, created_at_ms, started_at_ms, finished_at_ms, \
         idempotency_key"
    };
}

impl Db {
    /// Open (creating if needed) the database at `url` and apply migrations.
    ///
    /// `url` is a SQLite URL such as `sqlite://var/radscore.db` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(file).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent)?;
            }
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        // Every connection to `:memory:` is its own database: keep one for in-memory URLs.
        let max = if url.contains(":memory:") {
            1
        } else {
            SQLITE_MAX_CONNECTIONS
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await?;
        let db = Db { pool };
        db.migrate().await?;
        Ok(db)
    }

    /// Apply the embedded migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .is_ok()
    }

    /// Insert a series row.
    pub async fn insert_series(&self, row: &SeriesRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO series (id, series_uid, frame_of_reference_uid, instance_count, \
             geometry, warnings, blob_prefix, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&row.series_uid)
        .bind(&row.frame_of_reference_uid)
        .bind(row.instance_count)
        .bind(&row.geometry)
        .bind(&row.warnings)
        .bind(&row.blob_prefix)
        .bind(row.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A series by id.
    pub async fn series(&self, id: &str) -> Result<Option<SeriesRow>, StoreError> {
        Ok(sqlx::query_as::<_, SeriesRow>(
            "SELECT id, series_uid, frame_of_reference_uid, instance_count, geometry, warnings, \
             blob_prefix, created_at_ms FROM series WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Insert a segmentation row.
    pub async fn insert_segmentation(&self, row: &SegmentationRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO segmentations (id, series_id, format, file_name, blob_key, lesions, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.id)
        .bind(&row.series_id)
        .bind(&row.format)
        .bind(&row.file_name)
        .bind(&row.blob_key)
        .bind(&row.lesions)
        .bind(row.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A segmentation by id.
    pub async fn segmentation(&self, id: &str) -> Result<Option<SegmentationRow>, StoreError> {
        Ok(sqlx::query_as::<_, SegmentationRow>(
            "SELECT id, series_id, format, file_name, blob_key, lesions, created_at_ms \
             FROM segmentations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Enqueue a job. With an idempotency key that is already taken, nothing is inserted
    /// and the existing job is returned instead (`Ok(Some(existing))`).
    pub async fn insert_job(&self, job: &NewJob) -> Result<Option<JobRow>, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, series_id, segmentation_id, request, status, created_at_ms, \
             idempotency_key) VALUES ($1, $2, $3, $4, 'queued', $5, $6) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&job.id)
        .bind(&job.series_id)
        .bind(&job.segmentation_id)
        .bind(&job.request)
        .bind(now_ms())
        .bind(&job.idempotency_key)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(None);
        }
        let sql = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE idempotency_key = $1"
        );
        Ok(sqlx::query_as::<_, JobRow>(sql)
            .bind(&job.idempotency_key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Cancel a queued or running job; returns whether this call cancelled it and the job
    /// as it is afterwards (`None` if it does not exist). A running job's worker loses its
    /// lease and its result is dropped.
    pub async fn cancel_job(&self, id: &str) -> Result<Option<(bool, JobRow)>, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at_ms = $1, lease_owner = NULL, \
             lease_expires_at_ms = NULL WHERE id = $2 AND status IN ('queued', 'running')",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(self
            .job(id)
            .await?
            .map(|row| (done.rows_affected() == 1, row)))
    }

    /// A job by id.
    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
        Ok(sqlx::query_as::<_, JobRow>(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Claim the oldest claimable job for `worker`: queued, or running with an expired
    /// lease and fewer than `max_attempts` attempts. Atomic; `None` when nothing is
    /// claimable.
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Option<JobRow>, StoreError> {
        let now = now_ms();
        let expires = now.saturating_add(duration_ms(lease));
        let sql = concat!(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_expires_at_ms = $2, \
             attempts = attempts + 1, started_at_ms = COALESCE(started_at_ms, $3) \
             WHERE id = (SELECT id FROM jobs WHERE (status = 'queued' OR \
               (status = 'running' AND lease_expires_at_ms < $3)) AND attempts < $4 \
               ORDER BY created_at_ms, id LIMIT 1) \
             RETURNING ",
            job_columns!()
        );
        Ok(sqlx::query_as::<_, JobRow>(sql)
            .bind(worker)
            .bind(expires)
            .bind(now)
            .bind(i64::from(max_attempts))
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Fail jobs whose lease expired after their last allowed attempt.
    pub async fn fail_exhausted_jobs(&self, max_attempts: u32) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', finished_at_ms = $1, lease_owner = NULL, \
             error = 'the worker processing this job stopped responding on every attempt' \
             WHERE status = 'running' AND lease_expires_at_ms < $1 AND attempts >= $2",
        )
        .bind(now)
        .bind(i64::from(max_attempts))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Renew the lease and record progress; `false` if the lease was lost.
    pub async fn heartbeat(
        &self,
        job_id: &str,
        worker: &str,
        lease: Duration,
        progress: f64,
    ) -> Result<bool, StoreError> {
        let expires = now_ms().saturating_add(duration_ms(lease));
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at_ms = $1, progress = $2 \
             WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
        )
        .bind(expires)
        .bind(progress)
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Finish a job this worker holds: `succeeded` with a result or `failed` with a reason.
    /// Returns `false` if the lease was lost (the result is discarded).
    pub async fn finish_job(
        &self,
        job_id: &str,
        worker: &str,
        outcome: Result<&str, &str>,
    ) -> Result<bool, StoreError> {
        let (status, result, error) = match outcome {
            Ok(result) => ("succeeded", Some(result), None),
            Err(reason) => ("failed", None, Some(reason)),
        };
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, result = $2, error = $3, progress = \
             CASE WHEN $1 = 'succeeded' THEN 1.0 ELSE progress END, finished_at_ms = $4, \
             lease_owner = NULL, lease_expires_at_ms = NULL \
             WHERE id = $5 AND lease_owner = $6 AND status = 'running'",
        )
        .bind(status)
        .bind(result)
        .bind(error)
        .bind(now_ms())
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Put a job this worker holds back in the queue (graceful shutdown).
    pub async fn release_job(&self, job_id: &str, worker: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at_ms = NULL, \
             attempts = attempts - 1 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Number of jobs waiting to run (queued), for backpressure.
    pub async fn queued_jobs(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Number of jobs per status, for metrics.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as::<_, (String, i64)>(
            "SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db_with_job() -> Db {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let series = SeriesRow {
            id: "s1".into(),
            series_uid: "1.2.3".into(),
            frame_of_reference_uid: None,
            instance_count: 1,
            geometry: "{}".into(),
            warnings: "[]".into(),
            blob_prefix: "series/s1".into(),
            created_at_ms: 0,
        };
        db.insert_series(&series).await.unwrap();
        let seg = SegmentationRow {
            id: "g1".into(),
            series_id: "s1".into(),
            format: "nifti".into(),
            file_name: None,
            blob_key: "k".into(),
            lesions: "[]".into(),
            created_at_ms: 0,
        };
        db.insert_segmentation(&seg).await.unwrap();
        let job = NewJob {
            id: "j1".into(),
            series_id: "s1".into(),
            segmentation_id: "g1".into(),
            request: "{}".into(),
            idempotency_key: None,
        };
        db.insert_job(&job).await.unwrap();
        db
    }

    #[tokio::test]
    async fn a_job_is_claimed_once_and_finished_by_its_owner_only() {
        let db = db_with_job().await;
        let lease = Duration::from_secs(60);
        let job = db
            .claim_job("w1", lease, 3)
            .await
            .unwrap()
            .expect("claimable");
        assert_eq!(job.status, "running");
        assert_eq!(job.attempts, 1);
        assert!(db.claim_job("w2", lease, 3).await.unwrap().is_none());
        assert!(!db.finish_job("j1", "w2", Ok("{}")).await.unwrap());
        assert!(db.finish_job("j1", "w1", Ok("{\"x\":1}")).await.unwrap());
        let row = db.job("j1").await.unwrap().unwrap();
        assert_eq!(row.status, "succeeded");
        assert_eq!(row.progress, 1.0);
    }

    #[tokio::test]
    async fn an_expired_lease_is_reclaimed_then_failed_after_max_attempts() {
        let db = db_with_job().await;
        let expired = Duration::from_millis(0);
        db.claim_job("w1", expired, 2).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let again = db
            .claim_job("w2", expired, 2)
            .await
            .unwrap()
            .expect("re-claimable");
        assert_eq!(again.attempts, 2);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(db.claim_job("w3", expired, 2).await.unwrap().is_none());
        assert_eq!(db.fail_exhausted_jobs(2).await.unwrap(), 1);
        assert_eq!(db.job("j1").await.unwrap().unwrap().status, "failed");
    }
}
