//! Feature robustness analysis: which features are reproducible at which lesion location.
//!
//! Each lesion is perturbed `k` times the way a test–retest study would see it
//! ([`perturb`]: rotation, translation, noise, ±1 voxel volume adaptation, supervoxel
//! contour randomisation), every perturbed lesion is re-extracted with the normal pipeline
//! and the location's settings profile, and for each location and feature the ICC(3,1)
//! with its 95 % confidence interval ([`icc`]) is computed over the lesions of that
//! location (subjects) and the `k` perturbations (raters). The same `k` perturbation
//! settings apply to every lesion, so the perturbations are fixed raters.
//!
//! Outputs ([`report`], [`heatmap`]): a table (CSV, JSON) of ICC, interval and class per
//! location and feature, and a PNG heat map (features × locations). Classes follow Koo T.K.,
//! Li M.Y., *A guideline of selecting and reporting intraclass correlation coefficients
//! for reliability research*, J. Chiropr. Med. 15(2), 2016 (doi:10.1016/j.jcm.2016.02.012):
//! ≥ 0.9 excellent, ≥ 0.75 good, both configurable.
//!
//! Deterministic: the perturbation settings come from the seed, and each lesion's noise
//! and contour draws from a stream derived from (seed, case, label, perturbation).

pub mod cases;
pub mod heatmap;
pub mod icc;
pub mod interval;
pub mod perturb;
pub mod report;
pub mod supervoxels;

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::features::{ExtractionSettings, Location};
use crate::image::{Segmentation, Volume};
use crate::pipeline::LesionRequest;
pub use perturb::Perturbation;
pub use report::{FeatureRobustness, LesionOutcome, RobustnessClass, RobustnessReport};

/// How strongly lesions are perturbed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerturbationLimits {
    /// Rotations are drawn uniformly from ±this, degrees, in the axial plane.
    pub max_rotation_deg: f64,
    /// Translations are drawn uniformly from ±this, voxels, per axis.
    pub max_translation_vox: f64,
    /// Standard deviation of the added Gaussian noise, HU (0 disables noise).
    pub noise_sd_hu: f64,
    /// Dilate / erode the mask by one voxel (the perturbations cycle −1, 0, +1).
    pub volume_adaptation: bool,
    /// Randomise the contour by supervoxels.
    pub contour_randomisation: bool,
}

impl Default for PerturbationLimits {
    /// ±10° and ±0.5 voxel (small repositioning between two scans), 10 HU noise (about the
    /// quantum noise of a soft-tissue CT region), volume adaptation and contour
    /// randomisation on.
    fn default() -> Self {
        PerturbationLimits {
            max_rotation_deg: 10.0,
            max_translation_vox: 0.5,
            noise_sd_hu: 10.0,
            volume_adaptation: true,
            contour_randomisation: true,
        }
    }
}

/// ICC thresholds of the robustness classes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// ICC at or above this is `good` (Koo & Li 2016: 0.75).
    pub good: f64,
    /// ICC at or above this is `excellent` (Koo & Li 2016: 0.9).
    pub excellent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            good: 0.75,
            excellent: 0.9,
        }
    }
}

/// Everything a robustness run is configured with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RobustnessOptions {
    /// Number of perturbations `k` (raters); at least 2.
    pub perturbations: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Perturbation strengths.
    pub limits: PerturbationLimits,
    /// Class thresholds.
    pub thresholds: Thresholds,
}

impl Default for RobustnessOptions {
    fn default() -> Self {
        RobustnessOptions {
            perturbations: 10,
            seed: 1,
            limits: PerturbationLimits::default(),
            thresholds: Thresholds::default(),
        }
    }
}

/// Why a robustness run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RobustnessError {
    #[error("at least 2 perturbations are needed for an ICC, {0} requested")]
    TooFewPerturbations(usize),
    #[error(
        "thresholds must satisfy 0 < good ≤ excellent ≤ 1, got good {good}, excellent {excellent}"
    )]
    Thresholds { good: f64, excellent: f64 },
    #[error("perturbation limits must be finite and ≥ 0: {0}")]
    Limits(&'static str),
}

/// One case: a volume, its segmentation and the lesions to analyse.
pub struct RobustnessCase {
    /// Identifier used in the report (not a patient identifier: e.g. `case-3`).
    pub case_id: String,
    pub volume: Volume,
    pub segmentation: Segmentation,
    pub lesions: Vec<LesionRequest>,
}

impl RobustnessOptions {
    /// Check the option values.
    ///
    /// # Errors
    /// [`RobustnessError`] naming the bad value.
    pub fn validate(&self) -> Result<(), RobustnessError> {
        if self.perturbations < 2 {
            return Err(RobustnessError::TooFewPerturbations(self.perturbations));
        }
        let Thresholds { good, excellent } = self.thresholds;
        if !(good > 0.0 && good <= excellent && excellent <= 1.0) {
            return Err(RobustnessError::Thresholds { good, excellent });
        }
        let l = &self.limits;
        for (value, name) in [
            (l.max_rotation_deg, "max_rotation_deg"),
            (l.max_translation_vox, "max_translation_vox"),
            (l.noise_sd_hu, "noise_sd_hu"),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(RobustnessError::Limits(name));
            }
        }
        Ok(())
    }
}

/// Perturb, re-extract and compute the ICC table. `progress` receives the fraction done.
///
/// # Errors
/// [`RobustnessError`] for invalid options; lesions that cannot be computed are reported
/// in the result (excluded), not as an error.
pub fn analyse(
    cases: &[RobustnessCase],
    settings: &ExtractionSettings,
    options: &RobustnessOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<RobustnessReport, RobustnessError> {
    options.validate()?;
    let perturbations = perturb::draw_perturbations(
        options.perturbations,
        &options.limits,
        &mut ChaCha8Rng::seed_from_u64(options.seed),
    );

    let total: usize = cases.iter().map(|c| c.lesions.len()).sum();
    let mut done = 0usize;
    let mut outcomes = Vec::with_capacity(total);
    let mut by_location: BTreeMap<Location, LocationTable> = BTreeMap::new();
    for (case_index, case) in cases.iter().enumerate() {
        for request in &case.lesions {
            let measured = measure_lesion(
                case,
                case_index,
                request,
                settings,
                &perturbations,
                options.seed,
            );
            match measured {
                Ok((names, ratings)) => {
                    by_location
                        .entry(request.location)
                        .or_insert_with(|| LocationTable::new(names))
                        .lesions
                        .push(ratings);
                    outcomes.push(LesionOutcome::included(case, request));
                }
                Err(reason) => outcomes.push(LesionOutcome::excluded(case, request, reason)),
            }
            done += 1;
            progress(done as f64 / total.max(1) as f64);
        }
    }

    let features = by_location
        .iter()
        .flat_map(|(location, table)| table.icc_rows(*location, &options.thresholds))
        .collect();
    Ok(RobustnessReport {
        settings_name: settings.name.clone(),
        settings_hash: settings.hash(),
        options: options.clone(),
        perturbations,
        lesions: outcomes,
        features,
    })
}

/// The lesions of one location: per lesion, per perturbation, every feature value.
struct LocationTable {
    names: Vec<String>,
    /// `lesions[i][j][f]`: lesion `i`, perturbation `j`, feature `f`.
    lesions: Vec<Vec<Vec<f64>>>,
}

impl LocationTable {
    fn new(names: Vec<String>) -> Self {
        LocationTable {
            names,
            lesions: Vec::new(),
        }
    }

    fn icc_rows(&self, location: Location, thresholds: &Thresholds) -> Vec<FeatureRobustness> {
        let k = self.lesions.first().map_or(0, Vec::len);
        self.names
            .iter()
            .enumerate()
            .map(|(f, name)| {
                let table: Vec<Vec<f64>> = self
                    .lesions
                    .iter()
                    .map(|lesion| lesion.iter().map(|values| values[f]).collect())
                    .collect();
                FeatureRobustness::new(
                    location,
                    name,
                    self.lesions.len(),
                    k,
                    icc::icc3_1(&table),
                    thresholds,
                )
            })
            .collect()
    }
}

/// Feature names and `[perturbation][feature]` values of one lesion, or why it is excluded.
fn measure_lesion(
    case: &RobustnessCase,
    case_index: usize,
    request: &LesionRequest,
    settings: &ExtractionSettings,
    perturbations: &[Perturbation],
    seed: u64,
) -> Result<(Vec<String>, Vec<Vec<f64>>), String> {
    let lesion = case
        .segmentation
        .lesions
        .iter()
        .find(|l| l.label == request.label)
        .ok_or_else(|| format!("label {} is not present in the segmentation", request.label))?;
    let profile = settings.for_location(request.location);
    let mut names = Vec::new();
    let mut ratings = Vec::with_capacity(perturbations.len());
    for (j, p) in perturbations.iter().enumerate() {
        let mut rng = lesion_rng(seed, case_index, request.label, j);
        let perturbed = perturb::perturb_lesion(&case.volume, lesion, p, &mut rng);
        let features = crate::pipeline::compute_lesion(&perturbed.volume, &perturbed.mask, profile)
            .map_err(|e| format!("perturbation {j}: {e}"))?;
        if names.is_empty() {
            names = features.iter().map(|f| f.name.clone()).collect();
        }
        ratings.push(features.iter().map(|f| f.value).collect());
    }
    Ok((names, ratings))
}

/// The random stream of one (case, lesion, perturbation), independent of processing order.
fn lesion_rng(seed: u64, case_index: usize, label: u32, perturbation: usize) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(b"radscore-robustness");
    hasher.update(seed.to_le_bytes());
    hasher.update((case_index as u64).to_le_bytes());
    hasher.update(label.to_le_bytes());
    hasher.update((perturbation as u64).to_le_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}
