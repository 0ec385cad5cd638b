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
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::features::{ExtractionSettings, Location};
use crate::image::{Segmentation, Volume};
use crate::pipeline::LesionRequest;
pub use perturb::Perturbation;
pub use report::{FeatureRobustness, LesionOutcome, RobustnessClass, RobustnessReport};

/// Most perturbations of one run: each one re-extracts every lesion, so this bounds the
/// work one request (CLI or API job) can ask for at 100 extractions per lesion.
pub const MAX_PERTURBATIONS: usize = 100;

/// How strongly lesions are perturbed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[error("at most {MAX_PERTURBATIONS} perturbations are allowed, {0} requested")]
    TooManyPerturbations(usize),
    #[error("the analysis was stopped before it finished")]
    Stopped,
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
        if self.perturbations > MAX_PERTURBATIONS {
            return Err(RobustnessError::TooManyPerturbations(self.perturbations));
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

/// Perturb, re-extract and compute the ICC table. `progress` receives the fraction done
/// after every perturbation of every lesion.
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
    analyse_until(cases, settings, options, progress, &|| false)
}

/// [`analyse`] that gives up between two perturbations once `stop` answers `true` (a job
/// that was cancelled or lost its lease).
///
/// # Errors
/// As [`analyse`]; [`RobustnessError::Stopped`] when `stop` ended the run.
pub fn analyse_until(
    cases: &[RobustnessCase],
    settings: &ExtractionSettings,
    options: &RobustnessOptions,
    progress: &mut dyn FnMut(f64),
    stop: &dyn Fn() -> bool,
) -> Result<RobustnessReport, RobustnessError> {
    options.validate()?;
    let perturbations = perturb::draw_perturbations(
        options.perturbations,
        &options.limits,
        &mut ChaCha8Rng::seed_from_u64(options.seed),
    );

    let total = cases.iter().map(|c| c.lesions.len()).sum::<usize>() * perturbations.len();
    let mut done = 0usize;
    let mut tick = || -> Result<(), RobustnessError> {
        done += 1;
        progress(done as f64 / total.max(1) as f64);
        if stop() {
            return Err(RobustnessError::Stopped);
        }
        Ok(())
    };
    let mut outcomes = Vec::new();
    let mut by_location: BTreeMap<Location, LocationTable> = BTreeMap::new();
    for (case_index, case) in cases.iter().enumerate() {
        for request in &case.lesions {
            let lesion = LesionRun {
                case,
                case_index,
                request,
                seed: options.seed,
            };
            match lesion.measure(settings, &perturbations, &mut tick)? {
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
type Measured = Result<(Vec<String>, Vec<Vec<f64>>), String>;

/// One lesion of one case, measured under every perturbation.
struct LesionRun<'a> {
    case: &'a RobustnessCase,
    case_index: usize,
    request: &'a LesionRequest,
    seed: u64,
}

impl LesionRun<'_> {
    /// Re-extract the lesion under each perturbation; `tick` runs after each one and ends
    /// the run when it fails (the outer `Err`). Every perturbation is ticked, also those
    /// skipped after the lesion is excluded, so progress counts perturbations evenly.
    fn measure(
        &self,
        settings: &ExtractionSettings,
        perturbations: &[Perturbation],
        tick: &mut dyn FnMut() -> Result<(), RobustnessError>,
    ) -> Result<Measured, RobustnessError> {
        let mut measured: Measured = self.lesion().map(|_| (Vec::new(), Vec::new()));
        for (j, p) in perturbations.iter().enumerate() {
            if let Ok((names, ratings)) = &mut measured {
                match self.extract(settings, p, j) {
                    Ok(features) => {
                        if names.is_empty() {
                            *names = features.iter().map(|f| f.name.clone()).collect();
                        }
                        ratings.push(features.iter().map(|f| f.value).collect());
                    }
                    Err(reason) => measured = Err(reason),
                }
            }
            tick()?;
        }
        Ok(measured)
    }

    fn lesion(&self) -> Result<&crate::image::LesionMask, String> {
        let label = self.request.label;
        self.case
            .segmentation
            .lesions
            .iter()
            .find(|l| l.label == label)
            .ok_or_else(|| format!("label {label} is not present in the segmentation"))
    }

    /// The features of perturbation number `j`.
    fn extract(
        &self,
        settings: &ExtractionSettings,
        p: &Perturbation,
        j: usize,
    ) -> Result<Vec<crate::features::Feature>, String> {
        let lesion = self.lesion()?;
        let profile = settings.for_location(self.request.location);
        let mut rng = lesion_rng(self.seed, self.case_index, self.request.label, j);
        let perturbed = perturb::perturb_lesion(&self.case.volume, lesion, p, &mut rng);
        crate::pipeline::compute_lesion(&perturbed.volume, &perturbed.mask, profile)
            .map_err(|e| format!("perturbation {j}: {e}"))
    }
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
