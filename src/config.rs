//! Process configuration: every setting has a command-line flag and an environment
//! variable, with embedded defaults (SQLite file, local blob directory, bundled model).
//! `docs/deployment.md` lists every variable with its default.

use std::path::PathBuf;

use clap::Args;

use crate::api::UploadLimits;
use crate::api::auth::AuthMode;
use crate::dicom::GeometryPolicy;
use crate::store::{BlobLocation, StoreError};

/// Bytes in a mebibyte, for `*_mb` settings.
const MIB: u64 = 1024 * 1024;

/// A worker heartbeats at least this many times per lease, so one late beat never loses it.
const HEARTBEATS_PER_LEASE: u32 = 10;

/// Longest interval between heartbeats; progress is recorded with each beat.
const MAX_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// Seconds in an hour, for `*_hours` settings.
const SECONDS_PER_HOUR: f64 = 3600.0;

/// A setting that parsed but makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "RADSCORE_RETENTION_HOURS must be 0 (keep forever) or a positive number of hours, got {0}"
    )]
    RetentionHours(f64),
    #[error(
        "RADSCORE_CORS_ORIGINS: '{0}' is not an origin like https://viewer.example.org \
         (scheme, host and optional port)"
    )]
    CorsOrigin(String),
}

/// Longest wait between pushes, as a multiple of the first wait.
const PUSH_MAX_BACKOFF_FACTOR: u32 = 64;

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
    /// Largest segmentation upload (`POST /v1/segmentations`, a SEG or RTSTRUCT pushed by
    /// STOW-RS), MiB: a segmentation is read into memory to be mapped, unlike a series.
    #[arg(long, env = "RADSCORE_MAX_SEGMENTATION_MB", default_value_t = 256)]
    pub max_segmentation_mb: u64,
    /// Largest total uncompressed size of a zip upload, MiB.
    #[arg(long, env = "RADSCORE_MAX_UNZIPPED_MB", default_value_t = 4096)]
    pub max_unzipped_mb: u64,
    /// Most files in one series upload.
    #[arg(long, env = "RADSCORE_MAX_FILES", default_value_t = 5000)]
    pub max_files: usize,
    /// Series with non-uniform slice spacing or gantry tilt / shear: `refuse` (422 naming
    /// the fault) or `resample` (onto a regular orthogonal grid, reported with the series).
    #[arg(long, env = "RADSCORE_GEOMETRY", value_enum, default_value_t = GeometryPolicy::Refuse)]
    pub geometry: GeometryPolicy,
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
    /// Retention of uploads, hours (fractions allowed): a series or segmentation older
    /// than this that no queued or running job uses is purged (blobs removed, a GET
    /// answers 410 Gone); results of finished jobs are kept. 0 keeps uploads forever.
    #[arg(long, env = "RADSCORE_RETENTION_HOURS", default_value_t = 0.0)]
    pub retention_hours: f64,
    /// Seconds between retention passes of a worker process (a pass also retries blob
    /// removals of deletions that failed half-way).
    #[arg(long, env = "RADSCORE_RETENTION_SWEEP_S", default_value_t = 300)]
    pub retention_sweep_s: u64,
    /// Longest time a request may take, seconds, body upload included; a slower one is
    /// answered 503. 0: no limit.
    #[arg(long, env = "RADSCORE_REQUEST_TIMEOUT_S", default_value_t = 600)]
    pub request_timeout_s: u64,
    /// Longest pause in the arrival of a request body, seconds; a body that stalls longer
    /// is answered 408. 0: no limit.
    #[arg(long, env = "RADSCORE_BODY_IDLE_TIMEOUT_S", default_value_t = 60)]
    pub body_idle_timeout_s: u64,
    /// Browser origins allowed to call the API cross-origin (CORS), comma-separated, e.g.
    /// `https://viewer.example.org`. Unset: no CORS headers, so browsers refuse
    /// cross-origin calls.
    #[arg(long, env = "RADSCORE_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Default DICOMweb base URL that each succeeded job's SR report is pushed to with
    /// STOW-RS (`POST {url}/studies`), for tenants without their own destination (`radscore
    /// tenants set-push`); unset means no push for them.
    #[arg(long, env = "RADSCORE_DICOMWEB_PUSH_URL")]
    pub dicomweb_push_url: Option<String>,
    /// `Authorization` header value sent with each push (e.g. `Bearer …`, `Basic …`).
    #[arg(
        long,
        env = "RADSCORE_DICOMWEB_PUSH_AUTHORIZATION",
        hide_env_values = true
    )]
    pub dicomweb_push_authorization: Option<String>,
    /// Attempts to push one report before its delivery is `failed`.
    #[arg(long, env = "RADSCORE_DICOMWEB_PUSH_MAX_ATTEMPTS", default_value_t = 5)]
    pub dicomweb_push_max_attempts: u32,
    /// Wait after the first failed push, milliseconds; doubles per retry, with jitter.
    #[arg(
        long,
        env = "RADSCORE_DICOMWEB_PUSH_RETRY_BASE_MS",
        default_value_t = 2000
    )]
    pub dicomweb_push_retry_base_ms: u64,
    /// Time limit of one push request, seconds.
    #[arg(long, env = "RADSCORE_DICOMWEB_PUSH_TIMEOUT_S", default_value_t = 60)]
    pub dicomweb_push_timeout_s: u64,
    /// Seconds without a new instance of a series, received by STOW-RS, after which it is
    /// taken as complete and a tenant's auto-trigger rule starts its job.
    #[arg(long, env = "RADSCORE_STOW_STABLE_S", default_value_t = 30)]
    pub stow_stable_s: u64,
    /// `required`: every route but /healthz, /readyz and /metrics needs an API key
    /// (`radscore keys create`); `disabled`: no keys, one tenant `default` (local demos
    /// only).
    #[arg(long, env = "RADSCORE_AUTH", value_enum, default_value = "required")]
    pub auth: AuthMode,
    /// Requests per minute per API key; beyond it 429 with Retry-After (0: no limit).
    #[arg(long, env = "RADSCORE_RATE_LIMIT_PER_MIN", default_value_t = 0)]
    pub rate_limit_per_min: u32,
    /// OAuth2/OIDC bearer tokens (`RADSCORE_OIDC_*`), accepted beside API keys.
    #[command(flatten)]
    pub oidc: crate::api::oidc::OidcConfig,
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
            max_segmentation_bytes: self.max_segmentation_mb.saturating_mul(MIB),
            max_files: self.max_files,
            max_uncompressed_bytes: self.max_unzipped_mb.saturating_mul(MIB),
            max_concurrent_uploads: self.max_concurrent_uploads,
            max_queued_jobs: self.max_queued_jobs,
            geometry: self.geometry,
        }
    }

    /// Queue timing from configuration; the heartbeat is a fraction of the lease.
    ///
    /// # Errors
    /// An invalid retention period.
    pub fn queue(&self) -> Result<crate::jobs::QueueConfig, ConfigError> {
        let lease = std::time::Duration::from_secs(self.job_lease_s.max(1));
        Ok(crate::jobs::QueueConfig {
            lease,
            heartbeat: (lease / HEARTBEATS_PER_LEASE).min(MAX_HEARTBEAT),
            max_attempts: self.job_max_attempts.max(1),
            retry: crate::jobs::RetryPolicy {
                base: std::time::Duration::from_millis(self.job_retry_base_ms),
                max: std::time::Duration::from_secs(self.job_retry_max_s),
            },
            retention: self.retention()?,
            max_queued_jobs: self.max_queued_jobs,
            ..crate::jobs::QueueConfig::default()
        })
    }

    /// The retention policy: a period when `RADSCORE_RETENTION_HOURS` is positive.
    ///
    /// # Errors
    /// A negative, non-finite or absurdly large number of hours.
    pub fn retention(&self) -> Result<crate::jobs::retention::RetentionPolicy, ConfigError> {
        let hours = self.retention_hours;
        let period = if hours == 0.0 {
            None
        } else {
            let seconds = hours * SECONDS_PER_HOUR;
            Some(
                std::time::Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|_| hours > 0.0)
                    .ok_or(ConfigError::RetentionHours(hours))?,
            )
        };
        Ok(crate::jobs::retention::RetentionPolicy {
            period,
            sweep_interval: std::time::Duration::from_secs(self.retention_sweep_s.max(1)),
        })
    }

    /// HTTP request timeouts and CORS allow-list.
    ///
    /// # Errors
    /// An origin in `RADSCORE_CORS_ORIGINS` that is not a valid header value or not an
    /// `http(s)://` origin.
    pub fn http_policy(&self) -> Result<crate::api::HttpPolicy, ConfigError> {
        let seconds = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        let request_timeout = seconds(self.request_timeout_s);
        let body_idle_timeout = seconds(self.body_idle_timeout_s);
        let mut cors_origins = Vec::new();
        for origin in self.cors_origins.iter().flat_map(|s| s.split(',')) {
            let origin = origin.trim();
            if origin.is_empty() {
                continue;
            }
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.trim_end_matches('/').contains(['?', '#'])
                && origin.parse::<axum::http::HeaderValue>().is_ok();
            if !valid {
                return Err(ConfigError::CorsOrigin(origin.to_string()));
            }
            cors_origins.push(origin.trim_end_matches('/').to_string());
        }
        Ok(crate::api::HttpPolicy {
            request_timeout,
            body_idle_timeout,
            cors_origins,
        })
    }

    /// The DICOMweb push settings: the default destination, when configured, and the
    /// retry policy of every destination.
    pub fn push(&self) -> crate::jobs::delivery::PushConfig {
        let base = std::time::Duration::from_millis(self.dicomweb_push_retry_base_ms);
        crate::jobs::delivery::PushConfig {
            url: self.dicomweb_push_url.clone(),
            authorization: self.dicomweb_push_authorization.clone(),
            max_attempts: self.dicomweb_push_max_attempts.max(1),
            retry: crate::jobs::RetryPolicy {
                base,
                max: base.saturating_mul(PUSH_MAX_BACKOFF_FACTOR),
            },
            timeout: std::time::Duration::from_secs(self.dicomweb_push_timeout_s.max(1)),
        }
    }

    /// Worker pool size: configured, else the number of cores.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}
