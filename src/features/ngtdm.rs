//! Neighbourhood grey tone difference matrix features (IBSI 1 section 3.10, family IPET,
//! tags `ngt_*`).
//!
//! Input: the lesion's grey levels from [`crate::image::discretise`] (1-based, intensity
//! mask only). Output: the 5 IBSI NGTDM features per dimension (`2D`, `2_5D`, `3D`, see
//! [`super::neighbourhood`]), tagged `ngt_<feature>_<dim>` (e.g. `ngt_busyness_2_5D`),
//! dimension by dimension in settings order.
//!
//! The matrix follows IBSI's deviation from Amadasun and King: a voxel's neighbourhood
//! is the voxels within Chebyshev distance δ that lie in the intensity mask (`W_k` of
//! them); a voxel with `W_k = 0` has no valid neighbourhood and does not count. Then
//! `s_i = Σ_{k: X_k = i, W_k > 0} |i − X̄_k|`, `n_i` counts those voxels,
//! `N_vc = Σ n_i`, `p_i = n_i / N_vc` and `N_gp` is the number of levels with `p_i > 0`.
//!
//! Degenerate matrices follow IBSI's conventions: coarseness is capped at
//! [`MAX_COARSENESS`], contrast and busyness are 0 for `N_gp = 1`, strength is 0 for
//! `Σ s_i = 0`. Busyness with `N_gp > 1` but a zero denominator (`i·p_i` equal for every
//! level) has no IBSI convention and is [`FeatureError::Undefined`], as is a dimension in
//! which no voxel has a valid neighbourhood (e.g. every slice holds one voxel).

use super::neighbourhood::{self, Dimension, LevelIndex};
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

/// Short names of the 5 features in output order (IBSI 3.10.1 – 3.10.5).
pub const FEATURES: [&str; 5] = [
    "coarseness",
    "contrast",
    "busyness",
    "complexity",
    "strength",
];

/// Number of NGTDM features (IBSI 3.10).
const N_FEATURES: usize = FEATURES.len();

/// Coarseness when `Σ p_i s_i = 0` (IBSI 3.10.1, coarseness, QCDE: "the maximum
/// coarseness value is set to an arbitrary number of 10⁶").
pub const MAX_COARSENESS: f64 = 1.0e6;

/// Names produced by [`compute`]: `ngt_<feature>_<dim>` per configured dimension.
pub fn names(s: &FamilySettings) -> Vec<String> {
    Dimension::from_aggregations(&s.texture_aggregations)
        .into_iter()
        .flat_map(|d| {
            FEATURES
                .iter()
                .map(move |f| format!("ngt_{f}_{}", d.suffix()))
        })
        .collect()
}

/// Compute the NGTDM features for every configured dimension (IBSI 3.10).
///
/// With `v_i` the grey level of matrix row `i` and sums over levels with `p_i > 0`:
///
/// ```text
/// coarseness  1 / Σ p_i s_i                                        (3.10.1)
/// contrast    [Σ_i Σ_j p_i p_j (v_i − v_j)² / (N_gp (N_gp − 1))] · Σ s_i / N_vc  (3.10.2)
/// busyness    Σ p_i s_i / Σ_i Σ_j |v_i p_i − v_j p_j|              (3.10.3)
/// complexity  Σ_i Σ_j |v_i − v_j| (p_i s_i + p_j s_j) / (p_i + p_j) / N_vc  (3.10.4)
/// strength    Σ_i Σ_j (p_i + p_j)(v_i − v_j)² / Σ s_i              (3.10.5)
/// ```
///
/// # Errors
/// Discretisation errors; [`FeatureError::InvalidSettings`] for a distance outside
/// `1..=`[`neighbourhood::MAX_DISTANCE_VOX`]; [`FeatureError::Undefined`] as described in
/// the module docs.
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let dims = Dimension::from_aggregations(&s.texture_aggregations);
    if dims.is_empty() {
        return Ok(Vec::new());
    }
    let delta = neighbourhood::distance(s)?;
    let grey = discretise(roi, s)?;
    let levels = LevelIndex::new(&grey.levels)?;
    let nz = levels.index.dim().0;
    let in_plane = neighbourhood::offsets(delta, true);
    let slices: Vec<Ngtdm> = if dims.iter().any(|d| *d != Dimension::D3) {
        (0..nz)
            .map(|z| Ngtdm::build(&levels, &in_plane, z..z + 1))
            .collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(dims.len() * N_FEATURES);
    for dim in dims {
        let values = match dim {
            Dimension::D2 => {
                let per_slice: Result<Vec<_>, _> =
                    slices.iter().map(|m| m.features(&levels.values)).collect();
                neighbourhood::mean_of(per_slice.map_err(|r| undefined(dim, r))?)
            }
            Dimension::D25 => {
                let mut merged = Ngtdm::zeros(levels.len());
                for m in &slices {
                    merged.add(m);
                }
                merged
                    .features(&levels.values)
                    .map_err(|r| undefined(dim, r))?
            }
            Dimension::D3 => {
                let volume = neighbourhood::offsets(delta, false);
                Ngtdm::build(&levels, &volume, 0..nz)
                    .features(&levels.values)
                    .map_err(|r| undefined(dim, r))?
            }
        };
        let values = values.ok_or_else(|| FeatureError::Undefined {
            feature: format!("ngt_coarseness_{}", dim.suffix()),
            reason: "no voxel of the intensity mask has a neighbour in the mask",
        })?;
        out.extend(
            FEATURES
                .iter()
                .zip(values)
                .map(|(f, v)| Feature::new(format!("ngt_{f}_{}", dim.suffix()), v)),
        );
    }
    Ok(out)
}

/// The error for busyness with a zero denominator.
fn undefined(dim: Dimension, reason: &'static str) -> FeatureError {
    FeatureError::Undefined {
        feature: format!("ngt_busyness_{}", dim.suffix()),
        reason,
    }
}

/// One NGTDM: `n_i` and `s_i` per distinct grey level.
#[derive(Debug, Clone, PartialEq)]
struct Ngtdm {
    n: Vec<f64>,
    s: Vec<f64>,
}

impl Ngtdm {
    fn zeros(levels: usize) -> Self {
        Ngtdm {
            n: vec![0.0; levels],
            s: vec![0.0; levels],
        }
    }

    /// The matrix of the voxels in slices `zs` with neighbourhood `offsets` (IBSI 3.10).
    fn build(levels: &LevelIndex, offsets: &[[isize; 3]], zs: std::ops::Range<usize>) -> Self {
        let mut m = Ngtdm::zeros(levels.len());
        let v = &levels.values;
        levels.for_each_voxel(offsets, zs, |centre, neighbours| {
            if neighbours.is_empty() {
                return; // W_k = 0: no valid neighbourhood.
            }
            let mean = neighbours.iter().map(|&n| v[n]).sum::<f64>() / neighbours.len() as f64;
            m.n[centre] += 1.0;
            m.s[centre] += (v[centre] - mean).abs();
        });
        m
    }

    /// Merge (IBSI 62GR): sum `n_i` and `s_i`.
    fn add(&mut self, other: &Ngtdm) {
        for (a, b) in self.n.iter_mut().zip(&other.n) {
            *a += b;
        }
        for (a, b) in self.s.iter_mut().zip(&other.s) {
            *a += b;
        }
    }

    /// The 5 features (order of [`FEATURES`]); `None` when no voxel has a neighbourhood.
    fn features(&self, values: &[f64]) -> Result<Option<[f64; N_FEATURES]>, &'static str> {
        let n_vc: f64 = self.n.iter().sum();
        if n_vc <= 0.0 {
            return Ok(None);
        }
        // (grey level, p_i, s_i) of the levels with p_i > 0.
        let rows: Vec<(f64, f64, f64)> = values
            .iter()
            .zip(self.n.iter().zip(&self.s))
            .filter(|(_, (n, _))| **n > 0.0)
            .map(|(&v, (&n, &s))| (v, n / n_vc, s))
            .collect();
        let n_gp = rows.len() as f64;
        let sum_s: f64 = rows.iter().map(|r| r.2).sum();
        let sum_ps: f64 = rows.iter().map(|(_, p, s)| p * s).sum();
        let (mut pair_contrast, mut busy_denominator) = (0.0, 0.0);
        let (mut complexity, mut strength) = (0.0, 0.0);
        for &(vi, pi, si) in &rows {
            for &(vj, pj, sj) in &rows {
                let diff = vi - vj;
                pair_contrast += pi * pj * diff * diff;
                busy_denominator += (vi * pi - vj * pj).abs();
                complexity += diff.abs() * (pi * si + pj * sj) / (pi + pj);
                strength += (pi + pj) * diff * diff;
            }
        }
        let coarseness = if sum_ps > 0.0 {
            (1.0 / sum_ps).min(MAX_COARSENESS)
        } else {
            MAX_COARSENESS
        };
        let (contrast, busyness) = if rows.len() == 1 {
            (0.0, 0.0)
        } else if busy_denominator > 0.0 {
            (
                pair_contrast / (n_gp * (n_gp - 1.0)) * sum_s / n_vc,
                sum_ps / busy_denominator,
            )
        } else {
            // LIMITATION: in `2D` one such slice makes the whole aggregation undefined, as
            // IBSI gives no value to average in its place.
            return Err("Σ|i·p_i − j·p_j| is zero although several grey levels occur");
        };
        let strength = if sum_s > 0.0 { strength / sum_s } else { 0.0 };
        Ok(Some([
            coarseness,
            contrast,
            busyness,
            complexity / n_vc,
            strength,
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::settings::TextureAggregation;
    use ndarray::Array3;

    fn settings(aggs: Vec<TextureAggregation>) -> FamilySettings {
        neighbourhood::test_settings(&aggs)
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
    fn three_voxel_row_hand_computed() {
        // Voxel 1: neighbours {2} → |1 − 2| = 1. Voxel 2 (middle): {1, 2} → |2 − 1.5| = 0.5.
        // Voxel 2 (end): {2} → 0. n = [1, 2], s = [1, 0.5], N_vc = 3, p = [1/3, 2/3].
        let s = settings(vec![TextureAggregation::D3Avg]);
        let f = compute(&roi(1, 1, 3, &[1.0, 2.0, 2.0]), &s).unwrap();
        assert_eq!(
            names(&s),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        let sum_ps = 1.0 / 3.0 + 2.0 / 3.0 * 0.5; // 2/3
        assert!((get(&f, "ngt_coarseness_3D") - 1.0 / sum_ps).abs() < 1e-12);
        // Σ_ij p_i p_j (i − j)² = 2 · (1/3)(2/3) = 4/9; / (2 · 1) · (1.5 / 3).
        assert!((get(&f, "ngt_contrast_3D") - 4.0 / 9.0 / 2.0 * 0.5).abs() < 1e-12);
        // Σ_ij |i p_i − j p_j| = 2 · |1/3 − 4/3| = 2.
        assert!((get(&f, "ngt_busyness_3D") - sum_ps / 2.0).abs() < 1e-12);
        // 2 · |1 − 2| · (1/3 + 1/3) / 1 / 3.
        assert!((get(&f, "ngt_complexity_3D") - 2.0 * (2.0 / 3.0) / 3.0).abs() < 1e-12);
        // 2 · (1) · 1 / 1.5.
        assert!((get(&f, "ngt_strength_3D") - 2.0 / 1.5).abs() < 1e-12);
    }

    #[test]
    fn flat_region_uses_ibsi_conventions() {
        let s = settings(vec![TextureAggregation::D2Avg]);
        let f = compute(&roi(1, 2, 2, &[3.0; 4]), &s).unwrap();
        assert_eq!(get(&f, "ngt_coarseness_2D"), MAX_COARSENESS);
        assert_eq!(get(&f, "ngt_contrast_2D"), 0.0);
        assert_eq!(get(&f, "ngt_busyness_2D"), 0.0);
        assert_eq!(get(&f, "ngt_complexity_2D"), 0.0);
        assert_eq!(get(&f, "ngt_strength_2D"), 0.0);
    }

    #[test]
    fn isolated_voxels_have_no_neighbourhood() {
        // Two slices of one voxel each: no in-plane neighbours at all.
        let s = settings(vec![TextureAggregation::D2Avg]);
        assert!(matches!(
            compute(&roi(2, 1, 1, &[1.0, 2.0]), &s),
            Err(FeatureError::Undefined { .. })
        ));
        // In 3D they are neighbours of each other.
        let s = settings(vec![TextureAggregation::D3Comb]);
        assert!(compute(&roi(2, 1, 1, &[1.0, 2.0]), &s).is_ok());
    }

    #[test]
    fn merged_slices_differ_from_averaged_slices() {
        let r = roi(2, 1, 2, &[1.0, 2.0, 1.0, 1.0]);
        let s = settings(vec![TextureAggregation::D2Avg, TextureAggregation::D25Avg]);
        let f = compute(&r, &s).unwrap();
        // Slice 0: s = [1, 1], p = [.5, .5]: coarseness 1. Slice 1 flat: 10⁶.
        assert!((get(&f, "ngt_coarseness_2D") - (1.0 + MAX_COARSENESS) / 2.0).abs() < 1e-6);
        // Merged: n = [3, 1], s = [1, 1], p = [.75, .25]: Σ p s = 1.
        assert!((get(&f, "ngt_coarseness_2_5D") - 1.0).abs() < 1e-12);
    }
}
