//! Image and mask perturbations that mimic a test–retest scan of one lesion.
//!
//! A [`Perturbation`] combines, in this order: an in-plane rotation about the lesion's
//! centre and a sub-voxel translation (both by resampling: trilinear intensities, mask
//! fraction thresholded at 0.5), additive Gaussian noise, a ±1 voxel volume adaptation
//! (6-connected dilation or erosion) and contour randomisation by supervoxels
//! ([`super::supervoxels`]). The chain follows Zwanenburg A. et al., *Assessing robustness
//! of radiomic features by image perturbation*, Sci. Rep. 9, 614 (2019),
//! doi:10.1038/s41598-018-36938-4.
//!
//! Everything runs on a crop around the lesion: [`perturb_lesion`] returns a small
//! [`Volume`] on the crop's grid and the perturbed [`LesionMask`] on it, which the normal
//! extraction ([`crate::pipeline::compute_lesion`]) then reads.

use ndarray::{Array3, Zip};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::supervoxels;
use crate::image::{Grid, LesionMask, Volume};
use crate::pipeline::ROI_CONTEXT_MARGIN_MM;

/// A resampled mask voxel belongs to the lesion when its interpolated fraction reaches
/// this (IBSI 1 section 2.4, partial-volume threshold 0.5).
const MASK_FRACTION_THRESHOLD: f64 = 0.5;

/// Extra voxels kept around the lesion beyond the context margin, so a dilation and the
/// rotated corners of the bounding box stay inside the crop.
const CROP_SLACK_VOX: usize = 2;

/// One perturbation: the same settings are applied to every lesion (a fixed "rater").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perturbation {
    /// Rotation about the lesion's centre in the axial (y–x) plane, degrees.
    pub rotation_deg: f64,
    /// Translation along `[z, y, x]`, in voxels (a fraction of a voxel).
    pub translation_vox: [f64; 3],
    /// Standard deviation of the added Gaussian noise, HU (0: none).
    pub noise_sd_hu: f64,
    /// Volume adaptation: +1 dilates, −1 erodes the mask by one voxel, 0 leaves it.
    pub volume_change_vox: i32,
    /// Whether the contour is randomised by supervoxels.
    pub contour_randomisation: bool,
}

/// The perturbed lesion on its own small grid.
pub struct PerturbedLesion {
    /// The crop around the lesion, perturbed.
    pub volume: Volume,
    /// The perturbed mask on that crop's grid (offset `[0, 0, 0]`).
    pub mask: LesionMask,
}

/// Apply `p` to `lesion` of `volume`; `rng` drives the noise and the contour choices.
pub fn perturb_lesion(
    volume: &Volume,
    lesion: &LesionMask,
    p: &Perturbation,
    rng: &mut ChaCha8Rng,
) -> PerturbedLesion {
    let crop = Crop::around(volume, lesion);
    let (mut hu, fraction) = resample_rigid(volume, lesion, &crop, p);
    let mut mask = fraction.mapv(|f| f >= MASK_FRACTION_THRESHOLD);

    if p.noise_sd_hu > 0.0 {
        add_noise(&mut hu, p.noise_sd_hu, rng);
    }
    match p.volume_change_vox.signum() {
        1 => mask = dilate(&mask),
        -1 => mask = erode(&mask),
        _ => {}
    }
    if p.contour_randomisation {
        mask = supervoxels::randomise_contour(&hu, &mask, volume.grid.spacing_mm, rng);
    }

    let grid = Grid {
        shape_vox: crop.shape(),
        origin_mm: volume.grid.index_to_world(crop.lo.map(|v| v as f64)),
        ..volume.grid.clone()
    };
    PerturbedLesion {
        volume: Volume {
            grid,
            hu: hu.into(),
        },
        mask: LesionMask {
            label: lesion.label,
            name: lesion.name.clone(),
            offset_zyx: [0, 0, 0],
            mask,
        },
    }
}

/// The index box `[lo, hi)` on the series grid that a perturbed lesion is computed in.
struct Crop {
    lo: [usize; 3],
    hi: [usize; 3],
    /// Centre of the lesion's bounding box, series index `[z, y, x]`.
    centre: [f64; 3],
}

impl Crop {
    /// The lesion's bounding box plus the context margin, plus enough in-plane room for
    /// any rotation of the box, clipped to the series.
    fn around(volume: &Volume, lesion: &LesionMask) -> Crop {
        let [lo, hi] = lesion.bbox_zyx();
        let spacing = volume.grid.spacing_mm;
        let shape = volume.grid.shape_vox;
        let centre: [f64; 3] = std::array::from_fn(|a| (lo[a] + hi[a]) as f64 / 2.0);
        // Half the in-plane diagonal, mm: a rotated box never reaches further.
        let half_diagonal_mm = ((hi[1] - lo[1] + 1) as f64 * spacing[1])
            .hypot((hi[2] - lo[2] + 1) as f64 * spacing[2])
            / 2.0;
        let reach: [usize; 3] = std::array::from_fn(|a| {
            let in_plane = if a == 0 {
                (hi[0] - lo[0] + 1) as f64 / 2.0
            } else {
                half_diagonal_mm / spacing[a]
            };
            (in_plane + ROI_CONTEXT_MARGIN_MM / spacing[a]).ceil() as usize + CROP_SLACK_VOX
        });
        Crop {
            lo: std::array::from_fn(|a| (centre[a] as usize).saturating_sub(reach[a])),
            hi: std::array::from_fn(|a| (centre[a].ceil() as usize + reach[a] + 1).min(shape[a])),
            centre,
        }
    }

    fn shape(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.hi[a] - self.lo[a])
    }
}

/// Intensities (trilinear, edge-extended) and mask fraction (trilinear, 0 outside the
/// lesion box) at the crop voxels, after rotating by `rotation_deg` about the crop centre
/// in the y–x plane and translating by `translation_vox`.
fn resample_rigid(
    volume: &Volume,
    lesion: &LesionMask,
    crop: &Crop,
    p: &Perturbation,
) -> (Array3<f32>, Array3<f64>) {
    let spacing = volume.grid.spacing_mm;
    let (sin, cos) = p.rotation_deg.to_radians().sin_cos();
    let shape = crop.shape();
    let mut hu = Array3::<f32>::zeros(shape);
    let mut fraction = Array3::<f64>::zeros(shape);

    for ((k, j, i), out) in hu.indexed_iter_mut() {
        // Output voxel → source position: undo the translation, then the rotation.
        let target = [
            (crop.lo[0] + k) as f64,
            (crop.lo[1] + j) as f64,
            (crop.lo[2] + i) as f64,
        ];
        let d: [f64; 3] = std::array::from_fn(|a| {
            (target[a] - p.translation_vox[a] - crop.centre[a]) * spacing[a]
        });
        let source = [
            crop.centre[0] + d[0] / spacing[0],
            crop.centre[1] + (cos * d[1] + sin * d[2]) / spacing[1],
            crop.centre[2] + (-sin * d[1] + cos * d[2]) / spacing[2],
        ];
        *out = trilinear(
            &source,
            |idx| volume.hu.get(idx).map(f64::from),
            volume.grid.shape_vox,
            true,
        ) as f32;
        fraction[[k, j, i]] = trilinear(
            &source,
            |idx| lesion_member(lesion, idx),
            volume.grid.shape_vox,
            false,
        );
    }
    (hu, fraction)
}

/// 1.0 inside the lesion, 0.0 elsewhere (series index).
fn lesion_member(lesion: &LesionMask, idx: [usize; 3]) -> Option<f64> {
    let local: [usize; 3] = std::array::from_fn(|a| idx[a].wrapping_sub(lesion.offset_zyx[a]));
    Some(if lesion.mask.get(local).copied().unwrap_or(false) {
        1.0
    } else {
        0.0
    })
}

/// Trilinear interpolation of `value` at continuous index `pos` on a grid of `shape`.
/// With `extend_edges`, positions outside the grid take the nearest edge value (IBSI:
/// pad with the nearest intensity); otherwise they count as 0.
fn trilinear(
    pos: &[f64; 3],
    value: impl Fn([usize; 3]) -> Option<f64>,
    shape: [usize; 3],
    extend_edges: bool,
) -> f64 {
    let mut base = [0usize; 3];
    let mut weight = [0.0f64; 3];
    let mut inside = true;
    for a in 0..3 {
        let last = shape[a].saturating_sub(1) as f64;
        let clamped = pos[a].clamp(0.0, last);
        inside &= (pos[a] - clamped).abs() < 1e-9;
        let floor = clamped.floor();
        base[a] = floor as usize;
        weight[a] = clamped - floor;
    }
    if !inside && !extend_edges {
        return 0.0;
    }
    let mut sum = 0.0;
    for corner in 0..8usize {
        let mut w = 1.0;
        let mut idx = [0usize; 3];
        for a in 0..3 {
            let upper = corner >> a & 1 == 1;
            w *= if upper { weight[a] } else { 1.0 - weight[a] };
            idx[a] = (base[a] + usize::from(upper)).min(shape[a].saturating_sub(1));
        }
        if w > 0.0 {
            sum += w * value(idx).unwrap_or(0.0);
        }
    }
    sum
}

/// Add independent Gaussian noise of standard deviation `sd_hu` to every voxel.
fn add_noise(hu: &mut Array3<f32>, sd_hu: f64, rng: &mut ChaCha8Rng) {
    // A finite, positive sd always builds a distribution; 0 is filtered by the caller.
    let Ok(normal) = Normal::new(0.0, sd_hu) else {
        return;
    };
    for v in hu.iter_mut() {
        *v += normal.sample(rng) as f32;
    }
}

/// The six face neighbours of a voxel.
const FACE_NEIGHBOURS: [[isize; 3]; 6] = [
    [-1, 0, 0],
    [1, 0, 0],
    [0, -1, 0],
    [0, 1, 0],
    [0, 0, -1],
    [0, 0, 1],
];

/// Whether any face neighbour of `idx` (inside the array) is `want`.
fn any_neighbour(mask: &Array3<bool>, idx: (usize, usize, usize), want: bool) -> bool {
    FACE_NEIGHBOURS.iter().any(|d| {
        let n = [
            idx.0.wrapping_add_signed(d[0]),
            idx.1.wrapping_add_signed(d[1]),
            idx.2.wrapping_add_signed(d[2]),
        ];
        mask.get(n).is_some_and(|&m| m == want)
    })
}

/// Dilation by one voxel with the 6-connected structuring element.
pub fn dilate(mask: &Array3<bool>) -> Array3<bool> {
    let mut out = mask.clone();
    Zip::indexed(&mut out).for_each(|idx, m| *m = *m || any_neighbour(mask, idx, true));
    out
}

/// Erosion by one voxel with the 6-connected structuring element (voxels at the array
/// border keep their outside neighbours out of the count: the crop has margin).
pub fn erode(mask: &Array3<bool>) -> Array3<bool> {
    let mut out = mask.clone();
    Zip::indexed(&mut out).for_each(|idx, m| *m = *m && !any_neighbour(mask, idx, false));
    out
}

/// Draw `count` perturbations from `rng` within the given limits. Volume adaptation cycles
/// through −1, 0, +1 voxel so that every sign is represented.
pub fn draw_perturbations(
    count: usize,
    limits: &super::PerturbationLimits,
    rng: &mut ChaCha8Rng,
) -> Vec<Perturbation> {
    const VOLUME_CHANGES: [i32; 3] = [-1, 0, 1];
    (0..count)
        .map(|j| {
            let mut symmetric = |limit: f64| {
                if limit > 0.0 {
                    rng.random_range(-limit..=limit)
                } else {
                    0.0
                }
            };
            let rotation_deg = symmetric(limits.max_rotation_deg);
            let translation_vox = [
                symmetric(limits.max_translation_vox),
                symmetric(limits.max_translation_vox),
                symmetric(limits.max_translation_vox),
            ];
            Perturbation {
                rotation_deg,
                translation_vox,
                noise_sd_hu: limits.noise_sd_hu,
                volume_change_vox: if limits.volume_adaptation {
                    VOLUME_CHANGES[j % VOLUME_CHANGES.len()]
                } else {
                    0
                },
                contour_randomisation: limits.contour_randomisation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cube(n: usize, lo: usize, hi: usize) -> Array3<bool> {
        Array3::from_shape_fn((n, n, n), |(z, y, x)| {
            [z, y, x].iter().all(|&v| (lo..hi).contains(&v))
        })
    }

    fn count(m: &Array3<bool>) -> usize {
        m.iter().filter(|&&v| v).count()
    }

    #[test]
    fn dilation_and_erosion_move_the_surface_by_one_voxel() {
        let m = cube(7, 2, 5); // 3³ = 27 voxels
        // Dilation adds one voxel on each of the 6 faces (cross element): 27 + 6·9.
        assert_eq!(count(&dilate(&m)), 27 + 6 * 9);
        // Erosion keeps only the centre voxel.
        assert_eq!(count(&erode(&m)), 1);
    }

    fn test_volume() -> (Volume, LesionMask) {
        let n = 24;
        let grid = Grid {
            shape_vox: [n, n, n],
            spacing_mm: [2.0, 1.0, 1.0],
            origin_mm: [0.0; 3],
            direction: [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        };
        let hu = Array3::from_shape_fn((n, n, n), |(z, y, x)| (z * 100 + y * 10 + x) as f32);
        let lesion = LesionMask {
            label: 1,
            name: None,
            offset_zyx: [10, 9, 9],
            mask: Array3::from_elem((4, 6, 6), true),
        };
        (
            Volume {
                grid,
                hu: hu.into(),
            },
            lesion,
        )
    }

    fn identity() -> Perturbation {
        Perturbation {
            rotation_deg: 0.0,
            translation_vox: [0.0; 3],
            noise_sd_hu: 0.0,
            volume_change_vox: 0,
            contour_randomisation: false,
        }
    }

    #[test]
    fn the_identity_perturbation_reproduces_the_crop() {
        let (volume, lesion) = test_volume();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = perturb_lesion(&volume, &lesion, &identity(), &mut rng);
        assert_eq!(count(&out.mask.mask), lesion.voxel_count());
        // The crop's first voxel holds the series value at the crop origin.
        let origin = out.volume.grid.origin_mm;
        let idx = volume
            .grid
            .world_to_index(origin)
            .map(|v| v.round() as usize);
        assert_eq!(out.volume.hu.at([0, 0, 0]), volume.hu.at(idx));
    }

    #[test]
    fn a_quarter_turn_swaps_the_in_plane_extent() {
        let (volume, mut lesion) = test_volume();
        lesion.mask = Array3::from_elem((4, 2, 6), true);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let p = Perturbation {
            rotation_deg: 90.0,
            ..identity()
        };
        let out = perturb_lesion(&volume, &lesion, &p, &mut rng);
        assert_eq!(count(&out.mask.mask), 4 * 2 * 6);
        let extent = |axis: usize| {
            let idx: Vec<usize> = out
                .mask
                .mask
                .indexed_iter()
                .filter(|(_, m)| **m)
                .map(|(i, _)| [i.0, i.1, i.2][axis])
                .collect();
            idx.iter().max().unwrap() - idx.iter().min().unwrap() + 1
        };
        assert_eq!((extent(1), extent(2)), (6, 2));
    }

    #[test]
    fn same_seed_same_perturbations() {
        let limits = super::super::PerturbationLimits::default();
        let a = draw_perturbations(5, &limits, &mut ChaCha8Rng::seed_from_u64(7));
        let b = draw_perturbations(5, &limits, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(a, b);
        assert!(
            a.iter()
                .all(|p| p.rotation_deg.abs() <= limits.max_rotation_deg)
        );
    }
}
