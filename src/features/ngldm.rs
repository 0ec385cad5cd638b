//! Neighbouring grey level dependence matrix features (IBSI 1 section 3.11, family REK0,
//! tags `ngl_*`).
//!
//! Input: the lesion's grey levels from [`crate::image::discretise`] (1-based, intensity
//! mask only). Output: the 17 IBSI NGLDM features per dimension (`2D`, `2_5D`, `3D`, see
//! [`super::neighbourhood`]), tagged `ngl_<feature>_<dim>` (e.g. `ngl_dc_entr_3D`),
//! dimension by dimension in settings order.
//!
//! Every voxel `k` of the intensity mask gets the dependence
//! `j_k = 1 + #{neighbours m within Chebyshev distance δ, in the mask, |X_k − X_m| ≤ α}`
//! with coarseness parameter `α = ngldm_alpha`; IBSI counts all mask voxels, so the
//! number of neighbourhoods `N_s` equals the number of voxels `N_v`. Element `s_ij` of the
//! matrix counts voxels of grey level `i` with dependence `j`; `p_ij = s_ij / N_s`,
//! `s_i.` and `s_.j` are the marginal sums. A dimension without any mask voxel cannot
//! occur (discretisation refuses an empty mask), so every feature is defined.

use super::neighbourhood::{self, Dimension, LevelIndex};
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

/// Short names of the 17 features in output order (IBSI 3.11.1 – 3.11.17).
pub const FEATURES: [&str; 17] = [
    "lde",
    "hde",
    "lgce",
    "hgce",
    "ldlge",
    "ldhge",
    "hdlge",
    "hdhge",
    "glnu",
    "glnu_norm",
    "dcnu",
    "dcnu_norm",
    "dc_perc",
    "gl_var",
    "dc_var",
    "dc_entr",
    "dc_energy",
];

/// Number of NGLDM features (IBSI 3.11).
const N_FEATURES: usize = FEATURES.len();

/// Names produced by [`compute`]: `ngl_<feature>_<dim>` per configured dimension.
pub fn names(s: &FamilySettings) -> Vec<String> {
    Dimension::from_aggregations(&s.texture_aggregations)
        .into_iter()
        .flat_map(|d| {
            FEATURES
                .iter()
                .map(move |f| format!("ngl_{f}_{}", d.suffix()))
        })
        .collect()
}

/// Compute the NGLDM features for every configured dimension (IBSI 3.11).
///
/// With `i` the grey level, `j` the dependence and `N_s = Σ s_ij`:
///
/// ```text
/// lde        Σ_j s_.j / j² / N_s              (3.11.1)
/// hde        Σ_j j² s_.j / N_s                (3.11.2)
/// lgce       Σ_i s_i. / i² / N_s              (3.11.3)
/// hgce       Σ_i i² s_i. / N_s                (3.11.4)
/// ldlge      Σ s_ij / (i² j²) / N_s           (3.11.5)
/// ldhge      Σ i² s_ij / j² / N_s             (3.11.6)
/// hdlge      Σ j² s_ij / i² / N_s             (3.11.7)
/// hdhge      Σ i² j² s_ij / N_s               (3.11.8)
/// glnu       Σ_i s_i.² / N_s                  (3.11.9)
/// glnu_norm  Σ_i s_i.² / N_s²                 (3.11.10)
/// dcnu       Σ_j s_.j² / N_s                  (3.11.11)
/// dcnu_norm  Σ_j s_.j² / N_s²                 (3.11.12)
/// dc_perc    N_s / N_v                        (3.11.13)
/// gl_var     Σ (i − μ_i)² p_ij, μ_i = Σ i p_ij (3.11.14)
/// dc_var     Σ (j − μ_j)² p_ij, μ_j = Σ j p_ij (3.11.15)
/// dc_entr    −Σ p_ij log2 p_ij                (3.11.16)
/// dc_energy  Σ p_ij²                          (3.11.17)
/// ```
///
/// # Errors
/// Discretisation errors; [`FeatureError::InvalidSettings`] for a distance outside
/// `1..=`[`neighbourhood::MAX_DISTANCE_VOX`].
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let dims = Dimension::from_aggregations(&s.texture_aggregations);
    if dims.is_empty() {
        return Ok(Vec::new());
    }
    let delta = neighbourhood::distance(s)?;
    let grey = discretise(roi, s)?;
    let levels = LevelIndex::new(&grey.levels)?;
    let alpha = f64::from(s.ngldm_alpha);
    let nz = levels.index.dim().0;
    let in_plane = neighbourhood::offsets(delta, true);
    let slices: Vec<Ngldm> = if dims.iter().any(|d| *d != Dimension::D3) {
        (0..nz)
            .map(|z| Ngldm::build(&levels, &in_plane, z..z + 1, alpha))
            .collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(dims.len() * N_FEATURES);
    for dim in dims {
        let values = match dim {
            Dimension::D2 => {
                neighbourhood::mean_of(slices.iter().map(|m| m.features(&levels.values)))
            }
            Dimension::D25 => {
                let mut merged = Ngldm::zeros(levels.len(), in_plane.len() + 1);
                for m in &slices {
                    merged.add(m);
                }
                merged.features(&levels.values)
            }
            Dimension::D3 => {
                let volume = neighbourhood::offsets(delta, false);
                Ngldm::build(&levels, &volume, 0..nz, alpha).features(&levels.values)
            }
        };
        let values = values.ok_or_else(|| FeatureError::Undefined {
            feature: format!("ngl_lde_{}", dim.suffix()),
            reason: "the intensity mask holds no voxel",
        })?;
        out.extend(
            FEATURES
                .iter()
                .zip(values)
                .map(|(f, v)| Feature::new(format!("ngl_{f}_{}", dim.suffix()), v)),
        );
    }
    Ok(out)
}

/// One NGLDM: dense counts over (distinct grey level, dependence − 1), and `N_v`.
#[derive(Debug, Clone, PartialEq)]
struct Ngldm {
    /// Number of dependence columns (`j = 1 …= cols`).
    cols: usize,
    counts: Vec<f64>,
    n_voxels: f64,
}

impl Ngldm {
    fn zeros(levels: usize, cols: usize) -> Self {
        Ngldm {
            cols,
            counts: vec![0.0; levels * cols],
            n_voxels: 0.0,
        }
    }

    /// The matrix of the voxels in slices `zs` with neighbourhood `offsets` (IBSI 3.11).
    fn build(
        levels: &LevelIndex,
        offsets: &[[isize; 3]],
        zs: std::ops::Range<usize>,
        alpha: f64,
    ) -> Self {
        let cols = offsets.len() + 1;
        let mut m = Ngldm::zeros(levels.len(), cols);
        let v = &levels.values;
        levels.for_each_voxel(offsets, zs, |centre, neighbours| {
            let dependent = neighbours
                .iter()
                .filter(|&&n| (v[n] - v[centre]).abs() <= alpha)
                .count();
            // j_k = 1 + dependent ≤ offsets.len() + 1 = cols: column `dependent`.
            m.counts[centre * cols + dependent] += 1.0;
            m.n_voxels += 1.0;
        });
        m
    }

    /// Merge (IBSI 62GR): sum counts and `N_v`; both matrices have the same shape.
    fn add(&mut self, other: &Ngldm) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n_voxels += other.n_voxels;
    }

    /// The 17 features (order of [`FEATURES`]); `None` for an empty matrix.
    fn features(&self, values: &[f64]) -> Option<[f64; N_FEATURES]> {
        let n_s: f64 = self.counts.iter().sum();
        if n_s <= 0.0 || self.n_voxels <= 0.0 {
            return None;
        }
        let mut f = [0.0; N_FEATURES];
        let mut row_sums = vec![0.0; values.len()];
        let mut col_sums = vec![0.0; self.cols];
        let (mut mu_i, mut mu_j) = (0.0, 0.0);
        for (r, row) in self.counts.chunks_exact(self.cols).enumerate() {
            let i = values[r];
            for (c, &count) in row.iter().enumerate().filter(|(_, c)| **c > 0.0) {
                let j = (c + 1) as f64;
                let (i2, j2) = (i * i, j * j);
                let p = count / n_s;
                f[0] += count / j2;
                f[1] += count * j2;
                f[2] += count / i2;
                f[3] += count * i2;
                f[4] += count / (i2 * j2);
                f[5] += count * i2 / j2;
                f[6] += count * j2 / i2;
                f[7] += count * i2 * j2;
                row_sums[r] += count;
                col_sums[c] += count;
                mu_i += i * p;
                mu_j += j * p;
                f[15] -= p * p.log2();
                f[16] += p * p;
            }
        }
        for v in &mut f[..8] {
            *v /= n_s;
        }
        let row_sq: f64 = row_sums.iter().map(|s| s * s).sum();
        let col_sq: f64 = col_sums.iter().map(|s| s * s).sum();
        f[8] = row_sq / n_s;
        f[9] = row_sq / (n_s * n_s);
        f[10] = col_sq / n_s;
        f[11] = col_sq / (n_s * n_s);
        f[12] = n_s / self.n_voxels;
        for (r, row) in self.counts.chunks_exact(self.cols).enumerate() {
            for (c, &count) in row.iter().enumerate().filter(|(_, c)| **c > 0.0) {
                let p = count / n_s;
                f[13] += (values[r] - mu_i).powi(2) * p;
                f[14] += ((c + 1) as f64 - mu_j).powi(2) * p;
            }
        }
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::settings::TextureAggregation;
    use ndarray::Array3;

    fn settings(aggs: Vec<TextureAggregation>, alpha: u32) -> FamilySettings {
        let mut s = neighbourhood::test_settings(&aggs);
        s.ngldm_alpha = alpha;
        s
    }

    fn roi(z: usize, y: usize, x: usize, values: &[f32]) -> Roi {
        let hu = Array3::from_shape_vec((z, y, x), values.to_vec()).unwrap();
        let mask = hu.mapv(|v| v > 0.0);
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
    fn row_of_three_hand_computed() {
        // Row 1 2 2: voxel 1 → j = 1; middle 2 → j = 2 (one equal neighbour); end 2 → j = 2.
        // s = {(1, 1): 1, (2, 2): 2}, N_s = 3.
        let s = settings(vec![TextureAggregation::D3Avg], 0);
        let f = compute(&roi(1, 1, 3, &[1.0, 2.0, 2.0]), &s).unwrap();
        assert_eq!(
            names(&s),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        let close = |tag: &str, want: f64| {
            let got = get(&f, tag);
            assert!((got - want).abs() < 1e-12, "{tag}: {got} vs {want}");
        };
        close("ngl_lde_3D", (1.0 + 2.0 / 4.0) / 3.0);
        close("ngl_hde_3D", (1.0 + 2.0 * 4.0) / 3.0);
        close("ngl_lgce_3D", (1.0 + 2.0 / 4.0) / 3.0);
        close("ngl_hgce_3D", (1.0 + 8.0) / 3.0);
        close("ngl_ldlge_3D", (1.0 + 2.0 / 16.0) / 3.0);
        close("ngl_ldhge_3D", (1.0 + 2.0) / 3.0);
        close("ngl_hdlge_3D", (1.0 + 2.0) / 3.0);
        close("ngl_hdhge_3D", (1.0 + 2.0 * 16.0) / 3.0);
        close("ngl_glnu_3D", 5.0 / 3.0);
        close("ngl_glnu_norm_3D", 5.0 / 9.0);
        close("ngl_dcnu_3D", 5.0 / 3.0);
        close("ngl_dc_perc_3D", 1.0);
        // μ_i = 5/3: variance (1/3)(4/9) + (2/3)(1/9) = 2/9; the same for j.
        close("ngl_gl_var_3D", 2.0 / 9.0);
        close("ngl_dc_var_3D", 2.0 / 9.0);
        let entropy =
            -(1.0_f64 / 3.0 * (1.0_f64 / 3.0).log2() + 2.0 / 3.0 * (2.0_f64 / 3.0).log2());
        close("ngl_dc_entr_3D", entropy);
        close("ngl_dc_energy_3D", 5.0 / 9.0);
    }

    #[test]
    fn alpha_widens_dependence() {
        let r = roi(1, 1, 3, &[1.0, 2.0, 2.0]);
        let f = compute(&r, &settings(vec![TextureAggregation::D2Avg], 1)).unwrap();
        // α = 1: every neighbour is dependent: j = 2, 3, 2.
        let want = (4.0 + 9.0 + 4.0) / 3.0;
        assert!((get(&f, "ngl_hde_2D") - want).abs() < 1e-12);
    }

    #[test]
    fn neighbours_outside_the_mask_do_not_count() {
        // The 0 voxel is outside the mask: the 2 next to it has only one neighbour.
        let r = roi(1, 1, 3, &[2.0, 2.0, 0.0]);
        let f = compute(&r, &settings(vec![TextureAggregation::D3Comb], 0)).unwrap();
        assert!((get(&f, "ngl_hde_3D") - 4.0).abs() < 1e-12);
    }

    #[test]
    fn slices_average_and_merge() {
        // Slice 0: 1 1 (j = 2, 2); slice 1: 1 3 (j = 1, 1).
        let r = roi(2, 1, 2, &[1.0, 1.0, 1.0, 3.0]);
        let s = settings(
            vec![TextureAggregation::D2Comb, TextureAggregation::D25Avg],
            0,
        );
        let f = compute(&r, &s).unwrap();
        // 2D: mean of lde 1/4 and 1 → 5/8; 2.5D: (2/4 + 2) / 4 = 5/8 as well, but glnu:
        // 2D mean(2, 1) = 1.5; 2.5D: s_1. = 3, s_3. = 1 → 10/4.
        assert!((get(&f, "ngl_lde_2D") - 0.625).abs() < 1e-12);
        assert!((get(&f, "ngl_lde_2_5D") - 0.625).abs() < 1e-12);
        assert!((get(&f, "ngl_glnu_2D") - 1.5).abs() < 1e-12);
        assert!((get(&f, "ngl_glnu_2_5D") - 2.5).abs() < 1e-12);
    }
}
