//! Extraction jobs: the request and result types, the tokio worker pool that claims
//! queued jobs from the database, runs the [`crate::pipeline`] and stores results, and the
//! deletion and retention of uploads ([`retention`]) that runs beside it.
//!
//! The job table in [`crate::store`] is the queue (see its docs for lease semantics).

pub mod delivery;
pub mod registry;
pub mod report;
pub mod result;
pub mod retention;
pub mod retry;
pub mod scoring;
pub mod worker;

pub use registry::{ModelRegistry, RegistryError};
pub use result::{JobResult, LesionResult, ModelSummary, SYNTHETIC_MODEL_DISCLAIMER};
pub use retry::RetryPolicy;
pub use worker::{JobContext, QueueConfig, run_worker_pool};

use serde::{Deserialize, Serialize};

use crate::pipeline::LesionRequest;

/// A validated job request, as stored in the job row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// The series to extract from.
    pub series_id: String,
    /// The segmentation (bound to that series) holding the lesions.
    pub segmentation_id: String,
    /// Lesions to compute, in result order.
    pub lesions: Vec<LesionRequest>,
    /// Model name requested by the client (must be the name of the model the job runs
    /// with when given; kept for older clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Registered model to score with; the tenant's active model when absent (chosen when
    /// the job runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// Why a job failed as a whole (each lesion's own failures are in the result instead).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("stored data for this job is missing or unreadable: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the stored series can no longer be assembled: {0}")]
    Series(String),
    #[error("the stored segmentation can no longer be read: {0}")]
    Segmentation(String),
    #[error("model scoring failed: {0}")]
    Model(String),
    #[error("the job request is invalid: {0}")]
    Request(String),
    #[error("the extraction task was aborted: {0}")]
    Aborted(String),
}

impl JobError {
    /// Whether another attempt may succeed: storage errors (database or blob store
    /// briefly unreachable) are retried with backoff; bad inputs and model errors are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, JobError::Store(_))
    }
}
