//! Grey level distance zone matrix features (IBSI 1 section 3.9, tags `dzm_*`).
//!
//! Input: the lesion's grey levels from [`crate::image::discretise`] (1-based, intensity
//! mask only) and its morphological mask. Output: the 16 IBSI GLDZM features per
//! aggregation variant, tagged `dzm_<feature>_<variant>` (e.g. `dzm_sde_3D`).
//!
//! Zones are those of the GLSZM ([`super::glszm`]): maximal sets of same-grey-level
//! intensity-mask voxels under 26-connectedness (3D) or in-plane 8-connectedness (2D).
//! `d_ij` counts the zones of grey level `i` whose distance to the ROI edge is `j`.
//!
//! Distance (IBSI 3.9): the distance map is computed on the **morphological** mask, while
//! the zones come from the **intensity** mask (IBSI 3.9 "morphological and intensity
//! masks"), so holes made by re-segmentation do not count as ROI edge. A voxel's distance is
//! the smallest number of face steps (6-connectedness in 3D, 4-connectedness within the
//! slice in 2D) that reaches a voxel outside the morphological mask or the crop; voxels on
//! the edge have distance 1, not 0. This equals the iterative erosion IBSI describes and is
//! computed by a breadth-first search from the edge voxels in `O(N_v)`. A zone's distance
//! is the minimum over its voxels.
//!
//! Aggregation: as for the GLSZM, `2D` (per-slice matrices, features averaged over
//! slices, 2D distance maps), `2_5D` (slice matrices merged, `N_v` summed) and `3D`; the
//! configured aggregations map by dimension (`2D_avg`/`2D_comb` → `2D`, …), each variant
//! output once ([`SliceAggregation::requested`]).
//!
//! Undefined values: none for a consistent ROI (`i, j ≥ 1`). An intensity-mask voxel
//! outside the morphological mask would have distance 0; such an ROI is refused with
//! [`FeatureError::Undefined`] rather than dividing by zero.

use std::collections::VecDeque;

use ndarray::Array3;

use super::glszm::{for_each_zone, neighbours, too_large_zone};
use super::texture::{
    self, DIRECTIONS_2D, DIRECTIONS_3D, FamilyTags, LengthFamily, LengthMatrix, LevelIndex,
    N_LENGTH_FEATURES, SliceAggregation, step,
};
use super::{FamilySettings, Feature, FeatureError, Roi};
use crate::image::discretise::discretise;

/// Tags of the family: `dzm_<feature>_<aggregation>`, the 16 features in output order
/// (IBSI 3.9.1 – 3.9.16).
pub const TAGS: FamilyTags<N_LENGTH_FEATURES> = FamilyTags {
    prefix: "dzm",
    features: [
        "sde",
        "lde",
        "lgze",
        "hgze",
        "sdlge",
        "sdhge",
        "ldlge",
        "ldhge",
        "glnu",
        "glnu_norm",
        "zdnu",
        "zdnu_norm",
        "z_perc",
        "gl_var",
        "zd_var",
        "zd_entr",
    ],
    empty_reason: "no zone in the intensity mask",
};

/// Face neighbours in 3D: the ROI-edge distance uses 6-connectedness (IBSI 3.9).
const FACES_3D: [[isize; 3]; 6] = [
    [-1, 0, 0],
    [1, 0, 0],
    [0, -1, 0],
    [0, 1, 0],
    [0, 0, -1],
    [0, 0, 1],
];

/// Edge neighbours within a slice: the 2D ROI-edge distance uses 4-connectedness (IBSI 3.9).
const FACES_2D: [[isize; 3]; 4] = [[0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]];

/// Distance of a voxel on the ROI edge (IBSI 3.9: the lowest distance is 1, not 0).
const EDGE_DISTANCE: u32 = 1;

/// Names produced by [`compute`]: `dzm_<feature>_<variant>` per requested variant.
pub fn names(s: &FamilySettings) -> Vec<String> {
    let variants = SliceAggregation::requested(&s.texture_aggregations);
    TAGS.names(variants.into_iter().map(|v| v.suffix()))
        .collect()
}

/// Compute the GLDZM features for every requested variant (IBSI 3.9).
///
/// With `d_ij` the zone counts, `N_s` the number of zones, `N_v` the voxels they cover,
/// `i` grey levels and `j` zone distances (formulas in [`LengthMatrix::features`]):
///
/// ```text
/// sde        small distance emphasis          Σ_j d_.j / j² / N_s      (3.9.1)
/// lde        large distance emphasis          Σ_j d_.j j² / N_s        (3.9.2)
/// lgze       low grey level zone emphasis     Σ_i d_i. / i² / N_s      (3.9.3)
/// hgze       high grey level zone emphasis    Σ_i d_i. i² / N_s        (3.9.4)
/// sdlge      small dist. low grey level emph. Σ d_ij / (i² j²) / N_s   (3.9.5)
/// sdhge      small dist. high grey level emph Σ d_ij i² / j² / N_s     (3.9.6)
/// ldlge      large dist. low grey level emph. Σ d_ij j² / i² / N_s     (3.9.7)
/// ldhge      large dist. high grey level emph Σ d_ij i² j² / N_s       (3.9.8)
/// glnu       grey level non-uniformity        Σ_i d_i.² / N_s          (3.9.9)
/// glnu_norm  normalised                       Σ_i d_i.² / N_s²         (3.9.10)
/// zdnu       zone distance non-uniformity     Σ_j d_.j² / N_s          (3.9.11)
/// zdnu_norm  normalised                       Σ_j d_.j² / N_s²         (3.9.12)
/// z_perc     zone percentage                  N_s / N_v                (3.9.13)
/// gl_var     grey level variance              Σ (i − μ)² p_ij          (3.9.14)
/// zd_var     zone distance variance           Σ (j − μ)² p_ij          (3.9.15)
/// zd_entr    zone distance entropy            −Σ p_ij log2 p_ij        (3.9.16)
/// ```
///
/// # Errors
/// Discretisation errors; [`FeatureError::InvalidSettings`] for more than
/// [`texture::MAX_GREY_LEVELS`] distinct grey levels or masks of different shapes;
/// [`FeatureError::Undefined`] for an intensity-mask voxel outside the morphological mask.
pub fn compute(roi: &Roi, s: &FamilySettings) -> Result<Vec<Feature>, FeatureError> {
    let variants = SliceAggregation::requested(&s.texture_aggregations);
    if variants.is_empty() {
        return Ok(Vec::new());
    }
    let grey = discretise(roi, s)?;
    let levels = LevelIndex::new(&grey.levels, grey.n_levels, "GLDZM")?;
    if roi.morph_mask.dim() != levels.index.dim() {
        return Err(FeatureError::InvalidSettings(format!(
            "morphological mask {:?} and intensity array {:?} differ in shape",
            roi.morph_mask.dim(),
            levels.index.dim()
        )));
    }
    let nz = levels.n_slices();
    let per_slice = variants.iter().any(|v| *v != SliceAggregation::D3);
    let in_plane = per_slice.then(|| {
        let distance = border_distance(&roi.morph_mask, &FACES_2D);
        (distance, neighbours(&DIRECTIONS_2D))
    });
    texture::aggregate_by_slice(
        &LengthFamily {
            levels: &levels,
            tags: &TAGS,
        },
        &variants,
        nz,
        |z| match &in_plane {
            Some((distance, links)) => zone_distances(&levels, distance, z..z + 1, links),
            None => Ok(LengthMatrix::default()),
        },
        || {
            let distance = border_distance(&roi.morph_mask, &FACES_3D);
            zone_distances(&levels, &distance, 0..nz, &neighbours(&DIRECTIONS_3D))
        },
    )
}

/// The distance zone matrix of the zones within slices `zs`, linked through `links`, with
/// each zone's distance the minimum of `distance` over its voxels.
fn zone_distances(
    levels: &LevelIndex,
    distance: &Array3<u32>,
    zs: std::ops::Range<usize>,
    links: &[[isize; 3]],
) -> Result<LengthMatrix, FeatureError> {
    let mut m = LengthMatrix::default();
    for_each_zone(levels, zs, links, |level, voxels| {
        let nearest = voxels.iter().map(|v| distance[*v]).min().unwrap_or(0);
        if nearest < EDGE_DISTANCE {
            return Err(FeatureError::Undefined {
                feature: format!("{}_{}", TAGS.prefix, TAGS.features[0]),
                reason: "an intensity-mask voxel lies outside the morphological mask",
            });
        }
        let size = u64::try_from(voxels.len()).map_err(|_| too_large_zone())?;
        m.add(level, nearest, size);
        Ok(())
    })?;
    Ok(m)
}

/// Distance of every `mask` voxel to the ROI edge along `faces` steps (IBSI 3.9), `0`
/// outside the mask. Voxels with a face neighbour outside the mask or the array have
/// distance [`EDGE_DISTANCE`]; a breadth-first search from them assigns every other voxel
/// one more than its nearest already-reached neighbour. With in-plane `faces` each slice
/// is independent.
pub fn border_distance(mask: &Array3<bool>, faces: &[[isize; 3]]) -> Array3<u32> {
    let dim = mask.dim();
    let all = 0..dim.0;
    let mut distance = Array3::<u32>::zeros(dim);
    let mut queue = VecDeque::new();
    for (v, _) in mask.indexed_iter().filter(|(_, m)| **m) {
        let v = [v.0, v.1, v.2];
        let on_edge = faces
            .iter()
            .any(|d| step(dim, v, *d, &all).is_none_or(|n| !mask[n]));
        if on_edge {
            distance[v] = EDGE_DISTANCE;
            queue.push_back(v);
        }
    }
    while let Some(v) = queue.pop_front() {
        let next = distance[v] + 1;
        for d in faces {
            if let Some(n) = step(dim, v, *d, &all).filter(|n| mask[*n] && distance[*n] == 0) {
                distance[n] = next;
                queue.push_back(n);
            }
        }
    }
    distance
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::settings::TextureAggregation;
    use crate::features::texture::test_support::{close, get, roi, settings};

    #[test]
    fn distance_map_of_a_5x5_square_by_hand() {
        let mask = Array3::from_elem((1, 5, 5), true);
        let d = border_distance(&mask, &FACES_2D);
        assert!((0..5).all(|x| d[[0, 0, x]] == 1 && d[[0, 4, x]] == 1));
        assert_eq!(d[[0, 1, 1]], 2);
        assert_eq!(d[[0, 2, 2]], 3);
        assert_eq!(d[[0, 2, 1]], 2);
        // In 3D a single slice is all edge (its faces touch the outside in z).
        assert!(border_distance(&mask, &FACES_3D).iter().all(|&v| v == 1));
    }

    #[test]
    fn four_by_four_image_by_hand() {
        // The grey levels of the 2D example image of IBSI 3.9; the distance map is 1 on the
        // rim and 2 on the inner 2×2.
        //   1 2 2 3
        //   1 2 3 3
        //   4 2 4 1
        //   4 1 2 3
        // Zones by hand under 8-connectedness: level 1 {(0,0),(1,0)}, {(2,3)}, {(3,1)};
        // level 2 {(0,1),(0,2),(1,1),(2,1),(3,2)} (the last two touch diagonally); level 3
        // {(0,3),(1,2),(1,3)}, {(3,3)}; level 4 {(2,0),(3,0)}, {(2,2)}. Only the lone inner
        // 4 has distance 2: d = [[3,0],[1,0],[2,0],[1,1]], N_s = 8, d_.1 = 7, d_.2 = 1.
        let values = [
            1.0, 2.0, 2.0, 3.0, 1.0, 2.0, 3.0, 3.0, 4.0, 2.0, 4.0, 1.0, 4.0, 1.0, 2.0, 3.0,
        ];
        let f = compute(
            &roi(1, 4, 4, &values),
            &settings("gldzm", vec![TextureAggregation::D2Avg]),
        )
        .unwrap();
        assert!(close(get(&f, "dzm_sde_2D"), (7.0 + 0.25) / 8.0));
        assert!(close(get(&f, "dzm_lde_2D"), (7.0 + 4.0) / 8.0));
        assert!(close(get(&f, "dzm_z_perc_2D"), 8.0 / 16.0));
        // ldhge: Σ d_ij i² j² = 3·1 + 1·4 + 2·9 + 1·16 + 1·16·4 = 105.
        assert!(close(get(&f, "dzm_ldhge_2D"), 105.0 / 8.0));
        // zdnu = (7² + 1²) / 8; glnu = (3² + 1² + 2² + 2²) / 8.
        assert!(close(get(&f, "dzm_zdnu_2D"), 50.0 / 8.0));
        assert!(close(get(&f, "dzm_glnu_2D"), 18.0 / 8.0));
    }

    #[test]
    fn distance_uses_morphological_mask_and_refuses_outside_voxels() {
        // A 1×5×5 square with one interior zone of another level at the centre: distance 3
        // from the morphological mask.
        let mut values = [1.0_f32; 25];
        values[12] = 2.0;
        let mut r = roi(1, 5, 5, &values);
        r.intensity_mask[[0, 1, 2]] = false; // a re-segmentation hole next to the centre
        let f = compute(&r, &settings("gldzm", vec![TextureAggregation::D25Avg])).unwrap();
        // Zones: level 1 around the centre (distance 1) and level 2 at the centre: distance
        // 3 on the morphological mask; on the intensity mask the hole would make it 2.
        assert!(close(get(&f, "dzm_lde_2_5D"), (1.0 + 9.0) / 2.0));
        // Intensity voxel outside the morphological mask → undefined.
        r.morph_mask[[0, 2, 2]] = false;
        assert!(matches!(
            compute(&r, &settings("gldzm", vec![TextureAggregation::D3Avg])),
            Err(FeatureError::Undefined { .. })
        ));
    }
}
