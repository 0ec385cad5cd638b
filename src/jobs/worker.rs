//! The tokio worker pool: claim, heartbeat, run, store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field};

use super::registry::{ModelRegistry, RegistryError};
use super::scoring::{annotate, attach_intervals, interval_rows, intervals, model_summary, score};
use super::{JobError, JobRequest, JobResult, LesionResult, ModelSummary};
use crate::dicom::acquisition::{Acquisition, read_acquisition};
use crate::dicom::{AssembledSeries, InstanceSource};
use crate::features::ExtractionSettings;
use crate::image::Segmentation;
use crate::model::LoadedModel;
use crate::pipeline::{self, LesionFeatures};
use crate::store::ModelRow;
use crate::store::{BlobStore, Db, JobKind, JobRow, SegmentationRow, SeriesRow};

/// Time between retention passes when not configured.
const DEFAULT_RETENTION_SWEEP: Duration = Duration::from_secs(300);

/// Queue timing and retry policy.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a claim is valid without a heartbeat.
    pub lease: Duration,
    /// How often a running job renews its lease and records progress.
    pub heartbeat: Duration,
    /// How long an idle worker waits before polling again (a new job wakes it sooner).
    pub poll_interval: Duration,
    /// Attempts before a job whose worker keeps disappearing (or that keeps meeting
    /// transient errors) is failed.
    pub max_attempts: u32,
    /// Backoff between attempts.
    pub retry: super::RetryPolicy,
    /// Retention of uploads; its purge task runs beside the workers.
    pub retention: super::retention::RetentionPolicy,
    /// Most queued jobs (`RADSCORE_MAX_QUEUED_JOBS`): an auto-trigger waits while the
    /// queue holds this many, as `POST /v1/jobs` answers 429 then.
    pub max_queued_jobs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(1),
            poll_interval: Duration::from_secs(2),
            max_attempts: 3,
            retry: super::RetryPolicy::default(),
            retention: super::retention::RetentionPolicy {
                period: None,
                sweep_interval: DEFAULT_RETENTION_SWEEP,
            },
            max_queued_jobs: u64::MAX,
        }
    }
}

/// Everything a worker needs. Shared by the pool.
pub struct JobContext {
    pub db: Db,
    pub blobs: BlobStore,
    /// Registered models; each job loads its own from here.
    pub registry: Arc<ModelRegistry>,
    pub settings: Arc<ExtractionSettings>,
    /// Signalled when a job is enqueued, so idle workers wake at once.
    pub job_enqueued: Arc<Notify>,
    pub queue: QueueConfig,
    /// Pushes succeeded jobs' reports (DICOMweb STOW-RS) to the tenant's destination.
    pub push: Arc<super::delivery::Pusher>,
}

/// Run `size` workers, the retention task and the background task (auto-triggers,
/// interrupted deliveries), until `shutdown` is cancelled; in-flight
/// jobs finish first.
pub async fn run_worker_pool(ctx: Arc<JobContext>, size: usize, shutdown: CancellationToken) {
    let node = uuid::Uuid::new_v4().simple().to_string();
    let mut handles = Vec::with_capacity(size + 2);
    handles.push(tokio::spawn(super::trigger::run_background(
        ctx.clone(),
        shutdown.clone(),
    )));
    handles.push(tokio::spawn(super::retention::run_retention_task(
        ctx.db.clone(),
        ctx.blobs.clone(),
        ctx.queue.retention,
        shutdown.clone(),
    )));
    for n in 0..size.max(1) {
        let worker_id = format!("{}-{n}", &node[..12]);
        handles.push(tokio::spawn(worker_loop(
            ctx.clone(),
            worker_id,
            shutdown.clone(),
        )));
    }
    for h in handles {
        if let Err(e) = h.await {
            tracing::error!(error.message = %e, "worker task ended abnormally");
        }
    }
}

async fn worker_loop(ctx: Arc<JobContext>, worker_id: String, shutdown: CancellationToken) {
    tracing::info!(worker = %worker_id, "worker started");
    while !shutdown.is_cancelled() {
        let recovered =
            super::retry::recover_expired_leases(&ctx.db, &ctx.queue.retry, ctx.queue.max_attempts)
                .await;
        if let Err(e) = recovered {
            tracing::warn!(error.message = %e, "could not sweep expired leases");
        }
        match ctx
            .db
            .claim_job(&worker_id, ctx.queue.lease, ctx.queue.max_attempts)
            .await
        {
            Ok(Some(job)) => process_job(&ctx, &worker_id, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = ctx.job_enqueued.notified() => {}
                    _ = tokio::time::sleep(ctx.queue.poll_interval) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::error!(error.message = %e, "claiming a job failed");
                tokio::time::sleep(ctx.queue.poll_interval).await;
            }
        }
    }
    tracing::info!(worker = %worker_id, "worker stopped");
}

/// Run one claimed job to a stored outcome, renewing its lease meanwhile.
async fn process_job(ctx: &Arc<JobContext>, worker_id: &str, job: JobRow) {
    let kind = job.kind();
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        kind = kind.as_str(),
        series_uid = field::Empty
    );
    async {
        let started = Instant::now();
        tracing::info!(attempt = job.attempts, "job started");
        let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
        let lost = Arc::new(AtomicBool::new(false));
        let beat = tokio::spawn(heartbeat(
            ctx.clone(),
            job.id.clone(),
            worker_id.into(),
            progress.clone(),
            lost.clone(),
        ));

        let outcome = match kind {
            JobKind::Extraction => run_job(ctx, &job, progress, lost.clone())
                .await
                .and_then(to_json),
            JobKind::Robustness => super::robustness::run(ctx, &job, progress, lost.clone())
                .await
                .and_then(to_json),
        };
        beat.abort();

        let (status, stored) = match &outcome {
            Ok(json) => (
                "succeeded",
                finish_with_delivery(ctx, &job, worker_id, json).await,
            ),
            // Cancelled, or another worker holds the job now: nothing is stored.
            Err(e) if lost.load(Ordering::Relaxed) => {
                tracing::info!(error.message = %e, "job stopped without an outcome");
                ("stopped", Ok(false))
            }
            Err(e) if e.is_transient() => {
                let retry_at = ctx
                    .queue
                    .retry
                    .retry_at_ms(job.attempts, ctx.queue.max_attempts);
                tracing::warn!(error.message = %e, retry = retry_at.is_some(), "attempt failed");
                let reason = format!("attempt {} failed: {e}", job.attempts);
                let stored = ctx
                    .db
                    .retry_or_fail(&job.id, worker_id, retry_at, &reason, None)
                    .await;
                (
                    if retry_at.is_some() {
                        "retried"
                    } else {
                        "failed"
                    },
                    stored,
                )
            }
            Err(e) => {
                tracing::warn!(error.message = %e, "job failed");
                (
                    "failed",
                    ctx.db
                        .finish_job(&job.id, worker_id, Err(&e.to_string()))
                        .await,
                )
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!("radscore_job_duration_seconds", "status" => status).record(seconds);
        metrics::counter!("radscore_jobs_finished_total", "status" => status).increment(1);
        match stored {
            Ok(true) => {
                tracing::info!(status, duration_s = seconds, "job finished");
                if status == "succeeded" && kind == JobKind::Extraction {
                    tokio::spawn(ctx.push.clone().deliver(
                        ctx.db.clone(),
                        ctx.blobs.clone(),
                        job.tenant_id.clone(),
                        job.id.clone(),
                    ));
                }
            }
            Ok(false) => tracing::warn!("lease lost before completion; result discarded"),
            Err(e) => tracing::error!(error.message = %e, "storing the job outcome failed"),
        }
    }
    .instrument(span)
    .await;
}

/// Store a succeeded job's result; with a push destination, an extraction's delivery is
/// recorded as pending first, so whoever sees the job succeeded also sees the delivery to
/// come (other kinds have no DICOM report to push).
async fn finish_with_delivery(
    ctx: &JobContext,
    job: &JobRow,
    worker_id: &str,
    result_json: &str,
) -> Result<bool, crate::store::StoreError> {
    if job.kind() == JobKind::Extraction {
        ctx.push.prepare(&ctx.db, &job.tenant_id, &job.id).await?;
    }
    ctx.db.finish_job(&job.id, worker_id, Ok(result_json)).await
}

/// The result document of a job as stored.
fn to_json<T: serde::Serialize>(result: T) -> Result<String, JobError> {
    serde_json::to_string(&result).map_err(|e| JobError::Result(e.to_string()))
}

/// Renew the job's lease and record its progress every heartbeat; `lost` is set once the
/// lease is gone (the job was cancelled, or another worker took it over).
async fn heartbeat(
    ctx: Arc<JobContext>,
    job_id: String,
    worker_id: String,
    progress: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(ctx.queue.heartbeat);
    loop {
        tick.tick().await;
        let p = f64::from_bits(progress.load(Ordering::Relaxed));
        match ctx
            .db
            .heartbeat(&job_id, &worker_id, ctx.queue.lease, p)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::Relaxed);
                tracing::warn!("lease lost");
            }
            Err(e) => tracing::warn!(error.message = %e, "heartbeat failed"),
        }
    }
}

/// The lesions of a job with their features, and the series' acquisition attributes.
/// Per lesion, the perturbed model rows of its prediction interval (see
/// [`super::scoring::interval_rows`]).
type IntervalRows = Vec<Option<Vec<Option<Vec<f64>>>>>;

type Extracted = (Vec<LesionFeatures>, Acquisition, IntervalRows);

/// Load inputs, extract every lesion, score, and build the result document. Once `stop`
/// is set (the job was cancelled or its lease lost) the extraction ends before its next
/// lesion or prediction-interval perturbation, with [`JobError::Aborted`].
async fn run_job(
    ctx: &Arc<JobContext>,
    job: &JobRow,
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<JobResult, JobError> {
    let request: JobRequest =
        serde_json::from_str(&job.request).map_err(|e| JobError::Request(e.to_string()))?;
    let inputs = load_inputs(ctx, job).await?;
    let (row, model) = job_model(ctx, &job.tenant_id, &request).await?;
    let JobInputs {
        series_row,
        seg_row,
        files,
        seg_bytes,
    } = inputs;

    let settings = super::settings::effective(&request, &ctx.settings);
    let extract_settings = settings.clone();
    let wanted = request.lesions.clone();
    // Only a model trained with the job's settings scores it (see jobs::settings); the
    // prediction interval is only worth its re-extractions for a model that scores.
    let scorable = row.settings_hash == settings.hash();
    let interval_options = match scorable {
        true => request.prediction_interval.unwrap_or_default(),
        false => crate::robustness::interval::IntervalOptions { perturbations: 0 },
    };
    let interval_model = model.clone();
    let policy = crate::api::series::policy_of_row(&series_row);
    let extract_started = Instant::now();
    let extracted = tokio::task::spawn_blocking(move || -> Result<Extracted, JobError> {
        let series_error = |e: crate::dicom::DicomError| JobError::Series(e.to_string());
        let (series, seg) = decode_case(&files, seg_bytes, seg_row.file_name.as_deref(), policy)?;
        let first = files.fetch(0).map_err(series_error)?;
        let acquisition =
            read_acquisition(std::slice::from_ref(&first), series.volume.grid.spacing_mm);
        // Lesions finish concurrently: keep the largest fraction reported (for
        // non-negative floats the bit patterns order like the values).
        let report = |p: f64| {
            progress.fetch_max((0.9 * p).to_bits(), Ordering::Relaxed);
        };
        let stopped = || stop.load(Ordering::Relaxed);
        let aborted = || {
            tracing::info!("extraction stopped: the job was cancelled or lost its lease");
            JobError::Aborted("the job was cancelled or lost its lease".into())
        };
        let lesions = pipeline::extract_lesions_until(
            &series.volume,
            &seg,
            &wanted,
            &extract_settings,
            &report,
            &stopped,
        )
        .ok_or_else(aborted)?;
        let interval_rows = interval_rows(
            &series.volume,
            &seg,
            &lesions,
            &extract_settings,
            &interval_model,
            interval_options,
            &stopped,
        );
        if stopped() {
            return Err(aborted());
        }
        Ok((lesions, acquisition, interval_rows))
    })
    .await
    .map_err(|e| JobError::Aborted(e.to_string()))??;
    metrics::histogram!("radscore_feature_extraction_seconds")
        .record(extract_started.elapsed().as_secs_f64());

    let (lesions, acquisition, interval_rows) = extracted;

    let model_hash = &row.settings_hash;
    let probabilities = if scorable {
        score(&model, &lesions).await?
    } else {
        vec![None; lesions.len()]
    };
    let summary = model_summary(&row, &model);
    let source = request.settings_source;
    let mut result = build_result(
        job,
        &series_row.series_uid,
        &lesions,
        probabilities,
        summary,
    );
    record_settings(&mut result, &settings, source);
    if !scorable {
        super::settings::flag_settings_mismatch(&mut result, model_hash, &settings);
    }
    annotate(&mut result, &model, &lesions, acquisition);
    let intervals = intervals(&model, &lesions, interval_rows, interval_options).await?;
    attach_intervals(&mut result, intervals);
    // Before renaming: the summary reads the IBSI-named volume and diameter.
    result.patient_summary = Some(super::result::PatientSummary::of(&result.lesions));
    super::settings::apply_naming(&mut result, &request, &settings);
    Ok(result)
}

/// The stored rows and files of a job's series and segmentation.
pub(super) struct JobInputs {
    pub series_row: SeriesRow,
    pub seg_row: SegmentationRow,
    /// The series' instance blobs, fetched one at a time while decoding.
    pub files: BlobInstances,
    pub seg_bytes: bytes::Bytes,
}

/// Look up the job's series and segmentation of its tenant (recording the series UID in
/// the job span) and fetch the segmentation file.
pub(super) async fn load_inputs(ctx: &JobContext, job: &JobRow) -> Result<JobInputs, JobError> {
    let series_row = ctx
        .db
        .series(&job.tenant_id, &job.series_id)
        .await?
        .ok_or_else(|| JobError::Series(format!("series {} no longer exists", job.series_id)))?;
    tracing::Span::current().record("series_uid", series_row.series_uid.as_str());
    let seg_row = ctx
        .db
        .segmentation(&job.tenant_id, &job.segmentation_id)
        .await?
        .ok_or_else(|| {
            JobError::Segmentation(format!(
                "segmentation {} no longer exists",
                job.segmentation_id
            ))
        })?;
    let keys = ctx.blobs.list(&series_row.blob_prefix).await?;
    let files = BlobInstances::new(ctx.blobs.clone(), keys);
    let seg_bytes = ctx.blobs.get(&seg_row.blob_key).await?;
    Ok(JobInputs {
        series_row,
        seg_row,
        files,
        seg_bytes,
    })
}

/// Decode a stored case on a blocking thread: headers first, then the segmentation on the
/// known grid, then the voxels, so the label map is released before the volume is
/// allocated.
pub(super) fn decode_case(
    files: &BlobInstances,
    seg_bytes: bytes::Bytes,
    seg_file_name: Option<&str>,
    policy: crate::dicom::GeometryPolicy,
) -> Result<(AssembledSeries, Segmentation), JobError> {
    let series_error = |e: crate::dicom::DicomError| JobError::Series(e.to_string());
    let plan = crate::dicom::plan_series(files, policy).map_err(series_error)?;
    let summary = plan.summary();
    let (_, seg) = pipeline::read_segmentation_on(
        &seg_bytes,
        seg_file_name,
        crate::dicom::MaskTarget::new(&summary.grid, summary.acquired.as_ref()),
        summary.frame_of_reference_uid.as_deref(),
    )
    .map_err(|e| JobError::Segmentation(e.to_string()))?;
    drop(seg_bytes);
    let series = plan.decode(files).map_err(series_error)?;
    Ok((series, seg))
}

/// The registry row and loaded model a job runs with: its `model_id`, else the tenant's
/// active model, among the models the job's tenant sees.
async fn job_model(
    ctx: &JobContext,
    tenant: &str,
    request: &JobRequest,
) -> Result<(ModelRow, LoadedModel), JobError> {
    let registry_error = |e: RegistryError| match e {
        RegistryError::Store(s) => JobError::Store(s),
        other => JobError::Model(other.to_string()),
    };
    let row = ctx
        .registry
        .resolve(tenant, request.model_id.as_deref())
        .await
        .map_err(registry_error)?;
    let model = ctx.registry.load(&row).await.map_err(registry_error)?;
    Ok((row, model))
}

fn build_result(
    job: &JobRow,
    series_uid: &str,
    lesions: &[LesionFeatures],
    probabilities: Vec<Option<f64>>,
    model: ModelSummary,
) -> JobResult {
    JobResult {
        job_id: job.id.clone(),
        series_id: job.series_id.clone(),
        series_uid: series_uid.into(),
        segmentation_id: job.segmentation_id.clone(),
        disclaimer: model
            .synthetic_demo
            .then(|| super::SYNTHETIC_MODEL_DISCLAIMER.to_string()),
        acquisition: None,
        patient_summary: None,
        model,
        settings_name: String::new(),
        settings_hash: String::new(),
        settings: None,
        settings_source: None,
        naming: Default::default(),
        lesions: lesions
            .iter()
            .zip(probabilities)
            .map(|(l, p)| LesionResult::new(l, p))
            .collect(),
    }
}

/// Record the settings a result was computed with.
fn record_settings(
    result: &mut JobResult,
    settings: &ExtractionSettings,
    source: Option<super::SettingsSource>,
) {
    result.settings_name = settings.name.clone();
    result.settings_hash = settings.hash();
    result.settings = Some(settings.clone());
    result.settings_source = Some(source.unwrap_or(super::SettingsSource::Service));
}

/// A series' instance blobs, fetched one at a time by a blocking thread (so a job, or a
/// STOW-RS re-assembly, holds one instance in memory, not the whole series).
pub struct BlobInstances {
    runtime: tokio::runtime::Handle,
    blobs: BlobStore,
    keys: Vec<String>,
}

impl BlobInstances {
    /// The blobs `keys` of `blobs`, read through the current runtime (call from within it;
    /// fetch only from a blocking thread).
    pub fn new(blobs: BlobStore, keys: Vec<String>) -> Self {
        let runtime = tokio::runtime::Handle::current();
        Self {
            runtime,
            blobs,
            keys,
        }
    }
}

impl InstanceSource for BlobInstances {
    fn count(&self) -> usize {
        self.keys.len()
    }

    /// Stored blobs never change under their key: an upload's blobs are written once
    /// under its own id, and ids are never reused.
    fn immutable_key(&self, index: usize) -> Option<&str> {
        self.keys.get(index).map(String::as_str)
    }

    fn fetch(&self, index: usize) -> Result<crate::dicom::InputFile, crate::dicom::DicomError> {
        let key = self.keys.get(index).map(String::as_str).unwrap_or_default();
        let name = key.rsplit('/').next().unwrap_or(key).to_string();
        // Called from `spawn_blocking`, never from a runtime thread, so blocking is allowed.
        match self.runtime.block_on(self.blobs.get(key)) {
            Ok(bytes) => Ok(crate::dicom::InputFile { name, bytes }),
            Err(e) => Err(crate::dicom::DicomError::Io {
                path: name,
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }
}

/// Every instance blob of a series, in memory (for the report's source headers).
pub async fn load_series_files(
    blobs: &BlobStore,
    prefix: &str,
) -> Result<Vec<crate::dicom::InputFile>, crate::store::StoreError> {
    let keys = blobs.list(prefix).await?;
    let contents = blobs.get_many(&keys).await?;
    let files = keys
        .iter()
        .zip(contents)
        .map(|(key, bytes)| crate::dicom::InputFile {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            bytes,
        })
        .collect();
    Ok(files)
}
