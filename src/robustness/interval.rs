//! Prediction intervals: how much a lesion's probability moves under the small changes a
//! repeat scan or a second reader would make.
//!
//! Each lesion is perturbed `n` times with the test–retest perturbations of [`super::perturb`]
//! restricted to the cheap, reader-like ones: ±1 voxel mask erosion / dilation (cycling
//! −1, 0, +1), sub-voxel translations and additive Gaussian noise (no rotation, no
//! supervoxel contour randomisation). Only the features the lesion's model uses are
//! re-extracted ([`restrict_to`]); the model scores every perturbed row and the interval
//! is the spread of those scores ([`PredictionInterval::from_scores`]): minimum, maximum
//! and the 5 % and 95 % quantiles (linear interpolation between order statistics, as
//! `numpy.quantile`'s default `linear` method, Hyndman & Fan 1996 type 7).
//!
//! Deterministic: the perturbation settings come from [`INTERVAL_SEED`], each lesion's
//! noise from a stream derived from its label and the perturbation index, so re-running a
//! job gives the same interval.
//!
//! Cost: `n` re-extractions of the used feature families per lesion; the job option
//! `prediction_interval.perturbations` (default [`DEFAULT_INTERVAL_PERTURBATIONS`], at
//! most [`MAX_INTERVAL_PERTURBATIONS`], 0 turns it off) bounds it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::PerturbationLimits;
use super::perturb::{Perturbation, draw_perturbations, perturb_lesion};
use crate::features::{self, FamilySettings};
use crate::image::{LesionMask, Volume};

/// Perturbations per lesion when the job does not say (each costs one re-extraction of
/// the used feature families).
pub const DEFAULT_INTERVAL_PERTURBATIONS: usize = 8;

/// Most perturbations a job may ask for per lesion.
pub const MAX_INTERVAL_PERTURBATIONS: usize = 32;

/// Seed of the perturbation settings and noise streams.
pub const INTERVAL_SEED: u64 = 0x7261_6473_636f_7265;

/// Lower and upper quantile of the reported interval.
pub const INTERVAL_QUANTILES: (f64, f64) = (0.05, 0.95);

/// The method string results carry, so a reader knows what the interval means.
pub const INTERVAL_METHOD: &str = "perturbation re-scoring: ±1 voxel mask erosion/dilation, \
     ±0.5 voxel translation, 10 HU Gaussian noise; quantiles by linear interpolation";

/// The perturbation strengths of an interval (a subset of the robustness analysis'):
/// ±0.5 voxel translation, 10 HU noise (quantum noise of a soft-tissue CT region), ±1
/// voxel volume adaptation; no rotation or contour randomisation.
pub fn interval_limits() -> PerturbationLimits {
    PerturbationLimits {
        max_rotation_deg: 0.0,
        max_translation_vox: 0.5,
        noise_sd_hu: 10.0,
        volume_adaptation: true,
        contour_randomisation: false,
    }
}

/// The job option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalOptions {
    /// Perturbations per scored lesion; 0 turns the interval off.
    pub perturbations: usize,
}

impl Default for IntervalOptions {
    fn default() -> Self {
        IntervalOptions {
            perturbations: DEFAULT_INTERVAL_PERTURBATIONS,
        }
    }
}

impl IntervalOptions {
    /// Check the bound.
    ///
    /// # Errors
    /// The reason, naming the limit.
    pub fn validate(&self) -> Result<(), String> {
        if self.perturbations > MAX_INTERVAL_PERTURBATIONS {
            return Err(format!(
                "prediction_interval.perturbations is {}; at most {MAX_INTERVAL_PERTURBATIONS} \
                 (0 turns the interval off)",
                self.perturbations
            ));
        }
        Ok(())
    }
}

/// The interval of one lesion's probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionInterval {
    /// See [`INTERVAL_METHOD`].
    pub method: String,
    /// Perturbations requested.
    pub perturbations: usize,
    /// Perturbations whose features could be computed and scored (the interval is over
    /// these).
    pub scored: usize,
    pub min: f64,
    pub max: f64,
    /// 5 % quantile of the perturbed probabilities.
    pub q05: f64,
    /// 95 % quantile of the perturbed probabilities.
    pub q95: f64,
}

impl PredictionInterval {
    /// The interval of the perturbed probabilities `scores` out of `requested`
    /// perturbations; `None` when none was scored.
    pub fn from_scores(requested: usize, scores: &[f64]) -> Option<PredictionInterval> {
        let mut sorted: Vec<f64> = scores.iter().copied().filter(|p| p.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let (first, last) = (*sorted.first()?, *sorted.last()?);
        Some(PredictionInterval {
            method: INTERVAL_METHOD.to_owned(),
            perturbations: requested,
            scored: sorted.len(),
            min: first,
            max: last,
            q05: quantile_sorted(&sorted, INTERVAL_QUANTILES.0),
            q95: quantile_sorted(&sorted, INTERVAL_QUANTILES.1),
        })
    }
}

/// The `q` quantile of ascending, non-empty `sorted` by linear interpolation between the
/// order statistics at `h = (n − 1)·q` (Hyndman & Fan 1996 type 7, `numpy.quantile`'s
/// default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The perturbations of every interval, `count` of them.
pub fn interval_perturbations(count: usize) -> Vec<Perturbation> {
    draw_perturbations(
        count,
        &interval_limits(),
        &mut ChaCha8Rng::seed_from_u64(INTERVAL_SEED),
    )
}

/// `settings` computing only what `used` needs: the families (and filtered images, with
/// their families) that produce at least one of the names in `used`.
pub fn restrict_to(settings: &FamilySettings, used: &[String]) -> FamilySettings {
    let wanted = |names: Vec<String>| names.iter().any(|n| used.contains(n));
    let mut out = settings.clone();
    out.families = features::enabled(settings)
        .filter(|family| wanted((family.names)(settings)))
        .map(|family| family.name.to_owned())
        .collect();
    out.image_filters.images = settings
        .image_filters
        .images
        .iter()
        .filter_map(|image| {
            let image_type = image.filter.image_type();
            let on_image = settings.for_filtered(image);
            let families: Vec<String> = features::enabled(&on_image)
                .filter(|family| {
                    wanted(
                        (family.names)(&on_image)
                            .into_iter()
                            .map(|n| features::filtered_name(&image_type, &n))
                            .collect(),
                    )
                })
                .map(|family| family.name.to_owned())
                .collect();
            (!families.is_empty()).then(|| {
                let mut kept = image.clone();
                kept.families = families;
                kept
            })
        })
        .collect();
    out
}

/// The model rows (`used` in order) of `lesion` under each perturbation; a perturbation
/// whose features cannot be computed (e.g. an erosion that leaves too few voxels) is
/// `None`. `settings` should already be [`restrict_to`] `used`. Once `stop` answers true
/// the remaining perturbations are `None` without being computed.
pub fn perturbed_rows(
    volume: &Volume,
    lesion: &LesionMask,
    settings: &FamilySettings,
    used: &[String],
    perturbations: &[Perturbation],
    stop: &(dyn Fn() -> bool + Sync),
) -> Vec<Option<Vec<f64>>> {
    perturbations
        .iter()
        .enumerate()
        .map(|(j, p)| {
            // A stopped job discards its rows; the rest are not worth computing.
            if stop() {
                return None;
            }
            let mut rng = lesion_rng(lesion.label, j);
            let perturbed = perturb_lesion(volume, lesion, p, &mut rng);
            let values =
                crate::pipeline::compute_lesion(&perturbed.volume, &perturbed.mask, settings)
                    .ok()?;
            used.iter()
                .map(|name| values.iter().find(|f| &f.name == name).map(|f| f.value))
                .collect()
        })
        .collect()
}

/// The noise stream of one (lesion, perturbation).
fn lesion_rng(label: u32, perturbation: usize) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(b"radscore-interval");
    hasher.update(INTERVAL_SEED.to_le_bytes());
    hasher.update(label.to_le_bytes());
    hasher.update((perturbation as u64).to_le_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `numpy.quantile(x, q)` (method `linear`, numpy 2.x) for the values below, computed
    /// with the pinned numpy of `.venv`.
    #[test]
    fn quantiles_match_numpy() {
        let x = [0.42, 0.17, 0.93, 0.55, 0.61, 0.08, 0.77, 0.30];
        let mut sorted = x.to_vec();
        sorted.sort_by(f64::total_cmp);
        for (q, numpy) in NUMPY_QUANTILES {
            let got = quantile_sorted(&sorted, q);
            assert!((got - numpy).abs() < 1e-12, "q={q}: {got} vs numpy {numpy}");
        }
        let interval = PredictionInterval::from_scores(10, &x).unwrap();
        assert_eq!((interval.min, interval.max), (0.08, 0.93));
        assert_eq!((interval.perturbations, interval.scored), (10, 8));
        assert!((interval.q05 - NUMPY_QUANTILES[1].1).abs() < 1e-12);
        assert!((interval.q95 - NUMPY_QUANTILES[3].1).abs() < 1e-12);
    }

    /// (q, numpy.quantile([0.42, 0.17, 0.93, 0.55, 0.61, 0.08, 0.77, 0.30], q)), numpy 2.4.6.
    const NUMPY_QUANTILES: [(f64, f64); 5] = [
        (0.0, 0.08),
        (0.05, 0.11150000000000002),
        (0.5, 0.485),
        (0.95, 0.874),
        (1.0, 0.93),
    ];

    #[test]
    fn no_scores_no_interval_and_one_score_is_a_point() {
        assert!(PredictionInterval::from_scores(4, &[]).is_none());
        assert!(PredictionInterval::from_scores(4, &[f64::NAN]).is_none());
        let one = PredictionInterval::from_scores(4, &[0.3]).unwrap();
        assert_eq!((one.min, one.q05, one.q95, one.max), (0.3, 0.3, 0.3, 0.3));
    }

    #[test]
    fn options_are_bounded() {
        assert!(IntervalOptions::default().validate().is_ok());
        let too_many = IntervalOptions {
            perturbations: MAX_INTERVAL_PERTURBATIONS + 1,
        };
        assert!(too_many.validate().unwrap_err().contains("at most"));
    }

    #[test]
    fn perturbations_are_reader_like_and_cycle_the_volume_change() {
        let p = interval_perturbations(6);
        assert_eq!(p, interval_perturbations(6), "deterministic");
        let changes: Vec<i32> = p.iter().map(|p| p.volume_change_vox).collect();
        assert_eq!(changes, [-1, 0, 1, -1, 0, 1]);
        for p in &p {
            assert_eq!(p.rotation_deg, 0.0);
            assert!(!p.contour_randomisation);
            assert!(p.translation_vox.iter().all(|t| t.abs() <= 0.5));
            assert_eq!(p.noise_sd_hu, 10.0);
        }
    }

    #[test]
    fn restriction_keeps_only_the_families_of_the_used_features() {
        let settings = crate::features::ExtractionSettings::bundled();
        let base = settings.for_location(crate::features::Location::Other);
        let used = vec!["stat_mean".to_string(), "morph_volume".to_string()];
        let restricted = restrict_to(base, &used);
        let names = crate::features::feature_names(&restricted);
        for u in &used {
            assert!(names.contains(u), "{u} in {names:?}");
        }
        assert!(
            restricted.families.len() < base.families.len(),
            "{:?}",
            restricted.families
        );
        assert!(restricted.image_filters.images.is_empty());
    }
}
