//! The extraction benchmark (issue #3): wall time and peak memory of the path a job takes
//! from a stored series to features, stage by stage.
//!
//! [`run`] does what a worker does with a job ([`crate::jobs::worker`]), minus the database
//! and the model: read the series' DICOM headers, one file per rayon thread (the worker
//! fetches them from the blob store) and check the stack geometry, map the segmentation
//! onto the series grid, decode the series into its 16-bit volume, again one file per
//! thread, and extract
//! every lesion with [`pipeline::extract_lesions`] (per-lesion `f32` crop, optional
//! resampling, re-segmentation, every enabled family). After each stage it records the
//! elapsed time and the process's peak resident set so far (`VmHWM`).
//!
//! `radscore bench generate` writes the synthetic 512 × 512 × 300 CT
//! ([`crate::demo::generate_bench_ct`]) and `radscore bench run` measures one case in its
//! own process, so the peak belongs to the extraction alone; `scripts/bench.sh extraction`
//! drives both and writes `docs/benchmarks.md`. The criterion benchmark
//! (`benches/extraction.rs`) times the feature stage alone, repeatedly.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::dicom::{GeometryPolicy, MaskTarget};
use crate::features::settings::TextureAggregation;
use crate::features::{self, ExtractionSettings};
use crate::pipeline::{self, LesionRequest};

/// Bytes per stored CT sample: CT Image Storage stores 16-bit samples (BitsAllocated 16,
/// as both benchmark series do), so "volume size" = voxels × 2 bytes.
pub const STORED_BYTES_PER_VOXEL: u64 = 2;

/// Bytes per KiB, as `/proc/self/status` counts.
const BYTES_PER_KIB: u64 = 1024;

/// Which features the benchmark extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSet {
    /// The bundled location profiles as they are: what a job computes.
    Job,
    /// Every IBSI 1 family (morphology, local intensity, statistics, histogram, IVH, GLCM,
    /// GLRLM, GLSZM, GLDZM, NGTDM, NGLDM) in the 3D aggregations, with each location's
    /// re-segmentation and discretisation.
    Ibsi,
}

impl FeatureSet {
    /// The settings for this feature set, derived from `base` (the bundled settings).
    pub fn settings(self, base: &ExtractionSettings) -> ExtractionSettings {
        let mut settings = base.clone();
        if self == FeatureSet::Ibsi {
            settings.name = format!("{} (all IBSI 1 families)", base.name);
            for profile in settings.profiles.values_mut() {
                profile.families = features::ibsi_families()
                    .map(|f| f.name.to_string())
                    .collect();
                profile.texture_aggregations =
                    vec![TextureAggregation::D3Avg, TextureAggregation::D3Comb];
            }
        }
        settings
    }
}

/// One stage of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// What the stage does.
    pub name: &'static str,
    /// Its wall time, seconds.
    pub seconds: f64,
    /// Peak resident set of the process at its end (`VmHWM`), bytes; `None` off Linux.
    pub peak_rss_bytes: Option<u64>,
}

/// One lesion's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct LesionOutcome {
    /// Label in the segmentation.
    pub label: u32,
    /// Location (settings profile).
    pub location: &'static str,
    /// Voxels in the lesion mask on the series grid.
    pub voxels: usize,
    /// Lesion volume from the voxel count, cm³.
    pub volume_cm3: f64,
    /// Features computed, or 0.
    pub features: usize,
    /// The error code when the lesion failed.
    pub error: Option<String>,
}

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Series grid `[z, y, x]`.
    pub shape_vox: [usize; 3],
    /// Series spacing `[z, y, x]`, mm.
    pub spacing_mm: [f64; 3],
    /// Volume size: the stored series' pixel bytes (voxels × [`STORED_BYTES_PER_VOXEL`]).
    pub volume_bytes: u64,
    /// The feature set extracted.
    pub feature_set: FeatureSet,
    /// Threads rayon uses (`RAYON_NUM_THREADS` or the number of CPUs).
    pub threads: usize,
    /// Stages in order.
    pub stages: Vec<Stage>,
    /// Per lesion, in request order.
    pub lesions: Vec<LesionOutcome>,
    /// Wall time from the start of reading to the last feature, seconds.
    pub total_seconds: f64,
    /// Peak resident set of the whole process, bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// The process's peak resident set size so far (`VmHWM` of `/proc/self/status`), bytes;
/// `None` where that file does not exist (not Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * BYTES_PER_KIB)
}

/// Measure one case: DICOM series directory `series_dir`, segmentation file `mask`
/// (any format radscore reads), the lesions to extract and the settings. Every lesion of
/// the segmentation when `requests` is empty (location `other`).
///
/// # Errors
/// Unreadable files, a series or segmentation that does not load.
pub fn run(
    series_dir: &Path,
    mask: &Path,
    requests: &[LesionRequest],
    settings: &ExtractionSettings,
    feature_set: FeatureSet,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut stages = Vec::new();
    let mut stage = |name: &'static str, since: Instant| {
        stages.push(Stage {
            name,
            seconds: since.elapsed().as_secs_f64(),
            peak_rss_bytes: peak_rss_bytes(),
        });
        Instant::now()
    };

    let t = Instant::now();
    let files = crate::dicom::file_refs_from_dir(series_dir)?;
    let plan = crate::dicom::plan_series(files.as_slice(), GeometryPolicy::Refuse)?;
    let t = stage("read the series headers and check the stack geometry", t);

    let mask_bytes = std::fs::read(mask).with_context(|| format!("reading {}", mask.display()))?;
    let summary = plan.summary();
    let (_, seg) = pipeline::read_segmentation_on(
        &mask_bytes,
        mask.file_name().and_then(|n| n.to_str()),
        MaskTarget::new(&summary.grid, summary.acquired.as_ref()),
        summary.frame_of_reference_uid.as_deref(),
    )?;
    drop(mask_bytes);
    let t = stage("map the segmentation onto the series grid", t);

    let series = plan.decode(files.as_slice())?;
    let t = stage("decode the series into the volume, one file per thread", t);

    let requests: Vec<LesionRequest> = if requests.is_empty() {
        seg.lesions
            .iter()
            .map(|l| LesionRequest {
                label: l.label,
                location: features::Location::Other,
            })
            .collect()
    } else {
        requests.to_vec()
    };
    let lesions = pipeline::extract_lesions(&series.volume, &seg, &requests, settings, &|_| {});
    stage("extract the features of every lesion", t);

    let grid = &series.volume.grid;
    let voxel_cm3 = grid.spacing_mm.iter().product::<f64>() / 1000.0;
    Ok(Report {
        shape_vox: grid.shape_vox,
        spacing_mm: grid.spacing_mm,
        volume_bytes: grid.shape_vox.iter().map(|&n| n as u64).product::<u64>()
            * STORED_BYTES_PER_VOXEL,
        feature_set,
        threads: rayon::current_num_threads(),
        stages,
        lesions: lesions
            .iter()
            .map(|l| LesionOutcome {
                label: l.request.label,
                location: l.request.location.as_str(),
                voxels: l.voxel_count,
                volume_cm3: l.voxel_count as f64 * voxel_cm3,
                features: l.features.as_ref().map_or(0, Vec::len),
                error: l.features.as_ref().err().map(|e| e.code.clone()),
            })
            .collect(),
        total_seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = peak_rss_bytes().expect("VmHWM in /proc/self/status");
            // A test process holds at least its own code.
            assert!(rss > 1 << 20, "{rss}");
        }
    }

    #[test]
    fn the_ibsi_set_enables_every_ibsi_family_in_every_profile() {
        let bundled = ExtractionSettings::bundled();
        assert_eq!(FeatureSet::Job.settings(&bundled), bundled);
        let ibsi = FeatureSet::Ibsi.settings(&bundled);
        let all: Vec<&str> = features::ibsi_families().map(|f| f.name).collect();
        assert_eq!(all.len(), 11);
        for profile in ibsi.profiles.values() {
            assert!(all.iter().all(|f| profile.enables(f)));
            assert!(!profile.enables("pyradiomics_energy"));
        }
        // Re-segmentation and discretisation stay the location's own.
        assert_eq!(
            ibsi.for_location(features::Location::LymphNode)
                .resegment_range_hu,
            bundled
                .for_location(features::Location::LymphNode)
                .resegment_range_hu
        );
    }
}
