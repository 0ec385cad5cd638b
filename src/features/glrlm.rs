//! Grey level run length matrix features (IBSI 1 section 3.7, tags `rlm_*`).
//!
//! Input: the lesion's grey levels from [`crate::image::discretise`] (1-based, intensity
//! mask only). Output: the 16 IBSI GLRLM features for every aggregation listed in
//! [`FamilySettings::texture_aggregations`], tagged `rlm_<feature>_<suffix>` (e.g.
//! `rlm_sre_3D_avg`), aggregation by aggregation in settings order.
//!
//! A run is a maximal sequence of consecutive intensity-mask voxels with the same grey level
//! along one direction `m`; `r_ij` counts the runs of grey level `i` and length `j`. Runs
//! follow the 4 in-plane (2D, 2.5D) or 13 (3D) unique directions of
//! [`super::texture`], one voxel per step: IBSI defines no neighbour distance for the GLRLM,
//! so `texture_distance_vox` does not apply. A voxel outside the intensity mask ends a run.
//!
//! Aggregation is that of the GLCM (IBSI 3.7 "aggregating features"): `*_avg` averages the
//! features of the directional (and, in 2D, per-slice) matrices, `*_comb` merges their
//! counts first. When matrices are merged, `N_v` of the run percentage is the sum of the
//! voxel counts of the merged matrices (IBSI 3.7.13), so `r_perc` is the number of runs
//! per voxel and direction.
//!
//! Undefined values: none. Every intensity-mask voxel lies in exactly one run per
//! direction, so each matrix of a non-empty ROI has runs, and no formula divides by zero
//! (`i, j ≥ 1`). An empty intensity mask is [`FeatureError::EmptyRoi`] (discretisation).

use std::ops::Range;

use super::texture::{
    self, FamilyTags, LengthFamily, LengthMatrix, LevelIndex, N_LENGTH_FEATURES, step,
};
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

/// Tags of the family: `rlm_<feature>_<aggregation>`, the 16 features in output order
/// (IBSI 3.7.1 – 3.7.16).
pub const TAGS: FamilyTags<N_LENGTH_FEATURES> = FamilyTags {
    prefix: "rlm",
    features: [
        "sre",
        "lre",
        "lgre",
        "hgre",
        "srlge",
        "srhge",
        "lrlge",
        "lrhge",
        "glnu",
        "glnu_norm",
        "rlnu",
        "rlnu_norm",
        "r_perc",
        "gl_var",
        "rl_var",
        "rl_entr",
    ],
    empty_reason: "no run in the intensity mask",
};

/// Names produced by [`compute`]: `rlm_<feature>_<suffix>` per configured aggregation.
pub fn names(s: &FamilySettings) -> Vec<String> {
    let suffixes = s.texture_aggregations.iter().map(|a| a.suffix());
    TAGS.names(suffixes).collect()
}

/// Compute the GLRLM features for every configured aggregation (IBSI 3.7).
///
/// With `r_ij` the run counts, `N_s` the number of runs, `N_v` the voxels the runs cover,
/// `i` grey levels, `j` run lengths (formulas in [`LengthMatrix::features`]):
///
/// ```text
/// sre        short runs emphasis              Σ_j r_.j / j² / N_s      (3.7.1)
/// lre        long runs emphasis               Σ_j r_.j j² / N_s        (3.7.2)
/// lgre       low grey level run emphasis      Σ_i r_i. / i² / N_s      (3.7.3)
/// hgre       high grey level run emphasis     Σ_i r_i. i² / N_s        (3.7.4)
/// srlge      short run low grey level emph.   Σ r_ij / (i² j²) / N_s   (3.7.5)
/// srhge      short run high grey level emph.  Σ r_ij i² / j² / N_s     (3.7.6)
/// lrlge      long run low grey level emph.    Σ r_ij j² / i² / N_s     (3.7.7)
/// lrhge      long run high grey level emph.   Σ r_ij i² j² / N_s       (3.7.8)
/// glnu       grey level non-uniformity        Σ_i r_i.² / N_s          (3.7.9)
/// glnu_norm  normalised                       Σ_i r_i.² / N_s²         (3.7.10)
/// rlnu       run length non-uniformity        Σ_j r_.j² / N_s          (3.7.11)
/// rlnu_norm  normalised                       Σ_j r_.j² / N_s²         (3.7.12)
/// r_perc     run percentage                   N_s / N_v                (3.7.13)
/// gl_var     grey level variance              Σ (i − μ)² p_ij          (3.7.14)
/// rl_var     run length variance              Σ (j − μ)² p_ij          (3.7.15)
/// rl_entr    run entropy                      −Σ p_ij log2 p_ij        (3.7.16)
/// ```
///
/// # Errors
/// Discretisation errors; [`FeatureError::InvalidSettings`] for more than
/// [`texture::MAX_GREY_LEVELS`] distinct grey levels.
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    if s.texture_aggregations.is_empty() {
        return Ok(Vec::new());
    }
    let grey = discretise(roi, s)?;
    let levels = LevelIndex::new(&grey.levels, grey.n_levels, "GLRLM")?;
    texture::aggregate_by_direction(
        &LengthFamily {
            levels: &levels,
            tags: &TAGS,
        },
        &s.texture_aggregations,
        levels.n_slices(),
        |d, zs| runs(&levels, d, zs),
    )
}

/// The run length matrix of direction `d` over slices `zs`: every voxel whose predecessor
/// along `d` is outside the mask, the slices or of another grey level starts a run, which
/// is then followed to its end. Each voxel is visited once per direction plus once per run.
fn runs(levels: &LevelIndex, d: [isize; 3], zs: Range<usize>) -> LengthMatrix {
    let dim = levels.index.dim();
    let back = [-d[0], -d[1], -d[2]];
    let mut m = LengthMatrix::default();
    for z in zs.clone() {
        for y in 0..dim.1 {
            for x in 0..dim.2 {
                let v = [z, y, x];
                let Some(level) = levels.at(v) else {
                    continue;
                };
                let continues_run = step(dim, v, back, &zs).and_then(|p| levels.at(p));
                if continues_run == Some(level) {
                    continue;
                }
                let mut length = 1_u32;
                let mut cur = v;
                while let Some(next) =
                    step(dim, cur, d, &zs).filter(|n| levels.at(*n) == Some(level))
                {
                    length += 1;
                    cur = next;
                }
                m.add(level, length, u64::from(length));
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::settings::TextureAggregation;
    use crate::features::texture::test_support::{close, get, roi, settings};
    use ndarray::Array3;

    #[test]
    fn runs_along_x_of_a_line_by_hand() {
        // Line 1 1 2 2 2 along x: runs (level 1, length 2) and (level 2, length 3).
        let levels = LevelIndex::new(
            &Array3::from_shape_vec((1, 1, 5), vec![1, 1, 2, 2, 2]).unwrap(),
            2,
            "GLRLM",
        )
        .unwrap();
        let m = runs(&levels, [0, 0, 1], 0..1);
        let f = m.features(&levels.values).unwrap();
        // N_s = 2, N_v = 5; sre = (1/4 + 1/9) / 2; lre = (4 + 9) / 2; hgre = (1 + 4) / 2.
        assert!(close(f[0], (0.25 + 1.0 / 9.0) / 2.0));
        assert!(close(f[1], 6.5));
        assert!(close(f[3], 2.5));
        assert!(close(f[12], 0.4));
        assert!(close(f[15], 1.0));
        // Along y every voxel is its own run: 5 runs of length 1.
        let f = runs(&levels, [0, 1, 0], 0..1)
            .features(&levels.values)
            .unwrap();
        assert!(close(f[0], 1.0));
        assert!(close(f[12], 1.0));
    }

    #[test]
    fn masked_voxel_ends_a_run() {
        let mut r = roi(1, 1, 3, &[1.0, 1.0, 1.0]);
        r.intensity_mask[[0, 0, 1]] = false;
        let s = settings("glrlm", vec![TextureAggregation::D3Comb]);
        let f = compute(&r, &s).unwrap();
        assert_eq!(
            names(&s),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        // Every one of 13 directions sees two runs of length 1 over two voxels.
        assert!(close(get(&f, "rlm_sre_3D_comb"), 1.0));
        assert!(close(get(&f, "rlm_r_perc_3D_comb"), 1.0));
        assert!(close(get(&f, "rlm_glnu_3D_comb"), 26.0));
    }

    #[test]
    fn merged_run_percentage_sums_voxels_over_directions() {
        // 2×2 in-plane block of one level: 0° and 90° give 2 runs of length 2 each, each
        // diagonal gives runs of length 2, 1 and 1: 10 runs over 4 × 4 = 16 voxels.
        let r = roi(1, 2, 2, &[3.0; 4]);
        let s = settings(
            "glrlm",
            vec![TextureAggregation::D2Comb, TextureAggregation::D25Avg],
        );
        let f = compute(&r, &s).unwrap();
        assert!(close(get(&f, "rlm_r_perc_2D_comb"), 10.0 / 16.0));
        // Average over directions of 2/4, 3/4, 2/4, 3/4.
        assert!(close(get(&f, "rlm_r_perc_2_5D_avg"), 0.625));
        // One grey level: grey level variance 0, glnu_norm 1.
        assert!(close(get(&f, "rlm_gl_var_2D_comb"), 0.0));
        assert!(close(get(&f, "rlm_glnu_norm_2D_comb"), 1.0));
    }
}
