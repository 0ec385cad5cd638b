//! Contour randomisation by supervoxels (Zwanenburg et al. 2019, "C" perturbation).
//!
//! The image around the lesion is over-segmented into supervoxels with a SLIC-style local
//! k-means on intensity and position (Achanta R. et al., *SLIC superpixels compared to
//! state-of-the-art superpixel methods*, IEEE TPAMI 34(11), 2012,
//! doi:10.1109/TPAMI.2012.120), in 3D. Supervoxels wholly inside the mask stay in, those
//! outside stay out; a supervoxel that straddles the contour joins the new mask with
//! probability equal to the fraction of it the mask covers. The contour therefore moves
//! along intensity edges, like a second reader's delineation would.
//!
//! LIMITATION: hand-written because no maintained Rust crate does 3D SLIC on ndarray; it
//! is a plain SLIC (no connectivity enforcement), enough for a perturbation.

use ndarray::Array3;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Aim for this many supervoxels across the lesion (Zwanenburg et al. chose the count so
/// that a supervoxel is a small fraction of the ROI).
const SUPERVOXELS_PER_LESION: f64 = 20.0;

/// Smallest supervoxel, voxels, so tiny lesions are not cut into single voxels.
const MIN_SUPERVOXEL_VOX: f64 = 8.0;

/// SLIC compactness `m`: intensity difference, HU, that weighs as much as one grid step
/// of distance. Soft-tissue contrast in CT is tens of HU.
const COMPACTNESS_HU: f64 = 20.0;

/// SLIC iterations; Achanta et al. report convergence within about 10, we need only a
/// plausible partition.
const ITERATIONS: usize = 5;

/// A new mask: `mask` with its boundary supervoxels randomly added or removed.
pub fn randomise_contour(
    hu: &Array3<f32>,
    mask: &Array3<bool>,
    spacing_mm: [f64; 3],
    rng: &mut ChaCha8Rng,
) -> Array3<bool> {
    let inside = mask.iter().filter(|&&m| m).count();
    if inside == 0 {
        return mask.clone();
    }
    let labels = slic(hu, step_vox(inside, spacing_mm));

    let clusters = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut size = vec![0usize; clusters];
    let mut covered = vec![0usize; clusters];
    for (&label, &m) in labels.iter().zip(mask) {
        size[label] += 1;
        covered[label] += usize::from(m);
    }
    // One draw per supervoxel in label order, so the result depends only on the seed.
    let keep: Vec<bool> = (0..clusters)
        .map(|c| {
            let u: f64 = rng.random();
            match covered[c] {
                0 => false,
                n if n == size[c] => true,
                n => u < n as f64 / size[c] as f64,
            }
        })
        .collect();
    labels.mapv(|label| keep[label])
}

/// Grid step per axis, voxels, for about [`SUPERVOXELS_PER_LESION`] supervoxels of equal
/// physical extent across a lesion of `inside` voxels.
fn step_vox(inside: usize, spacing_mm: [f64; 3]) -> [usize; 3] {
    let voxel_mm3: f64 = spacing_mm.iter().product();
    let supervoxel_vox = (inside as f64 / SUPERVOXELS_PER_LESION).max(MIN_SUPERVOXEL_VOX);
    let edge_mm = (supervoxel_vox * voxel_mm3).cbrt();
    std::array::from_fn(|a| ((edge_mm / spacing_mm[a]).round() as usize).max(1))
}

/// A cluster centre: position (index) and mean intensity.
#[derive(Clone, Copy)]
struct Centre {
    pos: [f64; 3],
    hu: f64,
}

/// SLIC labels of every voxel of `hu`, seeded on a regular grid of `step` voxels.
fn slic(hu: &Array3<f32>, step: [usize; 3]) -> Array3<usize> {
    let shape = hu.dim();
    let dims = [shape.0, shape.1, shape.2];
    let mut centres = seed_centres(hu, dims, step);
    let mut labels = Array3::<usize>::zeros(shape);
    let mut best = Array3::<f64>::from_elem(shape, f64::INFINITY);

    for _ in 0..ITERATIONS {
        best.fill(f64::INFINITY);
        for (c, centre) in centres.iter().enumerate() {
            // Search a window of two grid steps around the centre (SLIC: 2S × 2S).
            let range = |a: usize| {
                let lo = (centre.pos[a] - 2.0 * step[a] as f64).floor().max(0.0) as usize;
                let hi = ((centre.pos[a] + 2.0 * step[a] as f64).ceil() as usize + 1).min(dims[a]);
                lo..hi
            };
            for z in range(0) {
                for y in range(1) {
                    for x in range(2) {
                        let spatial: f64 = [z, y, x]
                            .iter()
                            .enumerate()
                            .map(|(a, &v)| ((v as f64 - centre.pos[a]) / step[a] as f64).powi(2))
                            .sum();
                        let intensity =
                            ((f64::from(hu[[z, y, x]]) - centre.hu) / COMPACTNESS_HU).powi(2);
                        let d = spatial + intensity;
                        if d < best[[z, y, x]] {
                            best[[z, y, x]] = d;
                            labels[[z, y, x]] = c;
                        }
                    }
                }
            }
        }
        centres = update_centres(hu, &labels, &centres);
    }
    labels
}

/// Centres at the middle of each grid cell.
fn seed_centres(hu: &Array3<f32>, dims: [usize; 3], step: [usize; 3]) -> Vec<Centre> {
    let ticks = |a: usize| -> Vec<usize> { (step[a] / 2..dims[a]).step_by(step[a]).collect() };
    let mut centres = Vec::new();
    for &z in &ticks(0) {
        for &y in &ticks(1) {
            for &x in &ticks(2) {
                centres.push(Centre {
                    pos: [z as f64, y as f64, x as f64],
                    hu: f64::from(hu[[z, y, x]]),
                });
            }
        }
    }
    if centres.is_empty() {
        // A crop thinner than half a step on some axis: one cluster for everything.
        centres.push(Centre {
            pos: [0.0; 3],
            hu: f64::from(hu.first().copied().unwrap_or(0.0)),
        });
    }
    centres
}

/// Mean position and intensity of each cluster; an empty cluster keeps its centre.
fn update_centres(hu: &Array3<f32>, labels: &Array3<usize>, old: &[Centre]) -> Vec<Centre> {
    let mut sums = vec![([0.0f64; 3], 0.0f64, 0usize); old.len()];
    for ((z, y, x), &label) in labels.indexed_iter() {
        let s = &mut sums[label];
        s.0[0] += z as f64;
        s.0[1] += y as f64;
        s.0[2] += x as f64;
        s.1 += f64::from(hu[[z, y, x]]);
        s.2 += 1;
    }
    sums.iter()
        .zip(old)
        .map(|((pos, hu, n), prev)| {
            if *n == 0 {
                *prev
            } else {
                let n = *n as f64;
                Centre {
                    pos: pos.map(|p| p / n),
                    hu: hu / n,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn supervoxels_follow_an_intensity_edge() {
        // Left half 0 HU, right half 200 HU: no supervoxel may straddle the edge.
        let hu = Array3::from_shape_fn((6, 12, 12), |(_, _, x)| if x < 6 { 0.0 } else { 200.0 });
        let labels = slic(&hu, [3, 3, 3]);
        for ((_, _, x), &l) in labels.indexed_iter() {
            let other_side = labels
                .indexed_iter()
                .any(|((_, _, x2), &l2)| l2 == l && (x2 < 6) != (x < 6));
            assert!(!other_side, "supervoxel {l} crosses the intensity edge");
        }
    }

    #[test]
    fn contour_randomisation_keeps_the_core_and_is_seeded() {
        let hu = Array3::from_shape_fn((8, 16, 16), |(z, y, x)| ((z * 7 + y * 3 + x) % 11) as f32);
        let mask = Array3::from_shape_fn((8, 16, 16), |(z, y, x)| {
            (2..6).contains(&z) && (4..12).contains(&y) && (4..12).contains(&x)
        });
        let spacing = [1.0, 1.0, 1.0];
        let a = randomise_contour(&hu, &mask, spacing, &mut ChaCha8Rng::seed_from_u64(3));
        let b = randomise_contour(&hu, &mask, spacing, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        let n = |m: &Array3<bool>| m.iter().filter(|&&v| v).count() as f64;
        // The new contour stays the same order of size as the old one.
        assert!(
            n(&a) > 0.3 * n(&mask) && n(&a) < 3.0 * n(&mask),
            "{} vs {}",
            n(&a),
            n(&mask)
        );
    }
}
