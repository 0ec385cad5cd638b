//! Intensity histogram features (IBSI 1 section 3.4, family ZVCW, tags `ih_*`).
//!
//! Input: the discretised intensities `X_d` of the intensity-mask voxels, from
//! [`crate::image::discretise`] with the same [`FamilySettings::discretisation`] as the
//! texture families. Output: the 23 IBSI intensity histogram features, in IBSI order.
//!
//! The histogram `H = {n_1 … n_Ng}` runs over every grey level `1 … N_g` (`N_g` from
//! discretisation), empty bins included, as IBSI requires for the histogram gradient.
//! Percentiles interpolate linearly between order statistics at `h = (N − 1)·q`, as
//! [`super::intensity_stats`] does (IBSI 3.4 does not fix the rule; the reference values
//! of the digital phantom and configuration A agree with it). Moments are population
//! moments, as in IBSI 3.3.
//!
//! Undefined values: skewness and kurtosis of a single grey level (zero variance), and
//! the histogram gradient features when `N_g = 1` (IBSI's `H'` needs two bins), are NaN
//! here; [`super::compute_all`] turns a selected NaN into [`FeatureError::Undefined`] and
//! drops an unselected one, so they cost a lesion nothing unless asked for.

use super::intensity_stats::percentile;
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

/// Feature tags in output order (IBSI 3.4.1 – 3.4.23).
pub const TAGS: [&str; 23] = [
    "ih_mean",
    "ih_var",
    "ih_skew",
    "ih_kurt",
    "ih_median",
    "ih_min",
    "ih_p10",
    "ih_p90",
    "ih_max",
    "ih_mode",
    "ih_iqr",
    "ih_range",
    "ih_mad",
    "ih_rmad",
    "ih_medad",
    "ih_cov",
    "ih_qcod",
    "ih_entropy",
    "ih_uniformity",
    "ih_max_grad",
    "ih_max_grad_g",
    "ih_min_grad",
    "ih_min_grad_g",
];

/// Fraction of the 10th percentile (IBSI 3.4.7, `P10`; also the robust MAD bound, 3.4.14).
pub const P10_FRACTION: f64 = 0.10;
/// Fraction of the 25th percentile (IBSI 3.4.11, interquartile range).
pub const P25_FRACTION: f64 = 0.25;
/// Fraction of the median (IBSI 3.4.5).
pub const MEDIAN_FRACTION: f64 = 0.50;
/// Fraction of the 75th percentile (IBSI 3.4.11, interquartile range).
pub const P75_FRACTION: f64 = 0.75;
/// Fraction of the 90th percentile (IBSI 3.4.8, `P90`; also the robust MAD bound).
pub const P90_FRACTION: f64 = 0.90;
/// Excess kurtosis subtracts the kurtosis of a normal distribution (IBSI 3.4.4).
pub const NORMAL_KURTOSIS: f64 = 3.0;
/// Largest `N_g` for which the dense histogram is built (e.g. discretisation `none` on
/// intensities up to this value).
pub const MAX_HISTOGRAM_BINS: u32 = 1 << 20;

/// Names produced by [`compute`]: the 23 tags of [`TAGS`], independent of settings.
pub fn names(_s: &FamilySettings) -> Vec<String> {
    TAGS.iter().map(|t| (*t).to_string()).collect()
}

/// Compute the 23 IBSI intensity histogram features.
///
/// With `X_d` the `N` discretised intensities, `p_i = n_i / N`, `μ` the mean, `σ²` the
/// population variance and `P_q` percentiles:
///
/// ```text
/// mean, var, skew, kurt       as IBSI 3.3, on X_d                    (3.4.1 – 3.4.4)
/// median, min, P10, P90, max  order statistics of X_d                (3.4.5 – 3.4.9)
/// mode        the i with the largest n_i; ties: closest to μ, then the lower  (3.4.10)
/// iqr         P75 − P25                                              (3.4.11)
/// range       max − min                                              (3.4.12)
/// mad         1/N Σ |X_d − μ|                                        (3.4.13)
/// rmad        mean |X − mean(X_10-90)| over P10 ≤ X ≤ P90            (3.4.14)
/// medad       1/N Σ |X_d − median|                                   (3.4.15)
/// cov         σ / μ                                                  (3.4.16)
/// qcod        (P75 − P25) / (P75 + P25)                              (3.4.17)
/// entropy     −Σ p_i log2 p_i                                        (3.4.18)
/// uniformity  Σ p_i²                                                 (3.4.19)
/// H'_i        n_2 − n_1 (i = 1), (n_{i+1} − n_{i−1}) / 2, n_Ng − n_{Ng−1} (i = N_g)
/// max_grad, max_grad_g   max H' and its (lowest) grey level          (3.4.20, 3.4.21)
/// min_grad, min_grad_g   min H' and its (lowest) grey level          (3.4.22, 3.4.23)
/// ```
///
/// # Errors
/// Discretisation errors; [`FeatureError::InvalidSettings`] for `N_g` above
/// [`MAX_HISTOGRAM_BINS`]; [`FeatureError::Undefined`] as in the module docs.
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let grey = discretise(roi, s)?;
    if grey.n_levels > MAX_HISTOGRAM_BINS {
        return Err(FeatureError::InvalidSettings(format!(
            "{} grey levels; the intensity histogram supports at most {MAX_HISTOGRAM_BINS}",
            grey.n_levels
        )));
    }
    let mut x: Vec<f64> = grey
        .levels
        .iter()
        .zip(roi.intensity_mask.iter())
        .filter(|(_, m)| **m)
        .map(|(&g, _)| f64::from(g))
        .collect();
    if x.is_empty() {
        return Err(FeatureError::EmptyRoi);
    }
    x.sort_by(f64::total_cmp);
    let mut counts = vec![0.0_f64; grey.n_levels as usize];
    for &g in &x {
        // Levels are 1-based and ≤ N_g by construction of `discretise`.
        if let Some(c) = (g as usize).checked_sub(1).and_then(|i| counts.get_mut(i)) {
            *c += 1.0;
        }
    }
    let moments = Moments::of(&x);
    let p = |q| percentile(&x, q);
    let (p10, p90, p25, p75) = (
        p(P10_FRACTION),
        p(P90_FRACTION),
        p(P25_FRACTION),
        p(P75_FRACTION),
    );
    let median = p(MEDIAN_FRACTION);
    let (min, max) = (x[0], x[x.len() - 1]);
    let n = x.len() as f64;
    let robust: Vec<f64> = x
        .iter()
        .copied()
        .filter(|v| (p10..=p90).contains(v))
        .collect();
    // Never empty: the order statistic at the median lies in [P10, P90].
    let robust_mean = robust.iter().sum::<f64>() / robust.len() as f64;
    let rmad = robust.iter().map(|v| (v - robust_mean).abs()).sum::<f64>() / robust.len() as f64;
    let probabilities = counts.iter().filter(|&&c| c > 0.0).map(|c| c / n);
    let entropy = -probabilities.clone().map(|p| p * p.log2()).sum::<f64>();
    let uniformity = probabilities.map(|p| p * p).sum::<f64>();
    // The histogram gradient needs at least two grey levels (N_g = 1 leaves the four
    // gradient features NaN, which `features::compute_all` refuses only when selected).
    let ((max_grad_g, max_grad), (min_grad_g, min_grad)) = match histogram_gradient(&counts) {
        Some(gradient) => (
            extreme(&gradient, |a, b| a > b),
            extreme(&gradient, |a, b| a < b),
        ),
        None => ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN)),
    };
    let values = [
        moments.mean,
        moments.var,
        moments.skew,
        moments.kurt,
        median,
        min,
        p10,
        p90,
        max,
        mode(&counts, moments.mean),
        p75 - p25,
        max - min,
        x.iter().map(|v| (v - moments.mean).abs()).sum::<f64>() / n,
        rmad,
        x.iter().map(|v| (v - median).abs()).sum::<f64>() / n,
        moments.var.sqrt() / moments.mean,
        (p75 - p25) / (p75 + p25),
        entropy,
        uniformity,
        max_grad,
        max_grad_g,
        min_grad,
        min_grad_g,
    ];
    Ok(TAGS
        .iter()
        .zip(values)
        .map(|(t, v)| Feature::new(*t, v))
        .collect())
}

/// Mean and population central moments of grey levels (all ≥ 1, so `μ > 0`).
struct Moments {
    mean: f64,
    var: f64,
    skew: f64,
    kurt: f64,
}

impl Moments {
    /// Skewness and kurtosis are NaN for zero variance (one grey level).
    fn of(x: &[f64]) -> Self {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let central = |k: i32| x.iter().map(|v| (v - mean).powi(k)).sum::<f64>() / n;
        let var = central(2);
        let (skew, kurt) = if var > 0.0 {
            (
                central(3) / var.powf(1.5),
                central(4) / (var * var) - NORMAL_KURTOSIS,
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        Moments {
            mean,
            var,
            skew,
            kurt,
        }
    }
}

/// The mode (IBSI 3.4.10): the grey level with the largest count; among ties the one
/// closest to the mean, and of two equidistant ones the lower.
fn mode(counts: &[f64], mean: f64) -> f64 {
    let top = counts.iter().copied().fold(0.0, f64::max);
    let mut best: Option<f64> = None;
    for (i, _) in counts.iter().enumerate().filter(|(_, c)| **c == top) {
        let level = (i + 1) as f64;
        // Ascending order: a later level replaces only if strictly closer to the mean.
        if best.is_none_or(|b| (level - mean).abs() < (b - mean).abs()) {
            best = Some(level);
        }
    }
    best.unwrap_or(1.0)
}

/// IBSI 3.4.20's histogram gradient `H'`; `None` for fewer than two bins.
fn histogram_gradient(n: &[f64]) -> Option<Vec<f64>> {
    let last = n.len().checked_sub(1).filter(|&l| l >= 1)?;
    Some(
        (0..=last)
            .map(|i| match i {
                0 => n[1] - n[0],
                i if i == last => n[last] - n[last - 1],
                i => (n[i + 1] - n[i - 1]) / 2.0,
            })
            .collect(),
    )
}

/// `(grey level, value)` of the first extreme of a non-empty gradient under `better`.
fn extreme(gradient: &[f64], better: impl Fn(f64, f64) -> bool) -> (f64, f64) {
    let mut best = (1.0, gradient[0]);
    for (i, &g) in gradient.iter().enumerate().skip(1) {
        if better(g, best.1) {
            best = ((i + 1) as f64, g);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Discretisation;
    use crate::features::texture::test_support::{self, get};

    fn settings(discretisation: Discretisation) -> FamilySettings {
        let mut s = crate::features::neighbourhood::test_settings(&[]);
        s.discretisation = discretisation;
        s
    }

    /// A 1 × 1 × n ROI of `values`, fully masked.
    fn roi(values: &[f32]) -> Roi {
        test_support::roi(1, 1, values.len(), values)
    }

    #[test]
    fn hand_computed_histogram() {
        // X_d = {1, 1, 1, 3, 4}: H = [3, 0, 1, 1], μ = 2, N_g = 4.
        let s = settings(Discretisation::None);
        let f = compute(&roi(&[1.0, 3.0, 1.0, 4.0, 1.0]), &s).unwrap();
        assert_eq!(
            names(&s),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        let close = |tag: &str, want: f64| {
            let got = get(&f, tag);
            assert!((got - want).abs() < 1e-12, "{tag}: {got} vs {want}");
        };
        close("ih_mean", 2.0);
        close("ih_var", (1.0 + 1.0 + 1.0 + 1.0 + 4.0) / 5.0);
        close("ih_mode", 1.0);
        close("ih_median", 1.0);
        close("ih_range", 3.0);
        // H' = [0 − 3, (1 − 3)/2, (1 − 0)/2, 1 − 1] = [−3, −1, 0.5, 0].
        close("ih_max_grad", 0.5);
        close("ih_max_grad_g", 3.0);
        close("ih_min_grad", -3.0);
        close("ih_min_grad_g", 1.0);
        let h = -(0.6 * 0.6_f64.log2() + 2.0 * 0.2 * 0.2_f64.log2());
        close("ih_entropy", h);
        close("ih_uniformity", 0.36 + 0.04 + 0.04);
        close("ih_mad", (1.0 + 1.0 + 1.0 + 1.0 + 2.0) / 5.0);
        close("ih_medad", (2.0 + 3.0) / 5.0);
    }

    #[test]
    fn mode_ties_go_to_the_mean_then_left() {
        // Counts 2, 0, 2: mean 2 is equidistant from 1 and 3 → 1.
        assert_eq!(mode(&[2.0, 0.0, 2.0], 2.0), 1.0);
        // Counts 2, 0, 2 with mean 2.5 → 3.
        assert_eq!(mode(&[2.0, 0.0, 2.0], 2.5), 3.0);
    }

    #[test]
    fn uses_the_texture_discretisation() {
        let s = settings(Discretisation::FixedBinSize {
            bin_width_hu: 25.0,
            lower_bound_hu: Some(0.0),
            pyradiomics_edges: false,
        });
        let f = compute(&roi(&[0.0, 24.0, 25.0, 80.0]), &s).unwrap();
        // Grey levels 1, 1, 2, 4.
        assert_eq!(get(&f, "ih_max"), 4.0);
        assert_eq!(get(&f, "ih_mode"), 1.0);
    }

    #[test]
    fn one_grey_level_leaves_only_the_moments_undefined() {
        let mut s = settings(Discretisation::None);
        s.families = vec!["intensity_histogram".into()];
        let flat = roi(&[2.0, 2.0]);
        let f = compute(&flat, &s).unwrap();
        let undefined: Vec<&str> = f
            .iter()
            .filter(|f| f.value.is_nan())
            .map(|f| f.name.as_str())
            .collect();
        // Grey levels run from 1 to the value 2 (no discretisation), so the gradient exists.
        assert_eq!(undefined, ["ih_skew", "ih_kurt"]);
        // Selected, the first undefined one is refused by name; unselected, the rest stays.
        let err = crate::features::compute_all(&flat, &s).unwrap_err();
        assert!(
            matches!(&err, FeatureError::Undefined { feature, .. } if feature == "ih_skew"),
            "{err}"
        );
        s.features = Some(vec!["ih_entropy".into(), "ih_uniformity".into()]);
        let kept = crate::features::compute_all(&flat, &s).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[0].value, kept[1].value), (0.0, 1.0));
    }
}
