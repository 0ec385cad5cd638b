//! Intensity-volume histogram features (IBSI 1 section 3.5, family P88C, tags `ivh_*`).
//!
//! Input: the intensities (HU) of the intensity-mask voxels and
//! [`FamilySettings::ivh_discretisation`]. Output: `V10`, `V90`, `I10`, `I90`, their
//! differences and the area under the IVH curve (IBSI 3.5.7). IBSI gives the area no
//! reference value ("not standardised"); radscore integrates `ν(γ)` by the trapezoidal
//! rule over the grid points `γ_j` of the total range, and tests check it by hand.
//!
//! IBSI 3.5 turns the intensities into discretised intensities `X_d,gl` on a grid of
//! step `w_d` over a total range `G`:
//!
//! * `None` (discrete calibrated intensities, e.g. CT HU): `X_d,gl` = the intensities
//!   rounded to the nearest integer, `w_d = 1`, `G` = the re-segmentation range if set,
//!   else `[min X, max X]`.
//! * fixed bin size `w_b`: `X_gl,min` = the explicit lower bound, else the lower
//!   re-segmentation bound, else `min X`; `X_gl,max` = the upper re-segmentation bound,
//!   else `max X`. Bin numbers `X_d = ⌊(X − X_gl,min)/w_b⌋ + 1` become bin centres
//!   `X_d,gl = X_gl,min + (X_d − 0.5)·w_b`; `G = [X_gl,min + w_b/2, X_gl,max − w_b/2]`,
//!   `w_d = w_b`.
//! * fixed bin number `N_g` (arbitrary units): `X_d,gl = X_d ∈ 1 … N_g` over the ROI's
//!   range, `G = [1, N_g]`, `w_d = 1`.
//!
//! At every grid intensity `i` the volume fraction is `ν_i = 1 − #{X_d,gl < i} / N_v` and
//! the intensity fraction `γ_i = (i − min G) / (max G − min G)`. Computation runs on
//! integer grid indices, so no floating-point comparison decides a bin.
//!
//! Undefined: a total range of zero width (`max G = min G`, one discretised intensity)
//! gives no intensity fraction, so the family returns [`FeatureError::Undefined`].

use super::{Discretisation, FamilySettings, Feature, FeatureError, Roi};

/// Feature tags in output order (IBSI 3.5.1 – 3.5.6).
pub const TAGS: [&str; 7] = [
    "ivh_v10",
    "ivh_v90",
    "ivh_i10",
    "ivh_i90",
    "ivh_diff_v10_v90",
    "ivh_diff_i10_i90",
    "ivh_auc",
];

/// The intensity fraction of `V10` and the volume fraction of `I10`, percent
/// (IBSI 3.5.1 / 3.5.3, after El Naqa 2009).
pub const FRACTION_10_PERCENT: u32 = 10;
/// The intensity fraction of `V90` and the volume fraction of `I90`, percent
/// (IBSI 3.5.2 / 3.5.4).
pub const FRACTION_90_PERCENT: u32 = 90;
/// Relative slack when comparing an intensity fraction `γ` with `x %`, for grids whose
/// range is not a whole number of steps (floating-point noise only).
const GAMMA_SLACK: f64 = 1e-9;

/// Names produced by [`compute`]: the 7 tags of [`TAGS`], independent of settings.
pub fn names(_s: &FamilySettings) -> Vec<String> {
    TAGS.iter().map(|t| (*t).to_string()).collect()
}

/// Compute the IVH features (IBSI 3.5).
///
/// ```text
/// V_x  ν_i at the smallest grid i with γ_i ≥ x %  (largest ν with γ ≥ x; 3.5.1, 3.5.2)
/// I_x  the smallest grid i with ν_i ≤ x %                              (3.5.3, 3.5.4)
/// diff_v10_v90 = V10 − V90, diff_i10_i90 = I10 − I90                   (3.5.5, 3.5.6)
/// auc  Σ_j (γ_{j+1} − γ_j)(ν_j + ν_{j+1}) / 2 over the grid points of G (3.5.7, 9CMM)
/// ```
///
/// # Errors
/// [`FeatureError::EmptyRoi`]; [`FeatureError::InvalidSettings`] for a non-positive bin
/// width or count; [`FeatureError::Undefined`] for non-finite intensities or a total
/// range of zero width.
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let x: Vec<f64> = roi
        .hu
        .iter()
        .zip(roi.intensity_mask.iter())
        .filter(|(_, m)| **m)
        .map(|(&v, _)| f64::from(v))
        .collect();
    if x.is_empty() {
        return Err(FeatureError::EmptyRoi);
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(undefined("non-finite intensity in the region of interest"));
    }
    let grid = Grid::new(&x, s)?;
    let mut k: Vec<i64> = x.iter().map(|&v| grid.index_of(v)).collect();
    k.sort_unstable();
    let n = k.len() as u64;
    // Voxels with grid index ≥ `j`, so ν_j = at_least(j) / N.
    let at_least = |j: i64| n - k.partition_point(|&v| v < j) as u64;
    let v_at = |percent: u32| {
        // Smallest grid index j ≥ 0 with γ_j = j·w_d / |G| ≥ x %.
        let target = f64::from(percent) / 100.0 * grid.span_steps;
        let j = (target * (1.0 - GAMMA_SLACK)).ceil().max(0.0) as i64;
        at_least(j) as f64 / n as f64
    };
    let i_at = |percent: u32| {
        // ν is non-increasing in j; the smallest j with ν_j ≤ x % (`100·count ≤ x·N`).
        let fits = |j: i64| 100 * at_least(j) <= u64::from(percent) * n;
        let (mut lo, mut hi) = (k[0].min(0), k[k.len() - 1] + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) { hi = mid } else { lo = mid + 1 }
        }
        grid.intensity(lo)
    };
    let (v10, v90) = (v_at(FRACTION_10_PERCENT), v_at(FRACTION_90_PERCENT));
    let (i10, i90) = (i_at(FRACTION_10_PERCENT), i_at(FRACTION_90_PERCENT));
    // Grid points j = 0 … ⌈span⌉ with γ_j = min(j / span, 1): the last step is partial
    // when the fixed-bin-size range is not a whole number of bins.
    let last = (grid.span_steps * (1.0 - GAMMA_SLACK)).ceil() as i64;
    let gamma = |j: i64| (j as f64 / grid.span_steps).min(1.0);
    let nu = |j: i64| at_least(j) as f64 / n as f64;
    let auc: f64 = (0..last)
        .map(|j| (gamma(j + 1) - gamma(j)) * (nu(j) + nu(j + 1)) / 2.0)
        .sum();
    let values = [v10, v90, i10, i90, v10 - v90, i10 - i90, auc];
    Ok(TAGS
        .iter()
        .zip(values)
        .map(|(t, v)| Feature::new(*t, v))
        .collect())
}

/// The IVH grid: intensity `min G + j·w_d` for grid index `j`, and how voxels map to it.
#[derive(Debug, Clone, PartialEq)]
struct Grid {
    /// `min G`.
    start: f64,
    /// Grid step `w_d`.
    step: f64,
    /// `(max G − min G) / w_d`: γ_j = j / span_steps.
    span_steps: f64,
    /// How an intensity becomes a grid index.
    mapping: Mapping,
}

#[derive(Debug, Clone, PartialEq)]
enum Mapping {
    /// `j = round(X) − min G` (discrete HU, `w_d = 1`).
    Rounded,
    /// `j = ⌊(X − lower) / w_b⌋` (fixed bin size; bin centres on the grid).
    BinSize { lower: f64, width: f64 },
    /// `j = X_d − 1` with FBN over `[min, max]` of the ROI and `bins` bins.
    BinNumber { min: f64, range: f64, bins: u32 },
}

impl Grid {
    fn new(x: &[f64], s: &FamilySettings) -> Result<Self, FeatureError> {
        let (min_x, max_x) = x
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let reseg = s.resegment_range_hu;
        let grid = match s
            .ivh_discretisation
            .as_ref()
            .unwrap_or(&Discretisation::None)
        {
            Discretisation::None => {
                let [lo, hi] = reseg.unwrap_or([min_x, max_x]);
                let start = lo.round();
                Grid {
                    start,
                    step: 1.0,
                    span_steps: hi.round() - start,
                    mapping: Mapping::Rounded,
                }
            }
            Discretisation::FixedBinSize {
                bin_width_hu,
                lower_bound_hu,
                pyradiomics_edges,
            } => {
                let width = *bin_width_hu;
                if !(width.is_finite() && width > 0.0) {
                    return Err(FeatureError::InvalidSettings(format!(
                        "IVH bin_width_hu must be > 0, got {width}"
                    )));
                }
                let lower = if *pyradiomics_edges {
                    crate::image::discretise::pyradiomics_lower_bound(min_x, width)
                } else {
                    lower_bound_hu.or(reseg.map(|[lo, _]| lo)).unwrap_or(min_x)
                };
                let upper = reseg.map_or(max_x, |[_, hi]| hi);
                Grid {
                    start: lower + 0.5 * width,
                    step: width,
                    span_steps: (upper - lower - width) / width,
                    mapping: Mapping::BinSize { lower, width },
                }
            }
            Discretisation::FixedBinNumber { bins } => {
                if *bins < 2 {
                    return Err(FeatureError::InvalidSettings(format!(
                        "IVH fixed_bin_number needs at least 2 bins, got {bins}"
                    )));
                }
                Grid {
                    start: 1.0,
                    step: 1.0,
                    span_steps: f64::from(*bins) - 1.0,
                    mapping: Mapping::BinNumber {
                        min: min_x,
                        range: max_x - min_x,
                        bins: *bins,
                    },
                }
            }
        };
        if grid.span_steps.is_nan() || grid.span_steps <= 0.0 {
            return Err(undefined(
                "the IVH total range has zero width (one discretised intensity)",
            ));
        }
        Ok(grid)
    }

    /// The grid index of intensity `v` (may lie outside `[0, span]` for voxels outside
    /// `G`, e.g. a fixed-bin-size top bin past `max G`).
    fn index_of(&self, v: f64) -> i64 {
        match self.mapping {
            Mapping::Rounded => (v.round() - self.start) as i64,
            Mapping::BinSize { lower, width } => ((v - lower) / width).floor() as i64,
            Mapping::BinNumber { min, range, bins } => {
                let bin = (f64::from(bins) * (v - min) / range).floor() as i64;
                bin.clamp(0, i64::from(bins) - 1)
            }
        }
    }

    /// The discretised intensity of grid index `j`.
    fn intensity(&self, j: i64) -> f64 {
        self.start + j as f64 * self.step
    }
}

/// A [`FeatureError::Undefined`] for the family.
fn undefined(reason: &'static str) -> FeatureError {
    FeatureError::Undefined {
        feature: "ivh_v10".into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::texture::test_support::{self, get};

    fn settings(ivh: Option<Discretisation>, reseg: Option<[f64; 2]>) -> FamilySettings {
        let mut s = crate::features::neighbourhood::test_settings(&[]);
        s.ivh_discretisation = ivh;
        s.resegment_range_hu = reseg;
        s
    }

    /// A 1 × 1 × n ROI of `values`, fully masked.
    fn roi(values: &[f32]) -> Roi {
        test_support::roi(1, 1, values.len(), values)
    }

    /// Ten voxels 1 … 10 (discrete): G = [1, 10], ν_i = (11 − i) / 10, γ_i = (i − 1) / 9.
    #[test]
    fn discrete_intensities_hand_computed() {
        let values: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        let s = settings(None, None);
        let f = compute(&roi(&values), &s).unwrap();
        assert_eq!(
            names(&s),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        // γ ≥ 0.1 first at i = 2 (γ = 1/9) → ν = 0.9; γ ≥ 0.9 first at i = 10 → ν = 0.1.
        assert!((get(&f, "ivh_v10") - 0.9).abs() < 1e-12);
        assert!((get(&f, "ivh_v90") - 0.1).abs() < 1e-12);
        // ν ≤ 0.1 first at i = 10; ν ≤ 0.9 first at i = 2.
        assert_eq!(get(&f, "ivh_i10"), 10.0);
        assert_eq!(get(&f, "ivh_i90"), 2.0);
        assert_eq!(get(&f, "ivh_diff_i10_i90"), 8.0);
    }

    #[test]
    fn resegmentation_range_sets_the_total_range() {
        // G = [0, 100]: γ ≥ 0.9 needs i ≥ 90, above every voxel → V90 = 0.
        let s = settings(None, Some([0.0, 100.0]));
        let f = compute(&roi(&[10.0, 20.0, 30.0, 40.0]), &s).unwrap();
        assert_eq!(get(&f, "ivh_v90"), 0.0);
        // γ ≥ 0.1 at i = 10: all voxels ≥ 10.
        assert_eq!(get(&f, "ivh_v10"), 1.0);
        // ν ≤ 0.1 first at i = 41 (just above the top voxel).
        assert_eq!(get(&f, "ivh_i10"), 41.0);
    }

    #[test]
    fn fixed_bin_size_uses_bin_centres() {
        // Bins of 10 from 0: 5 → centre 5, 15 → 15, 25 → 25, 35 → 35; G = [5, 35].
        let s = settings(
            Some(Discretisation::FixedBinSize {
                bin_width_hu: 10.0,
                lower_bound_hu: None,
                pyradiomics_edges: false,
            }),
            Some([0.0, 40.0]),
        );
        let f = compute(&roi(&[5.0, 15.0, 25.0, 35.0]), &s).unwrap();
        // ν ≤ 0.9 first at centre 15 (3 of 4 voxels ≥ 15 → 0.75).
        assert_eq!(get(&f, "ivh_i90"), 15.0);
        // γ ≥ 0.9 at centre 35 (γ = 1): ν = 0.25.
        assert_eq!(get(&f, "ivh_v90"), 0.25);
    }

    #[test]
    fn fixed_bin_number_uses_bin_numbers() {
        let s = settings(Some(Discretisation::FixedBinNumber { bins: 4 }), None);
        let f = compute(&roi(&[0.0, 1.0, 2.0, 3.0, 4.0]), &s).unwrap();
        // Bins 1, 2, 3, 4, 4: ν_4 = 0.4 > 0.1, so I10 is one past the top bin.
        assert_eq!(get(&f, "ivh_i10"), 5.0);
        assert_eq!(get(&f, "ivh_i90"), 2.0);
    }

    #[test]
    fn area_under_the_curve_hand_computed() {
        // HU 0, 1, 2, 3 once each: ν = 1, ¾, ½, ¼ at γ = 0, ⅓, ⅔, 1; the curve is linear,
        // so the trapezoids give (1 + ¼) / 2 exactly.
        let f = compute(&roi(&[0.0, 1.0, 2.0, 3.0]), &settings(None, None)).unwrap();
        assert!((get(&f, "ivh_auc") - 0.625).abs() < 1e-12);
        // HU 0, 4, 4, 4: ν = 1 at γ = 0, then ¾ at γ = ¼ … 1:
        // ¼·(1 + ¾)/2 + ¾·¾ = 0.78125.
        let f = compute(&roi(&[0.0, 4.0, 4.0, 4.0]), &settings(None, None)).unwrap();
        assert!((get(&f, "ivh_auc") - 0.78125).abs() < 1e-12);
    }

    #[test]
    fn flat_region_is_undefined() {
        let s = settings(None, None);
        assert!(matches!(
            compute(&roi(&[7.0, 7.0]), &s),
            Err(FeatureError::Undefined { .. })
        ));
    }
}
