//! Spatial autocorrelation of the intensities: Moran's I (IBSI 1 section 3.1.28, N365) and
//! Geary's C (3.1.29, NPT7), with inverse-distance weights `w = 1 / ‖r_i − r_j‖` (mm).
//!
//! ```text
//! I = N / W · Σ_{i≠j} w_ij (X_i − μ)(X_j − μ) / Σ_i (X_i − μ)²
//! C = (N − 1) / (2W) · Σ_{i≠j} w_ij (X_i − X_j)² / Σ_i (X_i − μ)²,   W = Σ_{i≠j} w_ij
//! ```
//!
//! Both double sums are O(N²) over voxel pairs (8·10⁹ pairs for the 125 000-voxel CT
//! phantom). On a voxel grid the weight depends only on the index offset, so each double
//! sum is `Σ_i a_i (w ∗ b)_i`, a 3D convolution of a masked field with the weight kernel,
//! which we evaluate exactly (up to rounding) by FFT in O(M log M), M ≈ 8 × the
//! bounding-box volume. The Geary sum expands to
//! `2 Σ_i m_i x_i² (w ∗ m)_i − 2 Σ_i x_i (w ∗ x)_i` with `x = (X − μ) m` and `m` the mask,
//! so two convolutions suffice; they share one complex FFT as real and imaginary parts.
//!
//! Bounding boxes too large for the FFT grid ([`MAX_FFT_POINTS`]) fall back to the
//! approximation IBSI sanctions ("approximation by repeated subsampling of the ROI"):
//! the mean of the exact statistics over [`SUBSAMPLE_REPEATS`] random subsets of
//! [`SUBSAMPLE_VOXELS`] voxels, with a fixed seed so results are reproducible.

use ndarray::Array3;
use rand::SeedableRng;
use rustfft::num_complex::Complex;
use rustfft::{FftDirection, FftPlanner};

use super::moments::position_mm;

/// Largest FFT grid (points) for the exact path: one complex `f64` grid of this size
/// takes 64 MiB (the kernel's spectrum is folded to an eighth, see `EvenSpectrum`, before
/// the field's grid is allocated). The CT phantom (config A) needs 54 × 200 × 200 =
/// 2.16 M points.
pub const MAX_FFT_POINTS: usize = 1 << 22;

/// Voxels per random subset of the subsampling approximation (≈ 5·10⁶ pairs each).
pub const SUBSAMPLE_VOXELS: usize = 3_000;

/// Subsets averaged by the subsampling approximation.
pub const SUBSAMPLE_REPEATS: usize = 16;

/// Seed of the subsampling approximation, fixed so a lesion always gets the same value.
const SUBSAMPLE_SEED: u64 = 0x1B51_0001;

/// Moran's I and Geary's C of one ROI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Autocorrelation {
    /// Moran's I (IBSI 3.1.28).
    pub moran_i: f64,
    /// Geary's C (IBSI 3.1.29).
    pub geary_c: f64,
}

/// Moran's I and Geary's C of `values` over `mask`, voxel spacing `[z, y, x]` in mm.
///
/// `None` where they are undefined: fewer than two voxels, or all intensities equal.
pub fn autocorrelation(
    mask: &Array3<bool>,
    values: &Array3<f32>,
    spacing_mm: [f64; 3],
) -> Option<Autocorrelation> {
    let voxels: Vec<((usize, usize, usize), f64)> = mask
        .indexed_iter()
        .zip(values)
        .filter(|((_, m), _)| **m)
        .map(|((i, _), &v)| (i, f64::from(v)))
        .collect();
    if voxels.len() < 2 {
        return None;
    }
    let mut lo = [usize::MAX; 3];
    let mut hi = [0; 3];
    for ((z, y, x), _) in &voxels {
        for (k, v) in [*z, *y, *x].into_iter().enumerate() {
            lo[k] = lo[k].min(v);
            hi[k] = hi[k].max(v);
        }
    }
    let extent = [0, 1, 2].map(|k| hi[k] - lo[k] + 1);
    let grid = extent.map(|n| smooth_length(2 * n - 1));
    if grid.iter().product::<usize>() <= MAX_FFT_POINTS {
        let local: Vec<_> = voxels
            .iter()
            .map(|&((z, y, x), v)| ([z - lo[0], y - lo[1], x - lo[2]], v))
            .collect();
        exact_by_fft(&local, extent, grid, spacing_mm)
    } else {
        // LIMITATION: beyond MAX_FFT_POINTS the values are subsampling estimates, not exact.
        subsampled(&voxels, spacing_mm)
    }
}

/// The two statistics from the weighted sums (see the module docs).
fn finish(
    n: usize,
    w_sum: f64,
    moran_sum: f64,
    geary_sum: f64,
    ss: f64,
) -> Option<Autocorrelation> {
    if !(w_sum > 0.0 && ss > 0.0) {
        return None;
    }
    let n = n as f64;
    let out = Autocorrelation {
        moran_i: n / w_sum * moran_sum / ss,
        geary_c: (n - 1.0) / (2.0 * w_sum) * geary_sum / ss,
    };
    (out.moran_i.is_finite() && out.geary_c.is_finite()).then_some(out)
}

/// Exact sums by FFT convolution; `voxels` are indexed inside `extent`.
fn exact_by_fft(
    voxels: &[([usize; 3], f64)],
    extent: [usize; 3],
    grid: [usize; 3],
    spacing_mm: [f64; 3],
) -> Option<Autocorrelation> {
    let n = voxels.len();
    let mean = voxels.iter().map(|(_, v)| v).sum::<f64>() / n as f64;
    let ss: f64 = voxels.iter().map(|(_, v)| (v - mean).powi(2)).sum();
    let index = |p: [usize; 3]| (p[0] * grid[1] + p[1]) * grid[2] + p[2];
    let len = grid.iter().product();

    // Kernel w(o) = 1/‖o·spacing‖ at every offset the box can hold, w(0) = 0, stored
    // circularly; a grid of ≥ 2n − 1 per axis keeps the convolution free of wrap-around.
    let mut kernel = vec![Complex::new(0.0, 0.0); len];
    let span = extent.map(|e| e as isize - 1);
    for oz in -span[0]..=span[0] {
        for oy in -span[1]..=span[1] {
            for ox in -span[2]..=span[2] {
                let o = [oz, oy, ox];
                let d2: f64 = (0..3).map(|k| (o[k] as f64 * spacing_mm[k]).powi(2)).sum();
                if d2 > 0.0 {
                    let wrapped = [0, 1, 2].map(|k| o[k].rem_euclid(grid[k] as isize) as usize);
                    kernel[index(wrapped)] = Complex::new(1.0 / d2.sqrt(), 0.0);
                }
            }
        }
    }
    let mut planner = FftPlanner::new();
    fft_3d(&mut planner, &mut kernel, grid, FftDirection::Forward);
    let spectrum = EvenSpectrum::new(&kernel, grid);
    drop(kernel);

    // Real part: the mask m; imaginary part: x = (X − μ) m.
    let mut field = vec![Complex::new(0.0, 0.0); len];
    for &(p, v) in voxels {
        field[index(p)] = Complex::new(1.0, v - mean);
    }
    fft_3d(&mut planner, &mut field, grid, FftDirection::Forward);
    spectrum.multiply(&mut field);
    fft_3d(&mut planner, &mut field, grid, FftDirection::Inverse);
    let scale = 1.0 / len as f64;

    let (mut w_sum, mut moran_sum, mut sq_w_sum) = (0.0, 0.0, 0.0);
    for &(p, v) in voxels {
        let conv = field[index(p)] * scale; // (w ∗ m, w ∗ x) at p
        let x = v - mean;
        w_sum += conv.re;
        moran_sum += x * conv.im;
        sq_w_sum += x * x * conv.re;
    }
    let geary_sum = 2.0 * sq_w_sum - 2.0 * moran_sum;
    finish(n, w_sum, moran_sum, geary_sum, ss)
}

/// The spectrum of the weight kernel, kept in one eighth of the grid.
///
/// The kernel is real and even along every axis (`w(o)` depends on `o_k²` only), so its
/// DFT is real and even along every axis too: `K[k] = K[fold(k)]` with
/// `fold(k) = min(k, g − k)` per axis. Keeping the real part of the folded octant (the
/// imaginary parts and the other octants differ from it by rounding only) lets the
/// complex kernel grid be freed before the field's grid is allocated, so the exact path
/// peaks at one complex grid instead of two.
struct EvenSpectrum {
    /// `[z, y, x]` sizes of the folded octant: `g / 2 + 1` per axis.
    half: [usize; 3],
    /// The full grid.
    grid: [usize; 3],
    /// Real parts of the kernel spectrum on the octant, row-major.
    values: Vec<f64>,
}

impl EvenSpectrum {
    /// Fold the (complex) kernel spectrum on `grid`.
    fn new(kernel: &[Complex<f64>], grid: [usize; 3]) -> Self {
        let half = grid.map(|g| g / 2 + 1);
        let mut values = Vec::with_capacity(half.iter().product());
        for z in 0..half[0] {
            for y in 0..half[1] {
                for x in 0..half[2] {
                    values.push(kernel[(z * grid[1] + y) * grid[2] + x].re);
                }
            }
        }
        EvenSpectrum { half, grid, values }
    }

    /// `field[k] *= K[k]` over the whole grid.
    fn multiply(&self, field: &mut [Complex<f64>]) {
        let fold = |k: usize, g: usize| k.min(g - k);
        let [gz, gy, gx] = self.grid;
        for z in 0..gz {
            let fz = fold(z, gz);
            for y in 0..gy {
                let row = (fz * self.half[1] + fold(y, gy)) * self.half[2];
                let line = (z * gy + y) * gx;
                for x in 0..gx {
                    field[line + x] *= self.values[row + fold(x, gx)];
                }
            }
        }
    }
}

/// In-place 3D FFT (unnormalised) of a row-major `[z, y, x]` grid.
fn fft_3d(
    planner: &mut FftPlanner<f64>,
    data: &mut [Complex<f64>],
    grid: [usize; 3],
    direction: FftDirection,
) {
    let strides = [grid[1] * grid[2], grid[2], 1];
    for axis in 0..3 {
        let n = grid[axis];
        let fft = planner.plan_fft(n, direction);
        let mut line = vec![Complex::new(0.0, 0.0); n];
        let mut scratch = vec![Complex::new(0.0, 0.0); fft.get_inplace_scratch_len()];
        // Every line along `axis` starts at an index whose `axis` coordinate is 0.
        let starts = (0..data.len()).filter(|i| (i / strides[axis]).is_multiple_of(n));
        for start in starts {
            for (k, l) in line.iter_mut().enumerate() {
                *l = data[start + k * strides[axis]];
            }
            fft.process_with_scratch(&mut line, &mut scratch);
            for (k, l) in line.iter().enumerate() {
                data[start + k * strides[axis]] = *l;
            }
        }
    }
}

/// Smallest length ≥ `n` whose prime factors are 2, 3 and 5 (fast FFT sizes).
fn smooth_length(n: usize) -> usize {
    (n.max(1)..)
        .find(|&m| {
            let mut r = m;
            for p in [2, 3, 5] {
                while r.is_multiple_of(p) {
                    r /= p;
                }
            }
            r == 1
        })
        .unwrap_or(n)
}

/// Mean of the exact statistics over random voxel subsets (IBSI 3.1.28 note).
fn subsampled(
    voxels: &[((usize, usize, usize), f64)],
    spacing_mm: [f64; 3],
) -> Option<Autocorrelation> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SUBSAMPLE_SEED);
    let take = SUBSAMPLE_VOXELS.min(voxels.len());
    let (mut moran, mut geary) = (0.0, 0.0);
    for _ in 0..SUBSAMPLE_REPEATS {
        let subset: Vec<([f64; 3], f64)> = rand::seq::index::sample(&mut rng, voxels.len(), take)
            .into_iter()
            .map(|i| (position_mm(voxels[i].0, spacing_mm), voxels[i].1))
            .collect();
        let a = exact_by_pairs(&subset)?;
        moran += a.moran_i;
        geary += a.geary_c;
    }
    let repeats = SUBSAMPLE_REPEATS as f64;
    Some(Autocorrelation {
        moran_i: moran / repeats,
        geary_c: geary / repeats,
    })
}

/// The defining double sums over all ordered pairs of `points` (position mm, value).
fn exact_by_pairs(points: &[([f64; 3], f64)]) -> Option<Autocorrelation> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let mean = points.iter().map(|(_, v)| v).sum::<f64>() / n as f64;
    let ss: f64 = points.iter().map(|(_, v)| (v - mean).powi(2)).sum();
    let (mut w_sum, mut moran_sum, mut geary_sum) = (0.0, 0.0, 0.0);
    for (i, (pi, vi)) in points.iter().enumerate() {
        for (pj, vj) in &points[i + 1..] {
            let d2: f64 = (0..3).map(|k| (pi[k] - pj[k]).powi(2)).sum();
            let w = 1.0 / d2.sqrt();
            // Each unordered pair stands for both ordered pairs (i, j) and (j, i).
            w_sum += 2.0 * w;
            moran_sum += 2.0 * w * (vi - mean) * (vj - mean);
            geary_sum += 2.0 * w * (vi - vj).powi(2);
        }
    }
    finish(n, w_sum, moran_sum, geary_sum, ss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// A random mask and field on an anisotropic grid.
    fn random_roi(seed: u64, dim: (usize, usize, usize)) -> (Array3<bool>, Array3<f32>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mask = Array3::from_shape_simple_fn(dim, || rng.random_bool(0.7));
        let values = Array3::from_shape_simple_fn(dim, || rng.random_range(-50.0_f32..80.0));
        (mask, values)
    }

    fn by_pairs(mask: &Array3<bool>, values: &Array3<f32>, s: [f64; 3]) -> Autocorrelation {
        let points: Vec<_> = mask
            .indexed_iter()
            .zip(values)
            .filter(|((_, m), _)| **m)
            .map(|((i, _), &v)| (position_mm(i, s), f64::from(v)))
            .collect();
        exact_by_pairs(&points).expect("defined")
    }

    #[test]
    fn fft_path_equals_the_pairwise_definition() {
        let spacing = [3.0, 0.98, 0.7];
        for (seed, dim) in [(1, (4, 7, 9)), (2, (1, 5, 6)), (3, (6, 3, 2))] {
            let (mask, values) = random_roi(seed, dim);
            let fast = autocorrelation(&mask, &values, spacing).expect("defined");
            let slow = by_pairs(&mask, &values, spacing);
            assert!(
                (fast.moran_i - slow.moran_i).abs() < 1e-10,
                "{fast:?} {slow:?}"
            );
            assert!(
                (fast.geary_c - slow.geary_c).abs() < 1e-10,
                "{fast:?} {slow:?}"
            );
        }
    }

    #[test]
    fn two_voxels_are_perfectly_anticorrelated() {
        // N = 2, x = ±d: I = 2/(2w) · 2w(−d²)/(2d²) = −1; C = 1/(2·2w) · 2w(2d)²/(2d²) = 1.
        let mask = Array3::from_elem((1, 1, 2), true);
        let values = Array3::from_shape_vec((1, 1, 2), vec![1.0_f32, 5.0]).expect("2 values");
        let a = autocorrelation(&mask, &values, [1.0, 1.0, 2.5]).expect("defined");
        assert!(
            (a.moran_i + 1.0).abs() < 1e-12 && (a.geary_c - 1.0).abs() < 1e-12,
            "{a:?}"
        );
    }

    #[test]
    fn undefined_for_constant_or_single_voxel() {
        let mask = Array3::from_elem((2, 2, 2), true);
        assert!(autocorrelation(&mask, &Array3::from_elem((2, 2, 2), 7.0), [1.0; 3]).is_none());
        let one = Array3::from_elem((1, 1, 1), true);
        assert!(autocorrelation(&one, &Array3::from_elem((1, 1, 1), 7.0), [1.0; 3]).is_none());
    }

    #[test]
    fn subsampling_estimates_a_smooth_field() {
        // A smooth gradient plus noise: the estimate stays near the exact value.
        let dim = (8, 30, 30);
        let (_, noise) = random_roi(4, dim);
        let values = Array3::from_shape_fn(dim, |(z, y, x)| {
            (z + y + x) as f32 * 4.0 + noise[[z, y, x]] * 0.2
        });
        let mask = Array3::from_elem(dim, true);
        let spacing = [2.0, 1.0, 1.0];
        let exact = autocorrelation(&mask, &values, spacing).expect("defined");
        let voxels: Vec<_> = mask
            .indexed_iter()
            .zip(&values)
            .map(|((i, _), &v)| (i, f64::from(v)))
            .collect();
        let estimate = subsampled(&voxels, spacing).expect("defined");
        assert!(
            (estimate.moran_i / exact.moran_i - 1.0).abs() < 0.05,
            "{estimate:?} {exact:?}"
        );
        assert!(
            (estimate.geary_c / exact.geary_c - 1.0).abs() < 0.05,
            "{estimate:?} {exact:?}"
        );
    }
}
