//! Jobs: the request and result types, the tokio worker pool that claims queued jobs from
//! the database, runs them by kind (extraction with the [`crate::pipeline`], or a
//! [`robustness`] analysis) and stores results, and the deletion and retention of uploads
//! ([`retention`]) that runs beside it.
//!
//! The job table in [`crate::store`] is the queue (see its docs for lease semantics).

pub mod delivery;
pub mod registry;
pub mod report;
pub mod result;
pub mod retention;
pub mod retry;
pub mod robustness;
pub mod scoring;
pub mod settings;
pub mod trigger;
pub mod worker;

pub use registry::{ModelRegistry, RegistryError};
pub use result::{
    JobResult, LesionResult, ModelSummary, PatientSummary, SYNTHETIC_MODEL_DISCLAIMER, SubModelRef,
};
pub use retry::RetryPolicy;
pub use worker::{JobContext, QueueConfig, run_worker_pool};

use serde::{Deserialize, Serialize};

use crate::features::ExtractionSettings;
use crate::pipeline::LesionRequest;
use crate::pyradiomics::names::Naming;

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
    /// The effective extraction settings the job runs with: the request's `settings`, the
    /// mapping of its `pyradiomics_params`, or the service's settings when it gave neither
    /// (recorded when the job is created). `None` (jobs from before per-job settings, or
    /// made without the API): the service's settings when the job runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ExtractionSettings>,
    /// Where [`JobRequest::settings`] came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_source: Option<SettingsSource>,
    /// The PyRadiomics parameter document as given (YAML text is stored as its JSON
    /// equivalent); its `featureClass` selection picks the features of a result in
    /// PyRadiomics naming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pyradiomics_params: Option<serde_json::Value>,
    /// Feature naming of the result (`ibsi` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<Naming>,
    /// Prediction interval options; absent: the default number of perturbations
    /// ([`crate::robustness::interval::DEFAULT_INTERVAL_PERTURBATIONS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_interval: Option<crate::robustness::interval::IntervalOptions>,
}

/// Where a job's extraction settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsSource {
    /// The service's settings (`RADSCORE_SETTINGS` or the bundled default).
    Service,
    /// The request's `settings` document.
    Settings,
    /// The request's `pyradiomics_params`, mapped by [`crate::pyradiomics::params`].
    PyradiomicsParams,
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
    #[error("the result could not be written: {0}")]
    Result(String),
}

impl JobError {
    /// Whether another attempt may succeed: storage errors (database or blob store
    /// briefly unreachable) are retried with backoff; bad inputs and model errors are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, JobError::Store(_))
    }
}
