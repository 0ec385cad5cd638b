//! Laplacian of Gaussian (PyRadiomics image type `LoG`), as SimpleITK's
//! `LaplacianRecursiveGaussianImageFilter` with `NormalizeAcrossScale` computes it.
//!
//! ```text
//! LoG(x) = σ² · Σ_a ∂²/∂a² (G_σ ∗ x)          σ in mm, a over the three axes
//! ```
//! Each term is a separable recursive (IIR) filter: the second derivative of the Gaussian
//! along `a`, then Gaussian smoothing along the other two axes, each a fourth-order
//! causal + anti-causal recursion (Deriche, "Recursively implementing the Gaussian and its
//! derivatives", INRIA RR-1893, 1993; the coefficients and the edge-extension initial
//! conditions are ITK's `RecursiveGaussianImageFilter`). The derivative along `a` is in
//! voxel units and divided by the squared spacing; `σ²` makes responses comparable across
//! scales (IBSI 2 "Laplacian of Gaussian", normalised by σ²).
//!
//! The recursion has infinite support: a value depends on the whole line, decaying like
//! `exp(−1.37·d/σ)` with distance `d`. Outside the image the edge value is repeated. radscore
//! filters the lesion window plus [`MARGIN_SIGMAS`] σ, where the influence of the rest of
//! the line is below 1e-6 of the edge contrast.

use ndarray::Array3;

use super::{FilterError, ImageFilter, map_lines};

/// Margin around the wanted window, in σ: `exp(−1.37 · 10) ≈ 1e-6`.
pub const MARGIN_SIGMAS: f64 = 10.0;
/// ITK's recursive filters need at least this many voxels along each axis.
pub const MIN_LINE_VOX: usize = 4;

/// Deriche's fitted exponential series (ITK `RecursiveGaussianImageFilter::SetUp`):
/// `a0, b0` for the Gaussian, `a2, b2` for its second derivative, and the shared
/// frequencies `w` and decays `l` of the two terms.
const A0: [f64; 2] = [1.3530, -0.3531];
const B0: [f64; 2] = [1.8151, 0.0902];
const A2: [f64; 2] = [-1.3563, 0.3446];
const B2: [f64; 2] = [5.2318, -2.2355];
const W: [f64; 2] = [0.6681, 2.0787];
const L: [f64; 2] = [-1.3932, -1.3732];

/// PyRadiomics' image type name: `log-sigma-<σ>-mm-3D` with `.` written `-`, σ as Python's
/// `str` prints the value as written in the parameter file: an integer `3` → `3`
/// (`as_integer`), a float `3.0` → `3-0` (`imageoperations.getLoGImage`).
pub fn image_type(sigma_mm: f64, as_integer: bool) -> String {
    let sigma = if as_integer {
        format!("{sigma_mm:.0}")
    } else {
        format!("{sigma_mm:?}")
    };
    format!("log-sigma-{}-mm-3D", sigma.replace('.', "-"))
}

/// Coefficients of one recursive pass (ITK's N, D, M and boundary terms).
#[derive(Debug, Clone, Copy)]
struct Recursion {
    n: [f64; 4],
    d: [f64; 4],
    m: [f64; 4],
    bn: [f64; 4],
    bm: [f64; 4],
}

/// `(N0..N3, SN, DN, EN)` of one exponential series at `sigma_vox`.
fn n_coefficients(sigma_vox: f64, a: [f64; 2], b: [f64; 2]) -> ([f64; 4], [f64; 3]) {
    let (s1, s2) = ((W[0] / sigma_vox).sin(), (W[1] / sigma_vox).sin());
    let (c1, c2) = ((W[0] / sigma_vox).cos(), (W[1] / sigma_vox).cos());
    let (e1, e2) = ((L[0] / sigma_vox).exp(), (L[1] / sigma_vox).exp());
    let n0 = a[0] + a[1];
    let n1 =
        e2 * (b[1] * s2 - (a[1] + 2.0 * a[0]) * c2) + e1 * (b[0] * s1 - (a[0] + 2.0 * a[1]) * c1);
    let n2 = 2.0 * e1 * e2 * ((a[0] + a[1]) * c2 * c1 - (b[0] * c2 * s1 + b[1] * c1 * s2))
        + a[1] * e1 * e1
        + a[0] * e2 * e2;
    let n3 = e2 * e1 * e1 * (b[1] * s2 - a[1] * c2) + e1 * e2 * e2 * (b[0] * s1 - a[0] * c1);
    let sn = n0 + n1 + n2 + n3;
    let dn = n1 + 2.0 * n2 + 3.0 * n3;
    let en = n1 + 4.0 * n2 + 9.0 * n3;
    ([n0, n1, n2, n3], [sn, dn, en])
}

/// `(D1..D4, SD, DD, ED)` at `sigma_vox`.
fn d_coefficients(sigma_vox: f64) -> ([f64; 4], [f64; 3]) {
    let (c1, c2) = ((W[0] / sigma_vox).cos(), (W[1] / sigma_vox).cos());
    let (e1, e2) = ((L[0] / sigma_vox).exp(), (L[1] / sigma_vox).exp());
    let d4 = e1 * e1 * e2 * e2;
    let d3 = -2.0 * c1 * e1 * e2 * e2 - 2.0 * c2 * e2 * e1 * e1;
    let d2 = 4.0 * c2 * c1 * e1 * e2 + e1 * e1 + e2 * e2;
    let d1 = -2.0 * (e2 * c2 + e1 * c1);
    let sd = 1.0 + d1 + d2 + d3 + d4;
    let dd = d1 + 2.0 * d2 + 3.0 * d3 + 4.0 * d4;
    let ed = d1 + 4.0 * d2 + 9.0 * d3 + 16.0 * d4;
    ([d1, d2, d3, d4], [sd, dd, ed])
}

impl Recursion {
    /// Gaussian smoothing (order 0) at `sigma_vox` voxels.
    fn smoothing(sigma_vox: f64) -> Self {
        let (d, [sd, _, _]) = d_coefficients(sigma_vox);
        let (n, [sn, _, _]) = n_coefficients(sigma_vox, A0, B0);
        let alpha0 = 2.0 * sn / sd - n[0];
        Self::with(n.map(|v| v / alpha0), d)
    }

    /// Second derivative (order 2) at `sigma_vox` voxels, multiplied by `scale`.
    fn second_derivative(sigma_vox: f64, scale: f64) -> Self {
        let (d, [sd, dd, ed]) = d_coefficients(sigma_vox);
        let (n0, [sn0, dn0, en0]) = n_coefficients(sigma_vox, A0, B0);
        let (n2, [sn2, dn2, en2]) = n_coefficients(sigma_vox, A2, B2);
        let beta = -(2.0 * sn2 - sd * n2[0]) / (2.0 * sn0 - sd * n0[0]);
        let n: [f64; 4] = std::array::from_fn(|i| n2[i] + beta * n0[i]);
        let (sn, dn, en) = (sn2 + beta * sn0, dn2 + beta * dn0, en2 + beta * en0);
        let alpha2 = (en * sd * sd - ed * sn * sd - 2.0 * dn * dd * sd + 2.0 * dd * dd * sn)
            / (sd * sd * sd);
        Self::with(n.map(|v| v * scale / alpha2), d)
    }

    /// The symmetric anti-causal and boundary coefficients for `n` and `d`.
    fn with(n: [f64; 4], d: [f64; 4]) -> Self {
        let m = [
            n[1] - d[0] * n[0],
            n[2] - d[1] * n[0],
            n[3] - d[2] * n[0],
            -d[3] * n[0],
        ];
        let sn: f64 = n.iter().sum();
        let sm: f64 = m.iter().sum();
        let sd = 1.0 + d.iter().sum::<f64>();
        Recursion {
            n,
            d,
            m,
            bn: d.map(|di| di * sn / sd),
            bm: d.map(|di| di * sm / sd),
        }
    }

    /// Filter one line (length ≥ [`MIN_LINE_VOX`]): causal pass forward, anti-causal pass
    /// backward, summed; the edge values are assumed to continue to infinity.
    fn filter(&self, x: &[f64], out: &mut [f64]) {
        let len = x.len();
        let (n, d, m) = (self.n, self.d, self.m);
        let dot = |c: [f64; 4], v: [f64; 4]| c[0] * v[0] + c[1] * v[1] + c[2] * v[2] + c[3] * v[3];

        // Causal: y[i] = Σ n_k x[i−k] − Σ d_k y[i−k]; before the line, x[0] and the
        // steady-state response to it.
        let first = x[0];
        let at = |i: isize| if i < 0 { first } else { x[i as usize] };
        let mut causal = vec![0.0; len];
        for i in 0..len {
            let ii = i as isize;
            let input = dot(n, [at(ii), at(ii - 1), at(ii - 2), at(ii - 3)]);
            let mut y = input;
            for (k, (dk, bnk)) in d.iter().zip(&self.bn).enumerate() {
                let j = ii - 1 - k as isize;
                y -= if j < 0 {
                    first * bnk
                } else {
                    causal[j as usize] * dk
                };
            }
            causal[i] = y;
        }

        // Anti-causal: z[i] = Σ m_k x[i+k] − Σ d_k z[i+k], from the far end.
        let last = x[len - 1];
        let ahead = |i: usize| x.get(i).copied().unwrap_or(last);
        let mut anti = vec![0.0; len];
        for i in (0..len).rev() {
            let mut z = dot(m, [ahead(i + 1), ahead(i + 2), ahead(i + 3), ahead(i + 4)]);
            for (k, (dk, bmk)) in d.iter().zip(&self.bm).enumerate() {
                let j = i + 1 + k;
                z -= if j >= len { last * bmk } else { anti[j] * dk };
            }
            anti[i] = z;
        }
        for ((o, c), a) in out.iter_mut().zip(&causal).zip(&anti) {
            *o = c + a;
        }
    }
}

/// The σ²-normalised Laplacian of Gaussian of `image` (spacing `[z, y, x]` mm).
///
/// # Errors
/// [`FilterError::TooSmall`] when an axis has fewer than [`MIN_LINE_VOX`] voxels.
pub fn laplacian_of_gaussian(
    image: &Array3<f64>,
    spacing_mm: [f64; 3],
    sigma_mm: f64,
    filter: &ImageFilter,
) -> Result<Array3<f64>, FilterError> {
    let dim = image.dim();
    let shape = [dim.0, dim.1, dim.2];
    if shape.iter().any(|&n| n < MIN_LINE_VOX) {
        return Err(FilterError::TooSmall {
            filter: filter.image_type(),
            shape,
            reason: format!("the recursive Gaussian needs {MIN_LINE_VOX} voxels along each axis"),
        });
    }
    let sigma_vox: [f64; 3] = std::array::from_fn(|a| sigma_mm / spacing_mm[a]);
    let mut sum = Array3::<f64>::zeros(dim);
    // ITK's axis order is x, y, z (our axes 2, 1, 0): derivative along `axis`, then
    // smoothing along the others in ITK order; each pass stores single precision.
    for axis in [2, 1, 0] {
        let second = Recursion::second_derivative(sigma_vox[axis], sigma_mm * sigma_mm);
        let mut term = map_lines(image, axis, |l, o| second.filter(l, o)).mapv(to_single);
        for other in [2, 1, 0].into_iter().filter(|&o| o != axis) {
            let smooth = Recursion::smoothing(sigma_vox[other]);
            term = map_lines(&term, other, |l, o| smooth.filter(l, o)).mapv(to_single);
        }
        let inv_spacing2 = 1.0 / (spacing_mm[axis] * spacing_mm[axis]);
        sum.zip_mut_with(&term, |s, t| *s += t * inv_spacing2);
    }
    Ok(sum)
}

/// Round to `f32`, as ITK stores each pass in the single-precision output image.
fn to_single(v: f64) -> f64 {
    f64::from(v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_preserves_a_constant_and_the_derivative_vanishes_on_it() {
        let line = vec![5.0; 12];
        let mut out = vec![0.0; 12];
        Recursion::smoothing(2.0).filter(&line, &mut out);
        assert!(out.iter().all(|v| (v - 5.0).abs() < 1e-9), "{out:?}");
        Recursion::second_derivative(2.0, 1.0).filter(&line, &mut out);
        assert!(out.iter().all(|v| v.abs() < 1e-9), "{out:?}");
    }

    #[test]
    fn second_derivative_of_a_parabola_is_two() {
        // x² has second derivative 2 everywhere; check far from the edges.
        let line: Vec<f64> = (0..200).map(|i| ((i as f64) - 100.0).powi(2)).collect();
        let mut out = vec![0.0; 200];
        Recursion::second_derivative(3.0, 1.0).filter(&line, &mut out);
        assert!((out[100] - 2.0).abs() < 1e-2, "{}", out[100]);
    }
}
