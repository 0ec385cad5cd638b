//! Process configuration: every setting has a command-line flag and an environment
//! variable, with embedded defaults (SQLite file, local blob directory, bundled model).
//! `docs/deployment.md` lists every variable with its default.

use std::path::PathBuf;

use clap::Args;

use crate::api::UploadLimits;
use crate::store::{BlobLocation, StoreError};

/// Bytes in a mebibyte, for `*_mb` settings.
const MIB: u64 = 1024 * 1024;

/// A worker heartbeats at least this many times per lease, so one late beat never loses it.
const HEARTBEATS_PER_LEASE: u32 = 10;

/// Longest interval between heartbeats; progress is recorded with each beat.
const MAX_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// Settings shared by `serve`, `worker` and `migrate`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database URL: `sqlite://FILE` (embedded default) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://var/radscore.db")]
    pub database_url: String,
    /// Directory of the local blob store (used when `RADSCORE_BLOB_URL` is unset).
    #[arg(long, env = "RADSCORE_BLOB_DIR", default_value = "var/blobs")]
    pub blob_dir: PathBuf,
    /// Blob store URL: `s3://bucket/prefix` for S3-compatible object storage shared by
    /// several machines, or `file:///dir`; unset means the local `RADSCORE_BLOB_DIR`.
    /// S3 credentials and region come from the standard `AWS_*` variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, …).
    #[arg(long, env = "RADSCORE_BLOB_URL")]
    pub blob_url: Option<String>,
    /// S3 endpoint for non-AWS S3-compatible servers (MinIO, Ceph, …), e.g.
    /// `http://minio:9000`; overrides `AWS_ENDPOINT`. Requests use path-style addressing
    /// unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    #[arg(long, env = "RADSCORE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Allow a plain-HTTP S3 endpoint (a loopback or cluster-internal server); TLS is
    /// required otherwise. Same as `AWS_ALLOW_HTTP=true`.
    #[arg(long, env = "RADSCORE_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
    /// Directory holding `model.onnx` and `manifest.json`.
    #[arg(long, env = "RADSCORE_MODEL_DIR", default_value = "models/demo")]
    pub model_dir: PathBuf,
    /// Path of `libonnxruntime.so`; found in `.ort/lib/` when unset.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib: Option<PathBuf>,
    /// Extraction settings file (JSON); the bundled default when unset.
    #[arg(long, env = "RADSCORE_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// Number of extraction workers (default: number of cores).
    #[arg(long, env = "RADSCORE_WORKERS")]
    pub workers: Option<usize>,
    /// Largest accepted upload, MiB.
    #[arg(long, env = "RADSCORE_MAX_UPLOAD_MB", default_value_t = 1024)]
    pub max_upload_mb: u64,
    /// Largest total uncompressed size of a zip upload, MiB.
    #[arg(long, env = "RADSCORE_MAX_UNZIPPED_MB", default_value_t = 4096)]
    pub max_unzipped_mb: u64,
    /// Most files in one series upload.
    #[arg(long, env = "RADSCORE_MAX_FILES", default_value_t = 5000)]
    pub max_files: usize,
    /// Most uploads decoded at once (bounds memory under concurrent uploads).
    #[arg(long, env = "RADSCORE_MAX_CONCURRENT_UPLOADS", default_value_t = 4)]
    pub max_concurrent_uploads: usize,
    /// Most queued jobs; beyond it job creation answers 429 with Retry-After.
    #[arg(long, env = "RADSCORE_MAX_QUEUED_JOBS", default_value_t = 10_000)]
    pub max_queued_jobs: u64,
    /// Job lease, seconds: a job whose worker stops heartbeating is re-queued after this.
    #[arg(long, env = "RADSCORE_JOB_LEASE_S", default_value_t = 60)]
    pub job_lease_s: u64,
    /// Attempts before a job whose worker keeps disappearing (or that keeps meeting
    /// transient storage errors) is failed.
    #[arg(long, env = "RADSCORE_JOB_MAX_ATTEMPTS", default_value_t = 3)]
    pub job_max_attempts: u32,
    /// Wait before the second attempt of a failed job, milliseconds; each further retry
    /// waits twice as long (plus random jitter), up to `RADSCORE_JOB_RETRY_MAX_S`.
    #[arg(long, env = "RADSCORE_JOB_RETRY_BASE_MS", default_value_t = 5000)]
    pub job_retry_base_ms: u64,
    /// Longest wait between attempts of a failed job, seconds.
    #[arg(long, env = "RADSCORE_JOB_RETRY_MAX_S", default_value_t = 300)]
    pub job_retry_max_s: u64,
}

impl Config {
    /// Where blobs live: `RADSCORE_BLOB_URL` when set, else the local blob directory.
    ///
    /// # Errors
    /// An unparseable `RADSCORE_BLOB_URL`.
    pub fn blob_location(&self) -> Result<BlobLocation, StoreError> {
        match &self.blob_url {
            Some(url) => BlobLocation::parse(url),
            None => Ok(BlobLocation::Local(self.blob_dir.clone())),
        }
    }

    /// S3 settings given as radscore options, as `object_store` configuration pairs that
    /// override the `AWS_*` environment.
    pub fn s3_options(&self) -> Vec<(String, String)> {
        let mut options = Vec::new();
        if let Some(endpoint) = &self.s3_endpoint {
            options.push(("aws_endpoint".to_string(), endpoint.clone()));
        }
        if self.s3_allow_http {
            options.push(("aws_allow_http".to_string(), "true".to_string()));
        }
        options
    }

    /// Upload limits in bytes.
    pub fn upload_limits(&self) -> UploadLimits {
        UploadLimits {
            max_body_bytes: self.max_upload_mb.saturating_mul(MIB),
            max_files: self.max_files,
            max_uncompressed_bytes: self.max_unzipped_mb.saturating_mul(MIB),
            max_concurrent_uploads: self.max_concurrent_uploads,
            max_queued_jobs: self.max_queued_jobs,
        }
    }

    /// Queue timing from configuration; the heartbeat is a fraction of the lease.
    pub fn queue(&self) -> crate::jobs::QueueConfig {
        let lease = std::time::Duration::from_secs(self.job_lease_s.max(1));
        crate::jobs::QueueConfig {
            lease,
            heartbeat: (lease / HEARTBEATS_PER_LEASE).min(MAX_HEARTBEAT),
            max_attempts: self.job_max_attempts.max(1),
            retry: crate::jobs::RetryPolicy {
                base: std::time::Duration::from_millis(self.job_retry_base_ms),
                max: std::time::Duration::from_secs(self.job_retry_max_s),
            },
            ..crate::jobs::QueueConfig::default()
        }
    }

    /// Worker pool size: configured, else the number of cores.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}
