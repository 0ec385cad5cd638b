//! Intensity-based statistical features (IBSI 1 section 3.3, tags `stat_*`).
//!
//! Input: the raw intensities (HU, not discretised) of the voxels in the intensity mask,
//! `X = {X_1 … X_N}`. Output: the 18 IBSI statistics, in IBSI order. Percentiles use
//! linear interpolation between order statistics (`P_q = X_(h)` with `h = (N − 1)·q`, the
//! numpy default, as in the IBSI reference implementation MIRP); IBSI does not fix the
//! interpolation rule.
//!
//! Moments use the population (biased) definitions of IBSI: `σ² = 1/N Σ (X_k − μ)²`.

use super::{FamilySettings, Feature, FeatureError, Roi};

/// Feature tags in output order (IBSI 3.3.1 – 3.3.18).
pub const TAGS: [&str; 18] = [
    "stat_mean",
    "stat_var",
    "stat_skew",
    "stat_kurt",
    "stat_median",
    "stat_min",
    "stat_p10",
    "stat_p90",
    "stat_max",
    "stat_iqr",
    "stat_range",
    "stat_mad",
    "stat_rmad",
    "stat_medad",
    "stat_cov",
    "stat_qcod",
    "stat_energy",
    "stat_rms",
];

/// Fraction of the 10th percentile (IBSI 3.3.7, `P10`, id QG58; and the lower bound of
/// the robust mean absolute deviation, 3.3.13).
pub const P10_FRACTION: f64 = 0.10;
/// Fraction of the 25th percentile (IBSI 3.3.10, interquartile range, id SALO).
pub const P25_FRACTION: f64 = 0.25;
/// Fraction of the median (IBSI 3.3.5, id Y12H).
pub const MEDIAN_FRACTION: f64 = 0.50;
/// Fraction of the 75th percentile (IBSI 3.3.10, interquartile range, id SALO).
pub const P75_FRACTION: f64 = 0.75;
/// Fraction of the 90th percentile (IBSI 3.3.8, `P90`, id 8DWT).
pub const P90_FRACTION: f64 = 0.90;
/// Excess kurtosis subtracts the kurtosis of a normal distribution (IBSI 3.3.4, id IPH6).
pub const NORMAL_KURTOSIS: f64 = 3.0;

/// Names produced by [`compute`]: the 18 tags of [`TAGS`], independent of settings.
pub fn names(_s: &FamilySettings) -> Vec<String> {
    TAGS.iter().map(|t| (*t).to_string()).collect()
}

/// Compute the 18 IBSI statistical features on the intensity mask.
///
/// ```text
/// mean   μ = 1/N Σ X_k                       (3.3.1, Q4LE)
/// var    σ² = 1/N Σ (X_k − μ)²               (3.3.2, ECT3)
/// skew   m3 / σ³                              (3.3.3, KE2A)
/// kurt   m4 / σ⁴ − 3                          (3.3.4, IPH6)
/// median, min, P10, P90, max                  (3.3.5 – 3.3.9)
/// iqr    P75 − P25                            (3.3.10, SALO)
/// range  max − min                            (3.3.11, 2OJQ)
/// mad    1/N Σ |X_k − μ|                      (3.3.12, 4FUA)
/// rmad   mean |X − μ_10-90| over P10 ≤ X ≤ P90 (3.3.13, 1128)
/// medad  1/N Σ |X_k − median|                 (3.3.14, N72L)
/// cov    σ / μ                                (3.3.15, 7TET)
/// qcod   (P75 − P25) / (P75 + P25)            (3.3.16, 9S40)
/// energy Σ X_k²                               (3.3.17, N8CA)
/// rms    sqrt(energy / N)                     (3.3.18, 5ZWQ)
/// ```
///
/// The energy is not scaled by the voxel volume (IBSI 3.3.17 defines it on voxel values).
///
/// # Errors
/// [`FeatureError::EmptyRoi`] for an empty intensity mask; [`FeatureError::Undefined`]
/// when skewness/kurtosis have zero variance, the coefficient of variation has zero mean
/// or the quartile coefficient has `P75 + P25 = 0` (IBSI defines no value for these).
pub fn compute(roi: &Roi, _s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let mut x: Vec<f64> = roi
        .hu
        .iter()
        .zip(roi.intensity_mask.iter())
        .filter(|(_, m)| **m)
        .map(|(v, _)| f64::from(*v))
        .collect();
    if x.is_empty() {
        return Err(FeatureError::EmptyRoi);
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(undefined(
            "stat_mean",
            "non-finite intensity in the region of interest",
        ));
    }
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let central = |p: i32| x.iter().map(|v| (v - mean).powi(p)).sum::<f64>() / n;
    let var = central(2);
    let (m3, m4) = (central(3), central(4));
    if var <= 0.0 {
        return Err(undefined("stat_skew", "zero intensity variance"));
    }
    let skew = m3 / var.powf(1.5);
    let kurt = m4 / (var * var) - NORMAL_KURTOSIS;
    let median = percentile(&x, MEDIAN_FRACTION);
    let (p10, p90) = (percentile(&x, P10_FRACTION), percentile(&x, P90_FRACTION));
    let (p25, p75) = (percentile(&x, P25_FRACTION), percentile(&x, P75_FRACTION));
    let (min, max) = (x[0], x[x.len() - 1]);
    let mad = x.iter().map(|v| (v - mean).abs()).sum::<f64>() / n;
    let robust: Vec<f64> = x
        .iter()
        .copied()
        .filter(|v| (p10..=p90).contains(v))
        .collect();
    // Never empty: P10 ≤ median ≤ P90 and an order statistic lies in [P10, P90].
    let robust_mean = robust.iter().sum::<f64>() / robust.len() as f64;
    let rmad = robust.iter().map(|v| (v - robust_mean).abs()).sum::<f64>() / robust.len() as f64;
    let medad = x.iter().map(|v| (v - median).abs()).sum::<f64>() / n;
    if mean == 0.0 {
        return Err(undefined("stat_cov", "zero mean intensity"));
    }
    let cov = var.sqrt() / mean;
    if p75 + p25 == 0.0 {
        return Err(undefined("stat_qcod", "P75 + P25 is zero"));
    }
    let qcod = (p75 - p25) / (p75 + p25);
    let energy = x.iter().map(|v| v * v).sum::<f64>();
    let rms = (energy / n).sqrt();
    let values = [
        mean,
        var,
        skew,
        kurt,
        median,
        min,
        p10,
        p90,
        max,
        p75 - p25,
        max - min,
        mad,
        rmad,
        medad,
        cov,
        qcod,
        energy,
        rms,
    ];
    Ok(TAGS
        .iter()
        .zip(values)
        .map(|(t, v)| Feature::new(*t, v))
        .collect())
}

/// Percentile of sorted, non-empty data with linear interpolation at `h = (N − 1)·q`
/// (numpy's default; IBSI 3.3 does not fix the interpolation). Shared with the intensity
/// histogram family.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// A [`FeatureError::Undefined`] for `feature`.
fn undefined(feature: &str, reason: &'static str) -> FeatureError {
    FeatureError::Undefined {
        feature: feature.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Discretisation;
    use crate::features::texture::test_support::{self, get};

    fn settings() -> FamilySettings {
        FamilySettings {
            families: vec!["intensity_stats".into()],
            ivh_discretisation: None,
            ngldm_alpha: 0,
            resegment_range_hu: None,
            discretisation: Discretisation::None,
            texture_distance_vox: 1,
            texture_aggregations: vec![],
            min_voxels: 1,
            interpolation: None,
            resegment_outlier_sigma: None,
            voxel_array_shift: None,
            image_filters: Default::default(),
            normalisation: None,
            features: None,
        }
    }

    /// A 1 × 1 × n ROI of `values`, fully masked.
    fn roi(values: &[f32]) -> Roi {
        test_support::roi(1, 1, values.len(), values)
    }

    #[test]
    fn hand_computed_values() {
        // X = {1, 2, 3, 4}: μ = 2.5, σ² = 1.25, P25 = 1.75, P75 = 3.25, energy = 30.
        let f = compute(&roi(&[4.0, 1.0, 3.0, 2.0]), &settings()).unwrap();
        assert_eq!(
            names(&settings()),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        assert!((get(&f, "stat_mean") - 2.5).abs() < 1e-12);
        assert!((get(&f, "stat_var") - 1.25).abs() < 1e-12);
        assert!(get(&f, "stat_skew").abs() < 1e-12);
        assert!((get(&f, "stat_kurt") - (2.5625 / 1.5625 - 3.0)).abs() < 1e-12);
        assert!((get(&f, "stat_iqr") - 1.5).abs() < 1e-12);
        assert!((get(&f, "stat_qcod") - 1.5 / 5.0).abs() < 1e-12);
        assert!((get(&f, "stat_energy") - 30.0).abs() < 1e-12);
        assert!((get(&f, "stat_mad") - 1.0).abs() < 1e-12);
        assert!((get(&f, "stat_rms") - 7.5_f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn masked_voxels_are_ignored_and_flat_roi_is_an_error() {
        let mut r = roi(&[5.0, 5.0, 100.0]);
        r.intensity_mask[[0, 0, 2]] = false;
        assert!(matches!(
            compute(&r, &settings()),
            Err(FeatureError::Undefined { .. })
        ));
    }
}
