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
//! with one grey level). radscore then returns [`FeatureError::Undefined`] instead of a
//! made-up number; an aggregation without any non-empty matrix is an error too.
//!
//! Internally the matrix is stored over the grey levels that occur in the ROI only (zero
//! rows and columns add nothing to any feature), while the features use the grey level
//! values themselves and `N_g` from discretisation.

use ndarray::Array3;

use super::settings::TextureAggregation;
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

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

/// The 4 unique in-plane neighbour directions `[dz, dy, dx]` (IBSI 3.1.3: 0°, 45°, 90°,
/// 135° in the axial plane).
pub const DIRECTIONS_2D: [[isize; 3]; 4] = [[0, 0, 1], [0, 1, 1], [0, 1, 0], [0, 1, -1]];

/// The 13 unique 3D neighbour directions `[dz, dy, dx]` (IBSI 3.1.3, 26-connectedness
/// halved by symmetry).
pub const DIRECTIONS_3D: [[isize; 3]; 13] = [
    [0, 0, 1],
    [0, 1, 1],
    [0, 1, 0],
    [0, 1, -1],
    [1, -1, -1],
    [1, -1, 0],
    [1, -1, 1],
    [1, 0, -1],
    [1, 0, 0],
    [1, 0, 1],
    [1, 1, -1],
    [1, 1, 0],
    [1, 1, 1],
];

/// Largest number of distinct grey levels in a ROI for which dense matrices are built.
///
/// LIMITATION: dense L×L matrices; more distinct levels (e.g. `none` on raw HU) are refused.
pub const MAX_GREY_LEVELS: usize = 2048;

/// Names produced by [`compute`]: `cm_<feature>_<suffix>` per configured aggregation.
pub fn names(s: &FamilySettings) -> Vec<String> {
    s.texture_aggregations
        .iter()
        .flat_map(|agg| {
            FEATURES
                .iter()
                .map(move |f| format!("cm_{f}_{}", agg.suffix()))
        })
        .collect()
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
    let levels = LevelIndex::new(&grey.levels, grey.n_levels)?;
    let delta = isize::try_from(s.texture_distance_vox)
        .ok()
        .filter(|d| *d >= 1)
        .ok_or_else(|| FeatureError::InvalidSettings("texture_distance_vox must be ≥ 1".into()))?;
    let aggs = &s.texture_aggregations;
    let wants = |a: TextureAggregation| aggs.contains(&a);
    let mut results: Vec<(TextureAggregation, Averager)> = Vec::new();

    let any_2d = [
        TextureAggregation::D2Avg,
        TextureAggregation::D2Comb,
        TextureAggregation::D25Avg,
        TextureAggregation::D25Comb,
    ]
    .into_iter()
    .any(wants);
    if any_2d {
        let mut avg_2d = Averager::new(TextureAggregation::D2Avg);
        let mut comb_2d = Averager::new(TextureAggregation::D2Comb);
        let mut per_direction = vec![Matrix::zeros(levels.len()); DIRECTIONS_2D.len()];
        for z in 0..levels.index.dim().0 {
            let mats: Vec<Matrix> = DIRECTIONS_2D
                .iter()
                .map(|d| levels.count(scale(*d, delta), z..z + 1))
                .collect();
            if wants(TextureAggregation::D2Avg) {
                for m in &mats {
                    avg_2d.add(levels.features(m))?;
                }
            }
            if wants(TextureAggregation::D2Comb) {
                comb_2d.add(levels.features(&Matrix::sum(levels.len(), &mats)))?;
            }
            for (acc, m) in per_direction.iter_mut().zip(&mats) {
                acc.add_counts(m);
            }
        }
        let mut avg_25d = Averager::new(TextureAggregation::D25Avg);
        if wants(TextureAggregation::D25Avg) {
            for m in &per_direction {
                avg_25d.add(levels.features(m))?;
            }
        }
        let mut comb_25d = Averager::new(TextureAggregation::D25Comb);
        if wants(TextureAggregation::D25Comb) {
            comb_25d.add(levels.features(&Matrix::sum(levels.len(), &per_direction)))?;
        }
        results.push((TextureAggregation::D2Avg, avg_2d));
        results.push((TextureAggregation::D2Comb, comb_2d));
        results.push((TextureAggregation::D25Avg, avg_25d));
        results.push((TextureAggregation::D25Comb, comb_25d));
    }
    if wants(TextureAggregation::D3Avg) || wants(TextureAggregation::D3Comb) {
        let nz = levels.index.dim().0;
        let mut avg_3d = Averager::new(TextureAggregation::D3Avg);
        let mut merged = Matrix::zeros(levels.len());
        for d in DIRECTIONS_3D {
            let m = levels.count(scale(d, delta), 0..nz);
            if wants(TextureAggregation::D3Avg) {
                avg_3d.add(levels.features(&m))?;
            }
            merged.add_counts(&m);
        }
        let mut comb_3d = Averager::new(TextureAggregation::D3Comb);
        if wants(TextureAggregation::D3Comb) {
            comb_3d.add(levels.features(&merged))?;
        }
        results.push((TextureAggregation::D3Avg, avg_3d));
        results.push((TextureAggregation::D3Comb, comb_3d));
    }

    let mut out = Vec::with_capacity(aggs.len() * N_FEATURES);
    for agg in aggs {
        let averager = results.iter().find(|(a, _)| a == agg).map(|(_, v)| v);
        let mean = averager
            .and_then(Averager::mean)
            .ok_or_else(|| FeatureError::Undefined {
                feature: format!("cm_joint_max_{}", agg.suffix()),
                reason: "no pair of neighbouring voxels in the intensity mask",
            })?;
        out.extend(
            FEATURES
                .iter()
                .zip(mean)
                .map(|(f, v)| Feature::new(format!("cm_{f}_{}", agg.suffix()), v)),
        );
    }
    Ok(out)
}

/// A direction scaled to Chebyshev distance `delta`.
fn scale(d: [isize; 3], delta: isize) -> [isize; 3] {
    [d[0] * delta, d[1] * delta, d[2] * delta]
}

/// A feature IBSI leaves undefined for one matrix: `(feature, reason)`.
type Degenerate = (&'static str, &'static str);

/// Running mean of the feature vectors of one aggregation; `add` skips empty matrices.
struct Averager {
    aggregation: TextureAggregation,
    sum: [f64; N_FEATURES],
    count: usize,
}

impl Averager {
    fn new(aggregation: TextureAggregation) -> Self {
        Averager {
            aggregation,
            sum: [0.0; N_FEATURES],
            count: 0,
        }
    }

    /// Add one matrix's features.
    ///
    /// LIMITATION: one degenerate matrix (e.g. a flat slice in `2D_avg`) makes the whole
    /// aggregation undefined, because IBSI gives no value to average in its place.
    fn add(
        &mut self,
        f: Result<Option<[f64; N_FEATURES]>, Degenerate>,
    ) -> Result<(), FeatureError> {
        match f {
            Ok(Some(values)) => {
                for (s, v) in self.sum.iter_mut().zip(values) {
                    *s += v;
                }
                self.count += 1;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err((feature, reason)) => Err(FeatureError::Undefined {
                feature: format!("cm_{feature}_{}", self.aggregation.suffix()),
                reason,
            }),
        }
    }

    fn mean(&self) -> Option<[f64; N_FEATURES]> {
        (self.count > 0).then(|| self.sum.map(|s| s / self.count as f64))
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

    fn add_counts(&mut self, other: &Matrix) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    fn sum(n: usize, mats: &[Matrix]) -> Matrix {
        let mut out = Matrix::zeros(n);
        for m in mats {
            out.add_counts(m);
        }
        out
    }
}

/// Grey levels of the ROI re-indexed to the distinct levels that occur.
struct LevelIndex {
    /// Index into `values` per voxel, `-1` outside the intensity mask; `[z, y, x]`.
    index: Array3<i32>,
    /// The distinct grey levels, ascending.
    values: Vec<f64>,
    /// `N_g` from discretisation.
    n_g: f64,
}

impl LevelIndex {
    fn new(levels: &Array3<u32>, n_levels: u32) -> Result<Self, FeatureError> {
        let mut distinct: Vec<u32> = levels.iter().copied().filter(|&g| g > 0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > MAX_GREY_LEVELS {
            return Err(FeatureError::InvalidSettings(format!(
                "{} distinct grey levels; GLCM supports at most {MAX_GREY_LEVELS}",
                distinct.len()
            )));
        }
        let index = levels.mapv(|g| match distinct.binary_search(&g) {
            Ok(i) if g > 0 => i as i32,
            _ => -1,
        });
        let values = distinct.iter().map(|&g| f64::from(g)).collect();
        Ok(LevelIndex {
            index,
            values,
            n_g: f64::from(n_levels),
        })
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    /// Symmetric counts of pairs `(v, v + d)` with `v` in slices `zs`, both in the mask.
    fn count(&self, d: [isize; 3], zs: std::ops::Range<usize>) -> Matrix {
        let n = self.len();
        let mut m = Matrix::zeros(n);
        let (nz, ny, nx) = self.index.dim();
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
                    let (a, b) = (self.index[[z, y, x]], self.index[[z2, y2, x2]]);
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
    fn features(&self, m: &Matrix) -> Result<Option<[f64; N_FEATURES]>, Degenerate> {
        let total: f64 = m.counts.iter().sum();
        if total <= 0.0 {
            return Ok(None);
        }
        let n = m.n;
        let v = &self.values;
        let n_g = self.n_g;
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
        if var <= 0.0 {
            return Err(("corr", "zero marginal variance (one grey level)"));
        }
        f[18] /= var;
        if hx <= 0.0 {
            return Err(("info_corr1", "zero marginal entropy (one grey level)"));
        }
        f[23] = (hxy - hxy1) / hx;
        let hxy2 = 2.0 * hx;
        f[24] = (1.0 - (-2.0 * (hxy2 - hxy)).exp()).max(0.0).sqrt();
        Ok(Some(f))
    }
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
    use crate::features::Discretisation;

    fn settings(aggs: Vec<TextureAggregation>) -> FamilySettings {
        FamilySettings {
            families: vec!["glcm".into()],
            ivh_discretisation: None,
            ngldm_alpha: 0,
            resegment_range_hu: None,
            discretisation: Discretisation::None,
            texture_distance_vox: 1,
            texture_aggregations: aggs,
            min_voxels: 1,
        }
    }

    fn roi(z: usize, y: usize, x: usize, values: &[f32]) -> Roi {
        let hu = Array3::from_shape_vec((z, y, x), values.to_vec()).unwrap();
        let mask = Array3::from_elem(hu.dim(), true);
        Roi {
            hu,
            intensity_mask: mask.clone(),
            morph_mask: mask,
            spacing_mm: [1.0; 3],
        }
    }

    fn get(f: &[Feature], tag: &str) -> f64 {
        f.iter().find(|x| x.name == tag).unwrap().value
    }

    #[test]
    fn two_voxels_hand_computed() {
        // One pair (1, 2) along x: p = [[0, .5], [.5, 0]], N_g = 2.
        let s = settings(vec![TextureAggregation::D3Comb]);
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
        let s = settings(vec![TextureAggregation::D3Avg]);
        assert!(matches!(
            compute(&r, &s),
            Err(FeatureError::Undefined { .. })
        ));
    }

    #[test]
    fn one_voxel_slices_give_no_pairs() {
        let s = settings(vec![TextureAggregation::D2Avg]);
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
        let f = compute(&r, &settings(all)).unwrap();
        for name in FEATURES {
            let a = get(&f, &format!("cm_{name}_2_5D_avg"));
            let b = get(&f, &format!("cm_{name}_3D_comb"));
            assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}");
        }
    }
}
