//! The DICOM SR report of a succeeded job, built from its stored result, series and
//! segmentation (see [`crate::sr`] for the report itself). Used by `GET
//! /v1/jobs/{id}/result.dcm` and by the DICOMweb push after a job succeeds.

use crate::pipeline::SegmentationFormat;
use crate::sr::{self, SegmentationKind, SrError};
use crate::store::{BlobStore, Db, JobRow, StoreError};

use super::JobResult;

/// Why a job has no report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The job has not succeeded (its status is given).
    #[error("job is {0}")]
    NotSucceeded(String),
    #[error("stored data for the report is missing: {0}")]
    Missing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sr(#[from] SrError),
    #[error("the report task was aborted: {0}")]
    Aborted(String),
}

/// Build the report of `job` (which must have succeeded) as a DICOM Part 10 file.
pub async fn report_for_job(
    db: &Db,
    blobs: &BlobStore,
    job: &JobRow,
) -> Result<Vec<u8>, ReportError> {
    let (Some(result_json), Some(finished_at_ms)) = (&job.result, job.finished_at_ms) else {
        return Err(ReportError::NotSucceeded(job.status.clone()));
    };
    if job.status != "succeeded" {
        return Err(ReportError::NotSucceeded(job.status.clone()));
    }
    let result: JobResult = serde_json::from_str(result_json).map_err(StoreError::Json)?;
    let series = db
        .series(&job.tenant_id, &job.series_id)
        .await?
        .ok_or_else(|| ReportError::Missing(format!("series {}", job.series_id)))?;
    let seg = db
        .segmentation(&job.tenant_id, &job.segmentation_id)
        .await?
        .ok_or_else(|| ReportError::Missing(format!("segmentation {}", job.segmentation_id)))?;
    let files = super::worker::load_series_files(blobs, &series.blob_prefix).await?;
    let kind = match seg.format.as_str() {
        f if f == SegmentationFormat::DicomSeg.as_str() => Some(SegmentationKind::Seg),
        f if f == SegmentationFormat::DicomRtStruct.as_str() => Some(SegmentationKind::RtStruct),
        _ => None,
    };
    let seg_bytes = match kind {
        Some(_) => Some(blobs.get(&seg.blob_key).await?),
        None => None,
    };

    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ReportError> {
        let bytes: Vec<&[u8]> = files.iter().map(|f| f.bytes.as_ref()).collect();
        let source = sr::source::read_source_series(&bytes)?;
        let segmentation = match (kind, &seg_bytes) {
            (Some(kind), Some(b)) => Some(sr::source::read_segmentation_ref(b, kind)?),
            _ => None,
        };
        Ok(sr::build_report(&sr::ReportInput {
            result: &result,
            source: &source,
            segmentation: segmentation.as_ref(),
            finished_at_ms,
        })?)
    })
    .await
    .map_err(|e| ReportError::Aborted(e.to_string()))?
}
