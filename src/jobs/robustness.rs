//! Robustness jobs (`POST /v1/robustness`): the [`crate::robustness`] analysis of one
//! stored series and segmentation, run by the same workers, leases, retries and
//! cancellation as extraction jobs.
//!
//! The job's result is the [`RobustnessReport`] as JSON, the document `radscore robustness`
//! writes as `robustness.json` (the case is `case-1`, as the CLI names a `--series` case).
//! Its CSV table and PNG heat map are written from the same in-memory report by the CLI's
//! own writers into the blob store ([`artefact_key`]) before the job succeeds. (Rendering
//! them later from the stored JSON would not do: serde_json's default float parsing may
//! be one ulp off, and the CSV would then differ from the CLI's.)
//! Progress advances after every perturbation of every lesion, and a cancelled job stops
//! at the next perturbation instead of running to its end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::worker::{JobContext, decode_case, load_inputs};
use super::{JobError, SettingsSource};
use crate::features::ExtractionSettings;
use crate::pipeline::LesionRequest;
use crate::robustness::heatmap::{self, HeatmapError};
use crate::robustness::{RobustnessCase, RobustnessError, RobustnessOptions, RobustnessReport};
use crate::store::{BlobStore, JobRow};

/// File name of the CSV table among a job's artefacts (as the CLI names it).
pub const CSV_ARTEFACT: &str = "robustness.csv";

/// File name of the heat map among a job's artefacts (as the CLI names it).
pub const PNG_ARTEFACT: &str = "robustness.png";

/// Blob key of the artefact `name` of job `job_id`.
pub fn artefact_key(job_id: &str, name: &str) -> String {
    format!("jobs/{job_id}/{name}")
}

/// The case id of the job's one case in its report (as `radscore robustness --series`).
pub const CASE_ID: &str = "case-1";

/// A validated robustness job request, as stored in the job row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessRequest {
    /// The series to perturb.
    pub series_id: String,
    /// The segmentation (bound to that series) holding the lesions.
    pub segmentation_id: String,
    /// Lesions (ICC subjects) with the location they are grouped by.
    pub lesions: Vec<LesionRequest>,
    /// Perturbations, seed, perturbation strengths and class thresholds.
    pub options: RobustnessOptions,
    /// The extraction settings the perturbed lesions are re-extracted with (recorded when
    /// the job is created).
    pub settings: ExtractionSettings,
    /// Where [`RobustnessRequest::settings`] came from.
    pub settings_source: SettingsSource,
}

/// Load the job's case, perturb and re-extract its lesions, compute the ICC table and
/// store its CSV table and heat map. `progress` receives the fraction done; once `stop` is
/// set (the job was cancelled or its lease lost) the analysis ends at the next perturbation.
///
/// # Errors
/// [`JobError`] for missing or unreadable inputs, an invalid stored request, a stop, or a
/// failure to draw or store the artefacts.
#[tracing::instrument(skip_all)]
pub async fn run(
    ctx: &Arc<JobContext>,
    job: &JobRow,
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<RobustnessReport, JobError> {
    let request: RobustnessRequest =
        serde_json::from_str(&job.request).map_err(|e| JobError::Request(e.to_string()))?;
    let inputs = load_inputs(ctx, job).await?;
    let policy = crate::api::series::policy_of_row(&inputs.series_row);
    tracing::info!(
        lesions = request.lesions.len(),
        perturbations = request.options.perturbations,
        "robustness analysis started"
    );

    let (report, csv, png) = tokio::task::spawn_blocking(move || {
        let file_name = inputs.seg_row.file_name.as_deref();
        let (series, segmentation) =
            decode_case(&inputs.files, inputs.seg_bytes, file_name, policy)?;
        let case = RobustnessCase {
            case_id: CASE_ID.into(),
            volume: series.volume,
            segmentation,
            lesions: request.lesions,
        };
        // Monotone: for non-negative floats the bit patterns order like the values.
        let mut report = |p: f64| {
            progress.fetch_max(p.to_bits(), Ordering::Relaxed);
        };
        let stopped = || stop.load(Ordering::Relaxed);
        let report = crate::robustness::analyse_until(
            std::slice::from_ref(&case),
            &request.settings,
            &request.options,
            &mut report,
            &stopped,
        )
        .map_err(|e| match e {
            RobustnessError::Stopped => {
                JobError::Aborted("the job was cancelled or lost its lease".into())
            }
            other => JobError::Request(other.to_string()),
        })?;
        let (csv, png) = render(&report)?;
        Ok::<_, JobError>((report, csv, png))
    })
    .await
    .map_err(|e| JobError::Aborted(e.to_string()))??;

    // LIMITATION: artefacts of an attempt whose lease is lost afterwards stay in the blob
    // store (a few hundred kB per job), as the job row keeps no result pointing at them.
    store_artefacts(&ctx.blobs, &job.id, csv, png).await?;
    Ok(report)
}

/// The CSV table and, when the report has rows, the PNG heat map, as the CLI writes them.
fn render(report: &RobustnessReport) -> Result<(Vec<u8>, Option<Vec<u8>>), JobError> {
    let artefact_error = |e: &dyn std::fmt::Display| JobError::Result(e.to_string());
    let mut csv = Vec::new();
    report.write_csv(&mut csv).map_err(|e| artefact_error(&e))?;
    // The heat map writer draws into a file (the CLI's path); read it back.
    let dir = tempfile::tempdir().map_err(|e| artefact_error(&e))?;
    let path = dir.path().join(PNG_ARTEFACT);
    let png = match heatmap::write_png(report, &path) {
        Ok(()) => Some(std::fs::read(&path).map_err(|e| artefact_error(&e))?),
        // No ICC at all: the CLI draws no heat map either; the JSON says why.
        Err(HeatmapError::Empty) => None,
        Err(e) => return Err(artefact_error(&e)),
    };
    Ok((csv, png))
}

async fn store_artefacts(
    blobs: &BlobStore,
    job_id: &str,
    csv: Vec<u8>,
    png: Option<Vec<u8>>,
) -> Result<(), JobError> {
    let key = artefact_key(job_id, CSV_ARTEFACT);
    blobs.put(&key, csv.into()).await?;
    if let Some(png) = png {
        let key = artefact_key(job_id, PNG_ARTEFACT);
        blobs.put(&key, png.into()).await?;
    }
    Ok(())
}
