//! Persistence: the sqlx database (jobs, series, segmentations, the model registry) and the
//! blob store.
//!
//! All SQL of radscore lives in this module, behind the [`Database`] trait: the embedded
//! default is SQLite ([`sqlite`], a file under the data directory); PostgreSQL
//! ([`postgres`]) is chosen by a `postgres://` `DATABASE_URL` for scale-out. Statements use
//! `$N` placeholders and the SQL subset both engines share ([`sql`]).
//! Blobs (uploaded instance files and segmentation files) go through `object_store`: a
//! local directory by default, or an S3-compatible bucket (`RADSCORE_BLOB_URL=s3://…`) so
//! that processes on several machines share them.

pub mod blobs;
pub mod db;
pub mod models;
pub mod postgres;
mod sql;
pub mod sqlite;

pub use blobs::{BlobLocation, BlobStore};
pub use db::{
    ApiKeyRow, AuditEvent, Backend, BatchRow, BlobRemoval, Database, Db, Deletion, DeletionReason,
    DeliveryRow, Enqueue, ExpiredUpload, JobKind, JobRow, NewJob, PendingSegmentationRow,
    SegmentationRow, SeriesRow, StowInstanceRow, StowSeriesRow, StowTriggerRow, TenantSettingsRow,
    Tombstone, UploadKind,
};
pub use models::{DEFAULT_TENANT, ModelRow, SHARED_TENANT};

/// Errors of the persistence layer. They are never shown to clients in detail (500s).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    #[error("blob store URL '{url}' is invalid: {reason}")]
    BlobUrl { url: String, reason: String },
    #[error("blob store path error: {0}")]
    BlobPath(#[from] object_store::path::Error),
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported database URL scheme '{0}' (expected sqlite: or postgres:)")]
    UnsupportedUrl(String),
}

/// Current time as Unix epoch milliseconds (the database's time unit).
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
