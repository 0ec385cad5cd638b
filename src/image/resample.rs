//! Image and mask interpolation onto an IBSI-aligned grid (IBSI 1 section 2.4).
//!
//! # Grid alignment ("align grid centres", IBSI 1 section 2.4 and the notes on
//! interpolation in chapter 5)
//!
//! Along each axis with `n` source voxels of spacing `s` resampled to spacing `s'`:
//!
//! ```text
//! n'      = ⌈n · s / s'⌉                        (the new grid never loses extent)
//! c(j)    = (n − 1)/2 − (n' − 1)/2 · (s'/s) + j · (s'/s)   (source index of new voxel j)
//! ```
//!
//! so the centre of the new grid coincides with the centre of the source grid. The grid is
//! always defined on the **whole series**; the pipeline then evaluates only the window of
//! new voxels around a lesion ([`AlignedGrid::window`]), which gives the same values as
//! resampling the whole series and cropping afterwards.
//!
//! # Interpolators
//!
//! All kernels are separable, so a 3D resampling is three 1D passes (x, then y, then z),
//! each computed in `f64` (IBSI asks for at least 32-bit precision so that a mask fraction
//! of exactly 0.5 does not become 0.4999…).
//!
//! * [`ImageInterpolation::Nearest`]: the source voxel nearest to the sample point.
//! * [`ImageInterpolation::Linear`]: bilinear or trilinear.
//! * [`ImageInterpolation::CubicSpline`]: interpolating cubic B-spline (Unser, "Splines:
//!   a perfect fit for signal and image processing", IEEE SPM 1999): the samples are first
//!   prefiltered into B-spline coefficients (causal + anti-causal recursive filter with
//!   pole `z = √3 − 2`), then the cubic B-spline is evaluated on four coefficients per
//!   axis. This is what MIRP (the IBSI reference implementation) uses for "tricubic
//!   spline": `scipy.ndimage.map_coordinates(order=3, mode="nearest")` with its default
//!   prefilter. As in scipy, the data are padded with [`SPLINE_PAD_VOX`] copies of the edge
//!   voxel before prefiltering, and the filter starts with mirror boundary conditions.
//!   The spline may overshoot: intensities below the source minimum appear at sharp edges
//!   (IBSI config E: minimum −1111 HU in a −1000 HU floor).
//!
//! Image samples outside the source extend the edge voxel (scipy `mode="nearest"`,
//! as the IBSI notes on interpolation ask). Masks are interpolated as the fraction of
//! lesion membership, with zero outside the source, and thresholded with
//! [`threshold_fraction`].

use std::ops::Range;

use ndarray::{Array3, ArrayView3, Axis, Zip};
use serde::{Deserialize, Serialize};

use super::Grid;

/// Padding, in voxels of edge replicas, before the cubic B-spline prefilter. scipy
/// (`ndimage._interpolation._prepad_for_spline_filter`, mode `nearest`) uses 12: the
/// filter's impulse response decays as `|z|^k = 0.268^k`, `1.4 × 10⁻⁷` after 12 voxels.
pub const SPLINE_PAD_VOX: usize = 12;

/// Source voxels a cubic B-spline sample needs on either side of its position beyond the
/// four evaluation taps, for the prefilter to settle: same horizon as [`SPLINE_PAD_VOX`].
pub const SPLINE_CONTEXT_VOX: usize = SPLINE_PAD_VOX;

/// Slack when rounding the new grid size up, as a fraction of a voxel: `n·s/s'` computed in
/// floating point as `90.000000001` must give 90 voxels, not 91.
const GRID_SIZE_SLACK_VOX: f64 = 1e-6;

/// Slack below the partial-volume threshold for floating-point noise: a fraction that is
/// 0.5 in exact arithmetic passes a 0.5 threshold (IBSI chapter 5, notes on interpolation).
const MASK_FRACTION_SLACK: f64 = 1e-9;

/// Pole of the cubic B-spline prefilter, `√3 − 2` (Unser 1999, eq. 7).
const CUBIC_BSPLINE_POLE: f64 = -0.267_949_192_431_122_7;

/// Gain of the cubic B-spline prefilter, `(1 − z)(1 − 1/z) = 6`.
const CUBIC_BSPLINE_GAIN: f64 = 6.0;

/// How image intensities are interpolated (IBSI 1 section 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageInterpolation {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear (in-plane) or trilinear.
    Linear,
    /// Interpolating cubic B-spline ("tricubic spline" in IBSI config E).
    CubicSpline,
}

/// How a lesion mask is interpolated before the partial-volume threshold (IBSI 1 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskInterpolation {
    /// Nearest neighbour (the threshold then has no effect).
    Nearest,
    /// Bilinear or trilinear interpolation of the membership fraction.
    Linear,
}

/// An interpolation grid aligned on the centre of its source grid, in source index space.
///
/// Axes are `[z, y, x]`, like everywhere in radscore.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlignedGrid {
    /// Voxels of the new grid along `[z, y, x]`.
    pub shape_vox: [usize; 3],
    /// Spacing of the new grid along `[z, y, x]`, millimetres.
    pub spacing_mm: [f64; 3],
    /// Source index (continuous) of the new grid's voxel 0 along each axis.
    pub first_index: [f64; 3],
    /// Source voxels per new voxel along each axis (`s' / s`).
    pub step: [f64; 3],
}

impl AlignedGrid {
    /// The IBSI grid of spacing `new_spacing_mm` centred on a source grid of `shape_vox`
    /// voxels and spacing `spacing_mm` (see the module docs for the formula).
    ///
    /// # Panics
    /// When a spacing is not finite and positive (settings validation refuses those).
    pub fn align_centres(
        shape_vox: [usize; 3],
        spacing_mm: [f64; 3],
        new_spacing_mm: [f64; 3],
    ) -> AlignedGrid {
        assert!(
            spacing_mm
                .iter()
                .chain(&new_spacing_mm)
                .all(|s| s.is_finite() && *s > 0.0),
            "spacings must be finite and positive: {spacing_mm:?} → {new_spacing_mm:?}"
        );
        let step: [f64; 3] = std::array::from_fn(|a| new_spacing_mm[a] / spacing_mm[a]);
        let new_shape: [usize; 3] = std::array::from_fn(|a| {
            let fractional = shape_vox[a] as f64 / step[a];
            ((fractional - GRID_SIZE_SLACK_VOX).ceil() as usize).max(1)
        });
        let first_index = std::array::from_fn(|a| {
            0.5 * (shape_vox[a] as f64 - 1.0) - 0.5 * (new_shape[a] as f64 - 1.0) * step[a]
        });
        AlignedGrid {
            shape_vox: new_shape,
            spacing_mm: new_spacing_mm,
            first_index,
            step,
        }
    }

    /// Source index (continuous) of new-grid index `j` along `axis`.
    pub fn source_index(&self, axis: usize, j: usize) -> f64 {
        self.first_index[axis] + j as f64 * self.step[axis]
    }

    /// Whether this grid samples exactly the source voxels along `axis` (same spacing,
    /// no shift), so the axis needs no interpolation.
    pub fn is_identity(&self, axis: usize) -> bool {
        self.step[axis] == 1.0 && self.first_index[axis] == 0.0
    }

    /// The new-grid indices along `axis` whose source positions lie in
    /// `[lo_index, hi_index]` (continuous source indices), clipped to the grid.
    pub fn window(&self, axis: usize, lo_index: f64, hi_index: f64) -> Range<usize> {
        let to_new = |c: f64| (c - self.first_index[axis]) / self.step[axis];
        let first = to_new(lo_index).ceil().max(0.0) as usize;
        let end = (to_new(hi_index).floor() + 1.0).max(0.0) as usize;
        first.min(self.shape_vox[axis])..end.min(self.shape_vox[axis]).max(first)
    }

    /// World geometry of the new grid, given the geometry of its source.
    pub fn world_grid(&self, source: &Grid) -> Grid {
        Grid {
            shape_vox: self.shape_vox,
            spacing_mm: self.spacing_mm,
            origin_mm: source.index_to_world(self.first_index),
            direction: source.direction,
        }
    }
}

/// One region of source voxels: a view and the index of its first voxel in the source.
#[derive(Debug, Clone, Copy)]
pub struct SourceRegion<'a, T> {
    /// The voxels, `[z, y, x]`.
    pub voxels: ArrayView3<'a, T>,
    /// Source index `[z, y, x]` of `voxels[[0, 0, 0]]`.
    pub offset_zyx: [usize; 3],
}

/// Interpolate image intensities onto the new-grid voxels `window` of `grid`.
///
/// Samples near the region's border extend its edge voxels, so the region should hold the
/// voxels the kernel reaches (see [`source_support_vox`]); at the series border this is
/// exactly IBSI's "pad with the nearest boundary intensity".
pub fn resample_image(
    source: SourceRegion<'_, f32>,
    grid: &AlignedGrid,
    window: &[Range<usize>; 3],
    method: ImageInterpolation,
) -> Array3<f32> {
    let kernel = match method {
        ImageInterpolation::Nearest => Kernel::Nearest,
        ImageInterpolation::Linear => Kernel::Linear,
        ImageInterpolation::CubicSpline => Kernel::CubicBSpline,
    };
    let values = source.voxels.mapv(f64::from);
    resample(
        values,
        source.offset_zyx,
        grid,
        window,
        kernel,
        Boundary::Extend,
    )
    .mapv(|v| v as f32)
}

/// Interpolate a binary mask onto the new-grid voxels `window` of `grid` as a membership
/// fraction in `[0, 1]`; voxels outside the region count as background.
pub fn resample_mask_fraction(
    source: SourceRegion<'_, bool>,
    grid: &AlignedGrid,
    window: &[Range<usize>; 3],
    method: MaskInterpolation,
) -> Array3<f64> {
    let kernel = match method {
        MaskInterpolation::Nearest => Kernel::Nearest,
        MaskInterpolation::Linear => Kernel::Linear,
    };
    let values = source.voxels.mapv(|m| if m { 1.0 } else { 0.0 });
    resample(
        values,
        source.offset_zyx,
        grid,
        window,
        kernel,
        Boundary::Zero,
    )
}

/// The partial-volume rule (IBSI 1 section 2.4): a voxel belongs to the interpolated mask
/// when its membership fraction is at least `threshold`.
pub fn threshold_fraction(fraction: &Array3<f64>, threshold: f64) -> Array3<bool> {
    fraction.mapv(|f| f >= threshold - MASK_FRACTION_SLACK)
}

/// Source voxels an image interpolator reads on either side of a sample position: the
/// margin a source region needs around the samples so that its edges do not matter.
pub fn source_support_vox(method: ImageInterpolation) -> usize {
    match method {
        ImageInterpolation::Nearest | ImageInterpolation::Linear => 1,
        ImageInterpolation::CubicSpline => 2 + SPLINE_CONTEXT_VOX,
    }
}

/// A separable interpolation kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Nearest,
    Linear,
    CubicBSpline,
}

/// Value of source samples beyond the region's edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// The nearest edge sample (scipy `mode="nearest"`).
    Extend,
    /// Zero (background, for masks).
    Zero,
}

/// Weights of one output sample along one axis: `weights[k]` multiplies source sample
/// `first + k` (region-relative; may lie outside the region).
#[derive(Debug, Clone, Copy)]
struct Taps {
    first: isize,
    weights: [f64; 4],
    len: usize,
}

impl Kernel {
    /// The taps of a sample at continuous (region-relative) source index `c`.
    fn taps(self, c: f64) -> Taps {
        match self {
            Kernel::Nearest => Taps {
                // scipy order 0 rounds half up.
                first: (c + 0.5).floor() as isize,
                weights: [1.0, 0.0, 0.0, 0.0],
                len: 1,
            },
            Kernel::Linear => {
                let i = c.floor();
                let t = c - i;
                Taps {
                    first: i as isize,
                    weights: [1.0 - t, t, 0.0, 0.0],
                    len: 2,
                }
            }
            Kernel::CubicBSpline => {
                // Cubic B-spline β³ at distances 1 + t, t, 1 − t, 2 − t (Unser 1999, eq. 3).
                let i = c.floor();
                let t = c - i;
                let u = 1.0 - t;
                Taps {
                    first: i as isize - 1,
                    weights: [
                        u * u * u / 6.0,
                        (4.0 - 6.0 * t * t + 3.0 * t * t * t) / 6.0,
                        (1.0 + 3.0 * t + 3.0 * t * t - 3.0 * t * t * t) / 6.0,
                        t * t * t / 6.0,
                    ],
                    len: 4,
                }
            }
        }
    }
}

/// Resample `values` (a region starting at source index `offset`) onto `window` of `grid`,
/// one axis at a time; axes where the grid matches the source are only cropped.
fn resample(
    mut values: Array3<f64>,
    offset: [usize; 3],
    grid: &AlignedGrid,
    window: &[Range<usize>; 3],
    kernel: Kernel,
    boundary: Boundary,
) -> Array3<f64> {
    for axis in [2, 1, 0] {
        let coordinates: Vec<f64> = window[axis]
            .clone()
            .map(|j| grid.source_index(axis, j) - offset[axis] as f64)
            .collect();
        values = if grid.is_identity(axis) {
            take_axis(&values, axis, &coordinates, boundary)
        } else {
            let taps: Vec<Taps> = coordinates.iter().map(|&c| kernel.taps(c)).collect();
            interpolate_axis(&values, axis, &taps, kernel, boundary)
        };
    }
    values
}

/// Pick whole source indices along `axis` (an identity axis: every coordinate is integral).
fn take_axis(
    values: &Array3<f64>,
    axis: usize,
    coordinates: &[f64],
    boundary: Boundary,
) -> Array3<f64> {
    let taps: Vec<Taps> = coordinates
        .iter()
        .map(|&c| Kernel::Nearest.taps(c))
        .collect();
    interpolate_axis(values, axis, &taps, Kernel::Nearest, boundary)
}

/// Apply `taps` along `axis` of `values`: output sample `j` of every lane is
/// `Σ_k taps[j].weights[k] · lane[taps[j].first + k]`, on B-spline coefficients of the lane
/// for the cubic kernel.
fn interpolate_axis(
    values: &Array3<f64>,
    axis: usize,
    taps: &[Taps],
    kernel: Kernel,
    boundary: Boundary,
) -> Array3<f64> {
    let mut shape = values.shape().to_owned();
    shape[axis] = taps.len();
    let mut out = Array3::<f64>::zeros((shape[0], shape[1], shape[2]));
    if values.len_of(Axis(axis)) == 0 {
        return out;
    }
    let pad = if kernel == Kernel::CubicBSpline {
        SPLINE_PAD_VOX
    } else {
        0
    };
    let mut lane_buf = Vec::new();
    Zip::from(out.lanes_mut(Axis(axis)))
        .and(values.lanes(Axis(axis)))
        .for_each(|mut out_lane, lane| {
            fill_padded(&mut lane_buf, lane.iter().copied(), pad);
            if kernel == Kernel::CubicBSpline {
                bspline_prefilter(&mut lane_buf);
            }
            for (o, t) in out_lane.iter_mut().zip(taps) {
                *o = apply_taps(&lane_buf, t, pad, boundary);
            }
        });
    out
}

/// `buf` = the lane with `pad` copies of its edge samples on either side.
fn fill_padded(buf: &mut Vec<f64>, lane: impl Iterator<Item = f64> + Clone, pad: usize) {
    buf.clear();
    let first = lane.clone().next().unwrap_or(0.0);
    let last = lane.clone().last().unwrap_or(0.0);
    buf.extend(std::iter::repeat_n(first, pad));
    buf.extend(lane);
    buf.extend(std::iter::repeat_n(last, pad));
}

/// One output sample from a padded lane.
fn apply_taps(padded: &[f64], taps: &Taps, pad: usize, boundary: Boundary) -> f64 {
    let n = padded.len() as isize;
    let mut sum = 0.0;
    for (k, &w) in taps.weights[..taps.len].iter().enumerate() {
        let i = taps.first + k as isize + pad as isize;
        let v = match boundary {
            Boundary::Extend => padded[i.clamp(0, n - 1) as usize],
            Boundary::Zero if (0..n).contains(&i) => padded[i as usize],
            Boundary::Zero => 0.0,
        };
        sum += w * v;
    }
    sum
}

/// In-place conversion of samples into cubic B-spline coefficients (Unser 1999, "Splines",
/// box 2): gain, causal pass, anti-causal pass, with mirror-symmetric initial values as in
/// scipy's `spline_filter1d`.
fn bspline_prefilter(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    let z = CUBIC_BSPLINE_POLE;
    for v in c.iter_mut() {
        *v *= CUBIC_BSPLINE_GAIN;
    }

    // Causal initial value for a mirror-symmetric extension of period 2n − 2.
    let z_n1 = z.powi(n as i32 - 1);
    let mut zi = z;
    let mut c0 = c[0] + z_n1 * c[n - 1];
    for i in 1..n - 1 {
        c0 += zi * (c[i] + z_n1 * c[n - 1 - i]);
        zi *= z;
    }
    c[0] = c0 / (1.0 - z_n1 * z_n1);
    for i in 1..n {
        c[i] += z * c[i - 1];
    }

    // Anti-causal initial value and pass.
    c[n - 1] = (z / (z * z - 1.0)) * (z * c[n - 2] + c[n - 1]);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Floating-point agreement for exact-arithmetic identities on small arrays.
    const EXACT: f64 = 1e-9;

    fn region<T>(a: &Array3<T>) -> SourceRegion<'_, T> {
        SourceRegion {
            voxels: a.view(),
            offset_zyx: [0, 0, 0],
        }
    }

    fn full(grid: &AlignedGrid) -> [Range<usize>; 3] {
        std::array::from_fn(|a| 0..grid.shape_vox[a])
    }

    #[test]
    fn ibsi_ct_phantom_grid_dimensions() {
        // IBSI 1 chapter 5, diagnostics of configs C-E: 204 × 201 × 60 voxels of
        // 0.977 × 0.977 × 3 mm become 100 × 99 × 90 voxels of 2 mm.
        let g = AlignedGrid::align_centres([60, 201, 204], [3.0, 0.977, 0.977], [2.0; 3]);
        assert_eq!(g.shape_vox, [90, 99, 100]);
        // Centres coincide: mid-point of the new grid maps onto the mid-point of the source.
        for (a, n) in [60.0, 201.0, 204.0].into_iter().enumerate() {
            let mid = g.first_index[a] + 0.5 * (g.shape_vox[a] as f64 - 1.0) * g.step[a];
            assert!((mid - 0.5 * (n - 1.0)).abs() < EXACT);
        }
    }

    #[test]
    fn same_spacing_is_identity() {
        let g = AlignedGrid::align_centres([4, 5, 6], [3.0, 1.0, 1.0], [3.0, 1.0, 1.0]);
        assert!((0..3).all(|a| g.is_identity(a)));
        let img = Array3::from_shape_fn((4, 5, 6), |(z, y, x)| (z * 100 + y * 10 + x) as f32);
        for m in [
            ImageInterpolation::Nearest,
            ImageInterpolation::Linear,
            ImageInterpolation::CubicSpline,
        ] {
            assert_eq!(resample_image(region(&img), &g, &full(&g), m), img);
        }
    }

    #[test]
    fn linear_and_spline_reproduce_a_linear_ramp() {
        // Both interpolate polynomials of degree ≤ 1 exactly (away from extrapolation).
        let img = Array3::from_shape_fn((3, 8, 40), |(_, _, x)| 10.0 * x as f32 - 7.0);
        let g = AlignedGrid::align_centres([3, 8, 40], [1.0; 3], [1.0, 1.0, 0.7]);
        for m in [ImageInterpolation::Linear, ImageInterpolation::CubicSpline] {
            let out = resample_image(region(&img), &g, &full(&g), m);
            for j in 0..g.shape_vox[2] {
                let c = g.source_index(2, j);
                // Stay clear of the edges, where the spline sees the padded (flat) ramp; its
                // influence decays as 0.268^k with the distance k.
                if (8.0..31.0).contains(&c) {
                    let expected = 10.0 * c - 7.0;
                    assert!(
                        (f64::from(out[[1, 4, j]]) - expected).abs() < 1e-3,
                        "{m:?} at {c}: {} vs {expected}",
                        out[[1, 4, j]]
                    );
                }
            }
        }
    }

    #[test]
    fn spline_interpolates_its_samples() {
        // Pad + prefilter + evaluation at the knots returns the samples (an interpolating
        // spline), up to the padding horizon's |z|^12 residue.
        let samples = [0.0, 5.0, -3.0, 8.0, 8.0, 1.0, 0.0, 2.0];
        let mut lane = Vec::new();
        fill_padded(&mut lane, samples.iter().copied(), SPLINE_PAD_VOX);
        bspline_prefilter(&mut lane);
        for (i, s) in samples.iter().enumerate() {
            let t = Kernel::CubicBSpline.taps(i as f64);
            let v = apply_taps(&lane, &t, SPLINE_PAD_VOX, Boundary::Extend);
            assert!((v - s).abs() < 1e-5, "knot {i}: {v} vs {s}");
        }
    }

    #[test]
    fn spline_overshoots_at_a_step() {
        let img = Array3::from_shape_fn(
            (1, 1, 20),
            |(_, _, x)| if x < 10 { -1000.0 } else { 1000.0 },
        );
        let g = AlignedGrid::align_centres([1, 1, 20], [1.0; 3], [1.0, 1.0, 0.3]);
        let out = resample_image(region(&img), &g, &full(&g), ImageInterpolation::CubicSpline);
        let min = out.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(
            min < -1000.0,
            "cubic spline should ring below the step, min {min}"
        );
    }

    #[test]
    fn mask_fraction_half_voxel_and_threshold() {
        // A one-voxel-wide slab resampled at half-voxel offsets has fraction 0.5 at its
        // faces: included at threshold 0.5.
        let mask = Array3::from_shape_fn((1, 1, 5), |(_, _, x)| x == 2);
        let g = AlignedGrid {
            shape_vox: [1, 1, 4],
            spacing_mm: [1.0; 3],
            first_index: [0.0, 0.0, 0.5],
            step: [1.0, 1.0, 1.0],
        };
        let f = resample_mask_fraction(region(&mask), &g, &full(&g), MaskInterpolation::Linear);
        let got: Vec<f64> = f.iter().copied().collect();
        assert_eq!(got, vec![0.0, 0.5, 0.5, 0.0]);
        let m = threshold_fraction(&f, 0.5);
        assert_eq!(m.iter().filter(|&&b| b).count(), 2);
    }

    #[test]
    fn windowed_resampling_equals_cropped_full_resampling() {
        let img = Array3::from_shape_fn((12, 30, 31), |(z, y, x)| {
            ((z * 7 + y * 3 + x * 5) % 17) as f32 * 20.0 - 100.0
        });
        let g = AlignedGrid::align_centres([12, 30, 31], [3.0, 0.8, 0.8], [2.0; 3]);
        let whole = full(&g);
        let window: [Range<usize>; 3] = [3..9, 2..8, 4..9];
        for m in [ImageInterpolation::Linear, ImageInterpolation::CubicSpline] {
            let reference = resample_image(region(&img), &g, &whole, m);
            // Cut a source region that covers the window plus the kernel's support.
            let support = source_support_vox(m) as f64;
            let lo: [usize; 3] = std::array::from_fn(|a| {
                (g.source_index(a, window[a].start) - support)
                    .floor()
                    .max(0.0) as usize
            });
            let hi: [usize; 3] = std::array::from_fn(|a| {
                let c = g.source_index(a, window[a].end - 1) + support;
                (c.ceil() as usize + 1).min(img.shape()[a])
            });
            let sub = img
                .slice(ndarray::s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]])
                .to_owned();
            let part = resample_image(
                SourceRegion {
                    voxels: sub.view(),
                    offset_zyx: lo,
                },
                &g,
                &window,
                m,
            );
            let expected = reference.slice(ndarray::s![3..9, 2..8, 4..9]);
            let worst = Zip::from(&part)
                .and(&expected)
                .fold(0.0f32, |w, a, b| w.max((a - b).abs()));
            assert!(worst < 1e-3, "{m:?}: window differs by {worst}");
        }
    }
}
