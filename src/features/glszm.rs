//! Grey level size zone matrix features (IBSI 1 section 3.8, tags `szm_*`).
//!
//! Input: the lesion's grey levels from [`crate::image::discretise`] (1-based, intensity
//! mask only). Output: the 16 IBSI GLSZM features per aggregation variant, tagged
//! `szm_<feature>_<variant>` (e.g. `szm_sze_3D`).
//!
//! A zone is a maximal set of connected intensity-mask voxels with the same grey level;
//! `s_ij` counts the zones of grey level `i` and size `j` voxels. Voxels connect through
//! 26-connectedness in 3D and 8-connectedness within a slice in 2D (IBSI 3.8, linkage at
//! Chebyshev distance 1; `texture_distance_vox` does not apply).
//!
//! Aggregation (IBSI 3.8 "aggregating features"): the zone matrix has no direction, so IBSI
//! reports three variants, `2D` (per-slice matrices, features averaged over slices),
//! `2_5D` (slice matrices merged, `N_v` summed) and `3D` (one volume matrix). The
//! configured aggregations map by dimension: `2D_avg`/`2D_comb` → `2D`, `2_5D_avg`/
//! `2_5D_comb` → `2_5D`, `3D_avg`/`3D_comb` → `3D`, each variant output once at the
//! position of its first configured aggregation ([`SliceAggregation::requested`]).
//! A slice without intensity-mask voxels takes no part in the `2D` average.
//!
//! Undefined values: none. Every voxel of a non-empty ROI lies in a zone, and no formula
//! divides by zero (`i, j ≥ 1`).

use std::ops::Range;

use ndarray::Array3;

use super::texture::{
    self, DIRECTIONS_2D, DIRECTIONS_3D, FamilyTags, LengthFamily, LengthMatrix, LevelIndex,
    N_LENGTH_FEATURES, SliceAggregation, step,
};
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

/// Tags of the family: `szm_<feature>_<aggregation>`, the 16 features in output order
/// (IBSI 3.8.1 – 3.8.16).
pub const TAGS: FamilyTags<N_LENGTH_FEATURES> = FamilyTags {
    prefix: "szm",
    features: [
        "sze",
        "lze",
        "lgze",
        "hgze",
        "szlge",
        "szhge",
        "lzlge",
        "lzhge",
        "glnu",
        "glnu_norm",
        "zsnu",
        "zsnu_norm",
        "z_perc",
        "gl_var",
        "zs_var",
        "zs_entr",
    ],
    empty_reason: "no zone in the intensity mask",
};

/// Names produced by [`compute`]: `szm_<feature>_<variant>` per requested variant.
pub fn names(s: &FamilySettings) -> Vec<String> {
    let variants = SliceAggregation::requested(&s.texture_aggregations);
    TAGS.names(variants.into_iter().map(|v| v.suffix()))
        .collect()
}

/// Compute the GLSZM features for every requested variant (IBSI 3.8).
///
/// With `s_ij` the zone counts, `N_s` the number of zones, `N_v` the voxels they cover,
/// `i` grey levels and `j` zone sizes (formulas in [`LengthMatrix::features`]):
///
/// ```text
/// sze        small zone emphasis              Σ_j s_.j / j² / N_s      (3.8.1)
/// lze        large zone emphasis              Σ_j s_.j j² / N_s        (3.8.2)
/// lgze       low grey level zone emphasis     Σ_i s_i. / i² / N_s      (3.8.3)
/// hgze       high grey level zone emphasis    Σ_i s_i. i² / N_s        (3.8.4)
/// szlge      small zone low grey level emph.  Σ s_ij / (i² j²) / N_s   (3.8.5)
/// szhge      small zone high grey level emph. Σ s_ij i² / j² / N_s     (3.8.6)
/// lzlge      large zone low grey level emph.  Σ s_ij j² / i² / N_s     (3.8.7)
/// lzhge      large zone high grey level emph. Σ s_ij i² j² / N_s       (3.8.8)
/// glnu       grey level non-uniformity        Σ_i s_i.² / N_s          (3.8.9)
/// glnu_norm  normalised                       Σ_i s_i.² / N_s²         (3.8.10)
/// zsnu       zone size non-uniformity         Σ_j s_.j² / N_s          (3.8.11)
/// zsnu_norm  normalised                       Σ_j s_.j² / N_s²         (3.8.12)
/// z_perc     zone percentage                  N_s / N_v                (3.8.13)
/// gl_var     grey level variance              Σ (i − μ)² p_ij          (3.8.14)
/// zs_var     zone size variance               Σ (j − μ)² p_ij          (3.8.15)
/// zs_entr    zone size entropy                −Σ p_ij log2 p_ij        (3.8.16)
/// ```
///
/// # Errors
/// Discretisation errors; [`FeatureError::InvalidSettings`] for more than
/// [`texture::MAX_GREY_LEVELS`] distinct grey levels.
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let variants = SliceAggregation::requested(&s.texture_aggregations);
    if variants.is_empty() {
        return Ok(Vec::new());
    }
    let grey = discretise(roi, s)?;
    let levels = LevelIndex::new(&grey.levels, grey.n_levels, "GLSZM")?;
    let nz = levels.n_slices();
    let sizes = |zs: Range<usize>, neighbours: &[[isize; 3]]| {
        let mut m = LengthMatrix::default();
        for_each_zone(&levels, zs, neighbours, |level, voxels| {
            // A zone holds at most all voxels of the crop; u32 covers 4·10⁹ voxels.
            let size = u32::try_from(voxels.len()).map_err(|_| too_large_zone())?;
            m.add(level, size, u64::from(size));
            Ok(())
        })?;
        Ok(m)
    };
    let in_plane = neighbours(&DIRECTIONS_2D);
    let volume = neighbours(&DIRECTIONS_3D);
    texture::aggregate_by_slice(
        &LengthFamily {
            levels: &levels,
            tags: &TAGS,
        },
        &variants,
        nz,
        |z| sizes(z..z + 1, &in_plane),
        || sizes(0..nz, &volume),
    )
}

/// The error for a zone larger than `u32::MAX` voxels.
pub(crate) fn too_large_zone() -> FeatureError {
    FeatureError::InvalidSettings("a grey level zone exceeds 2³² voxels".into())
}

/// The neighbour offsets of a connectedness: the unique directions and their opposites
/// (4 + 4 = 8-connectedness in-plane, 13 + 13 = 26-connectedness in 3D; IBSI 3.8).
pub(crate) fn neighbours(directions: &[[isize; 3]]) -> Vec<[isize; 3]> {
    directions
        .iter()
        .flat_map(|d| [*d, [-d[0], -d[1], -d[2]]])
        .collect()
}

/// Call `visit(level, voxels)` for every zone of the intensity mask within slices `zs`:
/// a maximal set of same-level voxels connected through `neighbours` (IBSI 3.8). Zones are
/// found by flood fill in `[z, y, x]` order of their first voxel.
///
/// # Errors
/// The first error of `visit`.
pub(crate) fn for_each_zone(
    levels: &LevelIndex,
    zs: Range<usize>,
    neighbours: &[[isize; 3]],
    mut visit: impl FnMut(usize, &[[usize; 3]]) -> Result<(), FeatureError>,
) -> Result<(), FeatureError> {
    let dim = levels.index.dim();
    let mut seen = Array3::from_elem(dim, false);
    let mut zone: Vec<[usize; 3]> = Vec::new();
    for z in zs.clone() {
        for y in 0..dim.1 {
            for x in 0..dim.2 {
                let start = [z, y, x];
                let Some(level) = levels.at(start).filter(|_| !seen[start]) else {
                    continue;
                };
                seen[start] = true;
                zone.clear();
                zone.push(start);
                // `zone` doubles as the flood-fill queue: voxels before `next` are expanded.
                let mut next = 0;
                while let Some(&v) = zone.get(next) {
                    next += 1;
                    for d in neighbours {
                        let Some(n) = step(dim, v, *d, &zs) else {
                            continue;
                        };
                        if !seen[n] && levels.at(n) == Some(level) {
                            seen[n] = true;
                            zone.push(n);
                        }
                    }
                }
                visit(level, &zone)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::settings::TextureAggregation;
    use crate::features::texture::test_support::{close, get, roi, settings};

    #[test]
    fn diagonal_voxels_link_in_plane_and_across_slices() {
        // Slice 0: 1 2 / 2 1 → in 2D the two 1s touch diagonally (8-connected): zones
        // {1:2, 2:2}. Slice 1: 1 1 / 1 1 → one zone {1:4}. In 3D the 1s of both slices join
        // into one zone of 6; the 2s form one zone of 2.
        let r = roi(2, 2, 2, &[1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let s = settings(
            "glszm",
            vec![TextureAggregation::D2Avg, TextureAggregation::D3Comb],
        );
        let f = compute(&r, &s).unwrap();
        assert_eq!(
            names(&s),
            f.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
        );
        // 3D: zones (1, 6), (2, 2): sze = (1/36 + 1/4) / 2, z_perc = 2/8.
        assert!(close(get(&f, "szm_sze_3D"), (1.0 / 36.0 + 0.25) / 2.0));
        assert!(close(get(&f, "szm_z_perc_3D"), 0.25));
        assert!(close(get(&f, "szm_lzhge_3D"), (36.0 + 4.0 * 4.0) / 2.0));
        // 2D: slice 0 sze = 1/4, z_perc = 2/4; slice 1 sze = 1/16, z_perc = 1/4.
        assert!(close(get(&f, "szm_sze_2D"), (0.25 + 1.0 / 16.0) / 2.0));
        assert!(close(get(&f, "szm_z_perc_2D"), (0.5 + 0.25) / 2.0));
    }

    #[test]
    fn merged_slices_sum_zones_and_voxels() {
        // Two slices of one voxel each, levels 1 and 3: 2.5D merges (1, 1) and (3, 1).
        let r = roi(2, 1, 1, &[1.0, 3.0]);
        let s = settings(
            "glszm",
            vec![TextureAggregation::D25Comb, TextureAggregation::D25Avg],
        );
        let f = compute(&r, &s).unwrap();
        assert_eq!(names(&s).len(), TAGS.features.len());
        assert!(close(get(&f, "szm_z_perc_2_5D"), 1.0));
        assert!(close(get(&f, "szm_glnu_norm_2_5D"), 0.5));
        // μ = 2 → gl_var = ((1 − 2)² + (3 − 2)²) / 2 = 1; entropy = 1 bit.
        assert!(close(get(&f, "szm_gl_var_2_5D"), 1.0));
        assert!(close(get(&f, "szm_zs_entr_2_5D"), 1.0));
    }

    #[test]
    fn masked_voxels_split_zones() {
        let mut r = roi(1, 1, 3, &[2.0, 2.0, 2.0]);
        r.intensity_mask[[0, 0, 1]] = false;
        let f = compute(&r, &settings("glszm", vec![TextureAggregation::D3Avg])).unwrap();
        assert!(close(get(&f, "szm_sze_3D"), 1.0));
        assert!(close(get(&f, "szm_glnu_3D"), 2.0));
    }
}
