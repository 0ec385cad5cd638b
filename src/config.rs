//! Process configuration: every setting has a command-line flag and an environment
//! variable, with embedded defaults (SQLite file, local blob directory, bundled model).

use std::path::PathBuf;

use clap::Args;

use crate::api::UploadLimits;

/// Bytes in a mebibyte, for `*_mb` settings.
const MIB: u64 = 1024 * 1024;

/// Settings shared by `serve`, `worker` and `migrate`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database URL (SQLite).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://var/radscore.db")]
    pub database_url: String,
    /// Directory of the local blob store.
    #[arg(long, env = "RADSCORE_BLOB_DIR", default_value = "var/blobs")]
    pub blob_dir: PathBuf,
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
}

impl Config {
    /// Upload limits in bytes.
    pub fn upload_limits(&self) -> UploadLimits {
        UploadLimits {
            max_body_bytes: self.max_upload_mb.saturating_mul(MIB),
            max_files: self.max_files,
            max_uncompressed_bytes: self.max_unzipped_mb.saturating_mul(MIB),
        }
    }

    /// Worker pool size: configured, else the number of cores.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}
