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
//! bounding-box volume; the transforms skip the zero padding, so the working buffer is
//! half of M. The Geary sum expands to
//! `2 Σ_i m_i x_i² (w ∗ m)_i − 2 Σ_i x_i (w ∗ x)_i` with `x = (X − μ) m` and `m` the mask,
//! so two convolutions suffice; they share one complex FFT as real and imaginary parts.
//!
//! Bounding boxes too large for the FFT grid ([`MAX_FFT_POINTS`]) fall back to the
//! approximation IBSI sanctions ("approximation by repeated subsampling of the ROI"):
//! the mean of the exact statistics over [`SUBSAMPLE_REPEATS`] random subsets of
//! [`SUBSAMPLE_VOXELS`] voxels, with a fixed seed so results are reproducible.

use ndarray::Array3;
use rand::SeedableRng;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use super::moments::position_mm;

/// Largest FFT grid (points) for the exact path. The convolution holds half the grid as
/// complex `f64` (see [`PrunedConvolution`]): 32 MiB at this size, plus the kernel
/// spectrum's octant (about 4 MiB). The CT phantom (config A) needs 54 × 200 × 200 =
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
    let mut planner = FftPlanner::new();
    let spectrum = EvenSpectrum::new(&mut planner, extent, grid, spacing_mm);

    // Real part: the mask m; imaginary part: x = (X − μ) m.
    let mut conv = PrunedConvolution::new(extent, grid);
    for &(p, v) in voxels {
        conv.set(p, Complex::new(1.0, v - mean));
    }
    conv.convolve(&mut planner, &spectrum);

    let (mut w_sum, mut moran_sum, mut sq_w_sum) = (0.0, 0.0, 0.0);
    for &(p, v) in voxels {
        let c = conv.get(p); // (w ∗ m, w ∗ x) at p
        let x = v - mean;
        w_sum += c.re;
        moran_sum += x * c.im;
        sq_w_sum += x * x * c.re;
    }
    let geary_sum = 2.0 * sq_w_sum - 2.0 * moran_sum;
    finish(n, w_sum, moran_sum, geary_sum, ss)
}

/// The spectrum of the weight kernel on one octant of the grid, computed without the
/// full grid.
///
/// The kernel `w(o) = 1 / ‖o · spacing‖` (`w(0) = 0`) is real and even along every axis
/// (it depends on `o_k²` only), so its DFT is real and even along every axis too:
/// `K[k] = K[fold(k)]` with `fold(k) = min(k, g − k)` per axis. The 3D DFT is taken one
/// axis at a time (x, then y, then z); after each step the values stay real and even in
/// the axes not yet transformed, so each step reads the non-negative offsets of the next
/// axis only and keeps the `g / 2 + 1` non-negative frequencies of its own. Every
/// intermediate holds about an eighth of the grid as `f64`.
struct EvenSpectrum {
    /// `[z, y, x]` sizes of the folded octant: `g / 2 + 1` per axis.
    half: [usize; 3],
    /// Kernel spectrum on the octant, row-major.
    values: Vec<f64>,
}

impl EvenSpectrum {
    fn new(
        planner: &mut FftPlanner<f64>,
        extent: [usize; 3],
        grid: [usize; 3],
        spacing_mm: [f64; 3],
    ) -> Self {
        let half = grid.map(|g| g / 2 + 1);
        let [ez, ey, ex] = extent;
        // Offsets `o_k` in `0..e_k` on the axes still in space, frequencies on the others.
        let mut space = vec![0.0; ez * ey * ex];
        for (i, w) in space.iter_mut().enumerate() {
            let o = [i / (ey * ex), (i / ex) % ey, i % ex];
            let d2: f64 = (0..3).map(|k| (o[k] as f64 * spacing_mm[k]).powi(2)).sum();
            *w = if d2 > 0.0 { 1.0 / d2.sqrt() } else { 0.0 };
        }
        // x: [ez, ey, ex] offsets → [ez, ey, hx] frequencies.
        let along_x = even_dft(planner, &space, [ez * ey, ex, 1], grid[2]);
        drop(space);
        // y: [ez, ey, hx] → [ez, hy, hx], one line per (z, fx).
        let along_y = even_dft_middle(planner, &along_x, [ez, ey, half[2]], grid[1]);
        drop(along_x);
        // z: [ez, hy, hx] → [hz, hy, hx], one line per (fy, fx).
        let plane = half[1] * half[2];
        let along_z = even_dft(
            planner,
            &transpose_outer(&along_y, ez, plane),
            [plane, ez, 1],
            grid[0],
        );
        let values = transpose_outer(&along_z, plane, half[0]);
        EvenSpectrum { half, values }
    }

    /// `K` at the frequency `[kz, ky, kx]` of the full grid.
    fn at(&self, k: [usize; 3], grid: [usize; 3]) -> f64 {
        let f = [0, 1, 2].map(|a| k[a].min(grid[a] - k[a]));
        self.values[(f[0] * self.half[1] + f[1]) * self.half[2] + f[2]]
    }
}

/// Real DFT of lines that are even about offset 0: `lines` rows of `len` non-negative
/// offsets (`[lines, len, 1]`, contiguous), each extended to `−o` and laid out circularly
/// on `g` points; returns the `g / 2 + 1` non-negative frequencies of every line.
fn even_dft(
    planner: &mut FftPlanner<f64>,
    data: &[f64],
    [lines, len, _]: [usize; 3],
    g: usize,
) -> Vec<f64> {
    let h = g / 2 + 1;
    let fft = planner.plan_fft_forward(g);
    let mut line = vec![Complex::new(0.0, 0.0); g];
    let mut scratch = vec![Complex::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    let mut out = Vec::with_capacity(lines * h);
    for row in data.chunks_exact(len) {
        line.fill(Complex::new(0.0, 0.0));
        for (o, &v) in row.iter().enumerate() {
            line[o] = Complex::new(v, 0.0);
            if o > 0 {
                line[g - o] = Complex::new(v, 0.0);
            }
        }
        fft.process_with_scratch(&mut line, &mut scratch);
        out.extend(line[..h].iter().map(|c| c.re));
    }
    out
}

/// [`even_dft`] along the middle axis of a `[outer, len, inner]` array.
fn even_dft_middle(
    planner: &mut FftPlanner<f64>,
    data: &[f64],
    [outer, len, inner]: [usize; 3],
    g: usize,
) -> Vec<f64> {
    let h = g / 2 + 1;
    let mut out = vec![0.0; outer * h * inner];
    let mut column = vec![0.0; inner * len];
    for o in 0..outer {
        // Gather the block as `inner` contiguous lines of `len`, transform, scatter back.
        for m in 0..len {
            for i in 0..inner {
                column[i * len + m] = data[(o * len + m) * inner + i];
            }
        }
        let spectra = even_dft(planner, &column, [inner, len, 1], g);
        for i in 0..inner {
            for f in 0..h {
                out[(o * h + f) * inner + i] = spectra[i * h + f];
            }
        }
    }
    out
}

/// `[a, b]` → `[b, a]` for a row-major array of `a` rows of `b` values.
fn transpose_outer(data: &[f64], a: usize, b: usize) -> Vec<f64> {
    let mut out = vec![0.0; a * b];
    for i in 0..a {
        for j in 0..b {
            out[j * a + i] = data[i * b + j];
        }
    }
    out
}

/// Circular convolution with an even kernel of a field that is zero outside `extent`,
/// read back inside `extent` only.
///
/// A grid of ≥ 2e − 1 points per axis keeps the convolution free of wrap-around, so most
/// of it is zero padding in space and never read back. The transform skips both: x runs on
/// the `ez · ey` rows that hold the field, y on the `ez` planes, z on every line; the
/// inverse keeps only what lies inside the extent. One complex buffer of `ez × gy × gx`
/// (about half the grid) holds every stage, the data of the x and y stages in place.
struct PrunedConvolution {
    extent: [usize; 3],
    grid: [usize; 3],
    /// `[ez, gy, gx]`, row-major.
    data: Vec<Complex<f64>>,
    /// Normalisation of the inverse transform: 1 / grid points.
    scale: f64,
}

impl PrunedConvolution {
    fn new(extent: [usize; 3], grid: [usize; 3]) -> Self {
        let len = extent[0] * grid[1] * grid[2];
        PrunedConvolution {
            extent,
            grid,
            data: vec![Complex::new(0.0, 0.0); len],
            scale: 1.0 / grid.iter().product::<usize>() as f64,
        }
    }

    fn index(&self, [z, y, x]: [usize; 3]) -> usize {
        (z * self.grid[1] + y) * self.grid[2] + x
    }

    fn set(&mut self, p: [usize; 3], v: Complex<f64>) {
        let i = self.index(p);
        self.data[i] = v;
    }

    /// The convolution at `p` (inside the extent), normalised.
    fn get(&self, p: [usize; 3]) -> Complex<f64> {
        self.data[self.index(p)] * self.scale
    }

    /// Replace the field by its (unnormalised) convolution with the kernel.
    fn convolve(&mut self, planner: &mut FftPlanner<f64>, spectrum: &EvenSpectrum) {
        let [ez, ey, _] = self.extent;
        let [gz, gy, gx] = self.grid;
        let forward_x = planner.plan_fft_forward(gx);
        let inverse_x = planner.plan_fft_inverse(gx);
        let (forward_y, inverse_y) = (planner.plan_fft_forward(gy), planner.plan_fft_inverse(gy));
        let (forward_z, inverse_z) = (planner.plan_fft_forward(gz), planner.plan_fft_inverse(gz));
        let mut scratch = Vec::new();
        let mut run = |fft: &dyn rustfft::Fft<f64>, line: &mut [Complex<f64>]| {
            scratch.resize(fft.get_inplace_scratch_len(), Complex::new(0.0, 0.0));
            fft.process_with_scratch(line, &mut scratch);
        };
        // x: the rows that hold the field (contiguous).
        for z in 0..ez {
            for y in 0..ey {
                let start = (z * gy + y) * gx;
                run(&*forward_x, &mut self.data[start..start + gx]);
            }
        }
        // y: every column of the planes that hold the field.
        let mut line = vec![Complex::new(0.0, 0.0); gy.max(gz)];
        for z in 0..ez {
            for x in 0..gx {
                let col = |y: usize| (z * gy + y) * gx + x;
                for (y, l) in line[..gy].iter_mut().enumerate() {
                    *l = self.data[col(y)];
                }
                run(&*forward_y, &mut line[..gy]);
                for (y, l) in line[..gy].iter().enumerate() {
                    self.data[col(y)] = *l;
                }
            }
        }
        // z: forward on the padded line, multiply by the kernel spectrum, inverse, and
        // keep the extent.
        for y in 0..gy {
            for x in 0..gx {
                let col = |z: usize| (z * gy + y) * gx + x;
                line[..gz].fill(Complex::new(0.0, 0.0));
                for (z, l) in line[..ez].iter_mut().enumerate() {
                    *l = self.data[col(z)];
                }
                run(&*forward_z, &mut line[..gz]);
                for (z, l) in line[..gz].iter_mut().enumerate() {
                    *l *= spectrum.at([z, y, x], self.grid);
                }
                run(&*inverse_z, &mut line[..gz]);
                for (z, l) in line[..ez].iter().enumerate() {
                    self.data[col(z)] = *l;
                }
            }
        }
        // Inverse y, then x, on the planes and rows inside the extent.
        for z in 0..ez {
            for x in 0..gx {
                let col = |y: usize| (z * gy + y) * gx + x;
                for (y, l) in line[..gy].iter_mut().enumerate() {
                    *l = self.data[col(y)];
                }
                run(&*inverse_y, &mut line[..gy]);
                for (y, l) in line[..ey].iter().enumerate() {
                    self.data[col(y)] = *l;
                }
            }
        }
        for z in 0..ez {
            for y in 0..ey {
                let start = (z * gy + y) * gx;
                run(&*inverse_x, &mut self.data[start..start + gx]);
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
