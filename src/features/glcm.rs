//! Grey level co-occurrence matrix features (IBSI 1 section 3.6, tags `cm_*`).
//!
//! Input: the lesion's grey levels from [`crate::image::discretise`] (1-based, intensity
//! mask only). Output: the 25 IBSI GLCM features for every aggregation listed in
//! [`FamilySettings::texture_aggregations`], tagged `cm_<feature>_<suffix>` (e.g.
//! `cm_contrast_3D_avg`), aggregation by aggregation in settings order.
//!
//! Matrices are symmetric: a voxel pair at offset `δ·d` is counted as `(i, j)` and
//! `(j, i)` (IBSI 3.6). Both voxels of a pair must lie in the intensity mask. Neighbours
//! are at Chebyshev distance `δ = texture_distance_vox` along the 4 in-plane (2D, 2.5D) or
//! 13 (3D) unique directions. Aggregation follows IBSI 3.1.3 / figure 3.2: `*_avg`
//! computes features per matrix and averages them, `*_comb` sums (merges) the counts of
//! the matrices first. Empty matrices (no pair, e.g. a one-voxel slice) take no part in
//! an average.
//!
//! Undefined values: IBSI gives no convention for correlation when the marginal variance
//! is zero, nor for information correlation 1 when the marginal entropy is zero (a matrix
//! with one grey level). radscore then gives NaN instead of a made-up number, which
//! [`super::compute_all`] turns into [`FeatureError::Undefined`] when the feature is
//! selected (an unselected one costs the lesion nothing); an aggregation without any
//! non-empty matrix is an error.
//!
//! Internally the matrix is stored over the grey levels that occur in the ROI only (zero
//! rows and columns add nothing to any feature), while the features use the grey level
//! values themselves and `N_g` from discretisation.

use super::settings::FlatRegionValues;
use super::texture::{
    self, Degenerate, FamilyTags, LevelIndex, MatrixFamily, TextureMatrix, scale,
};
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

pub use super::texture::{DIRECTIONS_2D, DIRECTIONS_3D, MAX_GREY_LEVELS};

/// Short names of the 25 features in output order (IBSI 3.6.1 – 3.6.25).
pub const FEATURES: [&str; 25] = [
    "joint_max",
    "joint_avg",
    "joint_var",
    "joint_entr",
    "diff_avg",
    "diff_var",
    "diff_entr",
    "sum_avg",
    "sum_var",
    "sum_entr",
    "energy",
    "contrast",
    "dissimilarity",
    "inv_diff",
    "inv_diff_norm",
    "inv_diff_mom",
    "inv_diff_mom_norm",
    "inv_var",
    "corr",
    "auto_corr",
    "clust_tend",
    "clust_shade",
    "clust_prom",
    "info_corr1",
    "info_corr2",
];

/// Number of GLCM features (IBSI 3.6).
const N_FEATURES: usize = FEATURES.len();

/// Correlation of a matrix with zero marginal variance under PyRadiomics' convention
/// (`radiomics/glcm.py`, Correlation: "an arbitrary value of 1", per angle).
const PYRADIOMICS_FLAT_CORRELATION: f64 = 1.0;

/// Information correlation 1 of a matrix with zero marginal entropy under PyRadiomics'
/// convention (`radiomics/glcm.py`, Imc1: "an arbitrary value of 0", per angle).
const PYRADIOMICS_FLAT_INFO_CORR1: f64 = 0.0;

/// Tags of the family: `cm_<feature>_<aggregation>`.
const TAGS: FamilyTags<N_FEATURES> = FamilyTags {
    prefix: "cm",
    features: FEATURES,
    empty_reason: "no pair of neighbouring voxels in the intensity mask",
};

/// Names produced by [`compute`]: `cm_<feature>_<suffix>` per configured aggregation.
pub fn names(s: &FamilySettings) -> Vec<String> {
    let suffixes = s.texture_aggregations.iter().map(|a| a.suffix());
    TAGS.names(suffixes).collect()
}

/// Compute the GLCM features for every configured aggregation (IBSI 3.6).
///
/// With `p_ij` the normalised symmetric matrix, `i, j` grey levels, `p_x(i) = Σ_j p_ij`,
/// `p_{x−y}(k) = Σ_{|i−j|=k} p_ij`, `p_{x+y}(k) = Σ_{i+j=k} p_ij`, `μ = Σ i p_x(i)`,
/// `σ² = Σ (i − μ)² p_x(i)` and `H` entropies in bits:
///
/// ```text
/// joint_max   max p_ij                         (3.6.1, GYBY)
/// joint_avg   Σ i p_ij                         (3.6.2, 60VM)
/// joint_var   Σ (i − μ)² p_ij                  (3.6.3, UR99)
/// joint_entr  HXY = −Σ p_ij log2 p_ij          (3.6.4, TU9B)
/// diff_avg    Σ k p_{x−y}(k)                   (3.6.5, TF7R)
/// diff_var    Σ (k − diff_avg)² p_{x−y}(k)     (3.6.6, D3YU)
/// diff_entr   −Σ p_{x−y} log2 p_{x−y}          (3.6.7, NTRS)
/// sum_avg     Σ k p_{x+y}(k)                   (3.6.8, ZGXS)
/// sum_var     Σ (k − sum_avg)² p_{x+y}(k)      (3.6.9, OEEB)
/// sum_entr    −Σ p_{x+y} log2 p_{x+y}          (3.6.10, P6QZ)
/// energy      Σ p_ij²                          (3.6.11, 8ZQL)
/// contrast    Σ (i − j)² p_ij                  (3.6.12, ACUI)
/// dissimil.   Σ |i − j| p_ij                   (3.6.13, 8S9J)
/// inv_diff    Σ p_ij / (1 + |i − j|)           (3.6.14, IB1Z)
/// inv_diff_n  Σ p_ij / (1 + |i − j| / N_g)     (3.6.15, NDRX)
/// inv_d_mom   Σ p_ij / (1 + (i − j)²)          (3.6.16, WF0Z)
/// inv_d_mom_n Σ p_ij / (1 + (i − j)² / N_g²)   (3.6.17, 1QCO)
/// inv_var     Σ_{k≥1} p_{x−y}(k) / k²          (3.6.18, E8JP)
/// corr        Σ (i − μ)(j − μ) p_ij / σ²       (3.6.19, NI2N)
/// auto_corr   Σ i j p_ij                       (3.6.20, QWB0)
/// clust_tend  Σ (i + j − 2μ)² p_ij             (3.6.21, DG8W)
/// clust_shade Σ (i + j − 2μ)³ p_ij             (3.6.22, 7NFM)
/// clust_prom  Σ (i + j − 2μ)⁴ p_ij             (3.6.23, AE86)
/// info_corr1  (HXY − HXY1) / HX                (3.6.24, R8DG)
/// info_corr2  sqrt(1 − exp(−2 (HXY2 − HXY)))   (3.6.25, JN9H)
/// ```
///
/// with `HXY1 = −Σ p_ij log2(p_x(i) p_y(j))` and `HXY2 = −Σ p_x(i) p_y(j) log2(p_x(i) p_y(j))
/// = HX + HY` (the matrix is symmetric, so `p_y = p_x`).
///
/// # Errors
/// Discretisation errors; [`FeatureError::InvalidSettings`] for more than
/// [`MAX_GREY_LEVELS`] distinct grey levels; [`FeatureError::Undefined`] for an
/// aggregation without voxel pairs or a feature IBSI leaves undefined (see module docs).
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    if s.texture_aggregations.is_empty() {
        return Ok(Vec::new());
    }
    let grey = discretise(roi, s)?;
    let levels = LevelIndex::new(&grey.levels, grey.n_levels, "GLCM")?;
    let delta = isize::try_from(s.texture_distance_vox)
        .ok()
        .filter(|d| *d >= 1)
        .ok_or_else(|| FeatureError::InvalidSettings("texture_distance_vox must be ≥ 1".into()))?;
    let pyradiomics_flat = s.flat_region_values == Some(FlatRegionValues::Pyradiomics);
    texture::aggregate_by_direction(
        &Glcm(&levels, pyradiomics_flat),
        &s.texture_aggregations,
        levels.n_slices(),
        |d, zs| count(&levels, scale(d, delta), zs),
    )
}

/// The GLCM as [`texture::aggregate_by_direction`] sees it, and whether flat matrices
/// take PyRadiomics' values ([`FlatRegionValues::Pyradiomics`]).
struct Glcm<'a>(&'a LevelIndex, bool);

impl MatrixFamily<N_FEATURES> for Glcm<'_> {
    type Matrix = Matrix;

    fn tags(&self) -> &FamilyTags<N_FEATURES> {
        &TAGS
    }

    fn empty(&self) -> Matrix {
        Matrix::zeros(self.0.len())
    }

    fn features(&self, m: &Matrix) -> Result<Option<[f64; N_FEATURES]>, Degenerate> {
        features(self.0, m, self.1)
    }
}

/// A dense symmetric co-occurrence count matrix over the ROI's distinct grey levels.
#[derive(Clone)]
struct Matrix {
    n: usize,
    counts: Vec<f64>,
}

impl Matrix {
    fn zeros(n: usize) -> Self {
        Matrix {
            n,
            counts: vec![0.0; n * n],
        }
    }
}

impl TextureMatrix for Matrix {
    fn merge(&mut self, other: &Matrix) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

/// Symmetric counts of pairs `(v, v + d)` with `v` in slices `zs`, both in the mask.
fn count(levels: &LevelIndex, d: [isize; 3], zs: std::ops::Range<usize>) -> Matrix {
    let n = levels.len();
    let mut m = Matrix::zeros(n);
    let (nz, ny, nx) = levels.index.dim();
    for z in zs {
        let Some(z2) = z.checked_add_signed(d[0]).filter(|&v| v < nz) else {
            continue;
        };
        for y in 0..ny {
            let Some(y2) = y.checked_add_signed(d[1]).filter(|&v| v < ny) else {
                continue;
            };
            for x in 0..nx {
                let Some(x2) = x.checked_add_signed(d[2]).filter(|&v| v < nx) else {
                    continue;
                };
                let (a, b) = (levels.index[[z, y, x]], levels.index[[z2, y2, x2]]);
                if a >= 0 && b >= 0 {
                    let (a, b) = (a as usize, b as usize);
                    m.counts[a * n + b] += 1.0;
                    m.counts[b * n + a] += 1.0;
                }
            }
        }
    }
    m
}

/// The 25 features of one matrix (order of [`FEATURES`]); `None` for an empty matrix.
fn features(
    levels: &LevelIndex,
    m: &Matrix,
    pyradiomics_flat: bool,
) -> Result<Option<[f64; N_FEATURES]>, Degenerate> {
    let total: f64 = m.counts.iter().sum();
    if total <= 0.0 {
        return Ok(None);
    }
    let n = m.n;
    let v = &levels.values;
    let n_g = levels.n_g;
    let px: Vec<f64> = m
        .counts
        .chunks_exact(n)
        .map(|row| row.iter().sum::<f64>() / total)
        .collect();
    let mu: f64 = v.iter().zip(&px).map(|(g, p)| g * p).sum();
    let var: f64 = v.iter().zip(&px).map(|(g, p)| (g - mu).powi(2) * p).sum();
    let hx: f64 = -px
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|p| p * p.log2())
        .sum::<f64>();
    // Grey levels are integers ≥ 1 and ≤ N_g: |i − j| < N_g, i + j ≤ 2 N_g.
    let mut p_diff = vec![0.0; n_g as usize + 1];
    let mut p_sum = vec![0.0; 2 * n_g as usize + 1];
    let mut f = [0.0; N_FEATURES];
    let (mut hxy, mut hxy1) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let p = m.counts[i * n + j] / total;
            if p <= 0.0 {
                continue;
            }
            let (gi, gj) = (v[i], v[j]);
            let diff = (gi - gj).abs();
            let cl = gi + gj - 2.0 * mu;
            f[0] = f64::max(f[0], p);
            f[1] += gi * p;
            f[2] += (gi - mu).powi(2) * p;
            hxy -= p * p.log2();
            p_diff[diff as usize] += p;
            p_sum[(gi + gj) as usize] += p;
            f[10] += p * p;
            f[11] += diff * diff * p;
            f[12] += diff * p;
            f[13] += p / (1.0 + diff);
            f[14] += p / (1.0 + diff / n_g);
            f[15] += p / (1.0 + diff * diff);
            f[16] += p / (1.0 + diff * diff / (n_g * n_g));
            f[18] += (gi - mu) * (gj - mu) * p;
            f[19] += gi * gj * p;
            f[20] += cl.powi(2) * p;
            f[21] += cl.powi(3) * p;
            f[22] += cl.powi(4) * p;
            hxy1 -= p * (px[i] * px[j]).log2();
        }
    }
    f[3] = hxy;
    let (diff_avg, diff_var, diff_entr) = moments_and_entropy(&p_diff);
    let (sum_avg, sum_var, sum_entr) = moments_and_entropy(&p_sum);
    f[4] = diff_avg;
    f[5] = diff_var;
    f[6] = diff_entr;
    f[7] = sum_avg;
    f[8] = sum_var;
    f[9] = sum_entr;
    f[17] = p_diff
        .iter()
        .enumerate()
        .skip(1)
        .map(|(k, p)| p / (k * k) as f64)
        .sum();
    // Zero marginal variance or entropy (one grey level): correlation and the first
    // information correlation are NaN, refused by `features::compute_all` only when
    // selected (a mean over slices or directions stays NaN).
    f[18] = match (var > 0.0, pyradiomics_flat) {
        (true, _) => f[18] / var,
        (false, true) => PYRADIOMICS_FLAT_CORRELATION,
        (false, false) => f64::NAN,
    };
    f[23] = match (hx > 0.0, pyradiomics_flat) {
        (true, _) => (hxy - hxy1) / hx,
        (false, true) => PYRADIOMICS_FLAT_INFO_CORR1,
        (false, false) => f64::NAN,
    };
    let hxy2 = 2.0 * hx;
    f[24] = (1.0 - (-2.0 * (hxy2 - hxy)).exp()).max(0.0).sqrt();
    Ok(Some(f))
}

/// Mean, variance and entropy (bits) of a distribution over `k = 0, 1, …`.
fn moments_and_entropy(p: &[f64]) -> (f64, f64, f64) {
    let mean: f64 = p.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
    let var: f64 = p
        .iter()
        .enumerate()
        .map(|(k, p)| (k as f64 - mean).powi(2) * p)
        .sum();
    let entropy = -p
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|p| p * p.log2())
        .sum::<f64>();
    (mean, var, entropy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::settings::TextureAggregation;
    use crate::features::texture::test_support::{get, roi, settings};

    #[test]
    fn two_voxels_hand_computed() {
        // One pair (1, 2) along x: p = [[0, .5], [.5, 0]], N_g = 2.
        let s = settings("glcm", vec![TextureAggregation::D3Comb]);
        let f = compute(&roi(1, 1, 2, &[1.0, 2.0]), &s).unwrap();
        assert_eq!(
            names(&s),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        assert!((get(&f, "cm_joint_max_3D_comb") - 0.5).abs() < 1e-12);
        assert!((get(&f, "cm_joint_avg_3D_comb") - 1.5).abs() < 1e-12);
        assert!((get(&f, "cm_joint_entr_3D_comb") - 1.0).abs() < 1e-12);
        assert!((get(&f, "cm_contrast_3D_comb") - 1.0).abs() < 1e-12);
        assert!((get(&f, "cm_inv_diff_norm_3D_comb") - 1.0 / 1.5).abs() < 1e-12);
        assert!((get(&f, "cm_corr_3D_comb") + 1.0).abs() < 1e-12);
        assert!((get(&f, "cm_sum_avg_3D_comb") - 3.0).abs() < 1e-12);
        assert!((get(&f, "cm_auto_corr_3D_comb") - 2.0).abs() < 1e-12);
        // HXY = 1, HXY1 = 2, HX = 1 → info_corr1 = −1; HXY2 = 2 → sqrt(1 − e^{−2}).
        assert!((get(&f, "cm_info_corr1_3D_comb") + 1.0).abs() < 1e-12);
        assert!((get(&f, "cm_info_corr2_3D_comb") - (1.0 - (-2.0_f64).exp()).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn pairs_need_both_voxels_in_mask_and_flat_roi_is_undefined() {
        let mut r = roi(1, 1, 3, &[1.0, 1.0, 5.0]);
        r.intensity_mask[[0, 0, 2]] = false;
        let mut s = settings("glcm", vec![TextureAggregation::D3Avg]);
        assert!(matches!(
            crate::features::compute_all(&r, &s),
            Err(FeatureError::Undefined { feature, .. }) if feature == "cm_corr_3D_avg"
        ));
        s.features = Some(vec!["cm_contrast_3D_avg".into()]);
        let kept = crate::features::compute_all(&r, &s).unwrap();
        assert_eq!(kept[0].value, 0.0, "one grey level: no contrast");
        // PyRadiomics' convention gives them values.
        s.features = Some(vec!["cm_corr_3D_avg".into(), "cm_info_corr1_3D_avg".into()]);
        s.flat_region_values = Some(crate::features::settings::FlatRegionValues::Pyradiomics);
        let flat = crate::features::compute_all(&r, &s).unwrap();
        assert_eq!((flat[0].value, flat[1].value), (1.0, 0.0));
    }

    #[test]
    fn one_voxel_slices_give_no_pairs() {
        let s = settings("glcm", vec![TextureAggregation::D2Avg]);
        assert!(matches!(
            compute(&roi(2, 1, 1, &[1.0, 2.0]), &s),
            Err(FeatureError::Undefined { .. })
        ));
    }

    #[test]
    fn averaging_and_merging_agree_on_a_single_matrix() {
        // Only x-neighbours exist in a 1×1×3 line: every aggregation sees one matrix.
        let r = roi(1, 1, 3, &[1.0, 2.0, 4.0]);
        let all = vec![TextureAggregation::D25Avg, TextureAggregation::D3Comb];
        let f = compute(&r, &settings("glcm", all)).unwrap();
        for name in FEATURES {
            let a = get(&f, &format!("cm_{name}_2_5D_avg"));
            let b = get(&f, &format!("cm_{name}_3D_comb"));
            assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}");
        }
    }
}
