//! Moments of the ROI voxel positions (IBSI 1 sections 3.1.10, 3.1.12 – 3.1.16, 3.1.21,
//! 3.1.22): centre of mass shift, principal component axes and the approximate enclosing
//! ellipsoid (AEE).
//!
//! Positions are voxel centres in millimetres, `[z, y, x]`, relative to the crop origin;
//! every quantity here is translation invariant, so the origin does not matter.

use ndarray::Array3;

/// Sweep limit of the cyclic Jacobi eigenvalue iteration; a 3×3 symmetric matrix
/// converges quadratically, in well under ten sweeps.
const JACOBI_MAX_SWEEPS: usize = 50;

/// Last Legendre degree of the ellipsoid surface series (IBSI 3.1.22, RDD2: "by default,
/// we stop the series after ν = 20").
pub const AEE_SERIES_LAST_DEGREE: u32 = 20;

/// Voxel-centre position (mm, `[z, y, x]`) of index `(z, y, x)`.
pub fn position_mm((z, y, x): (usize, usize, usize), spacing_mm: [f64; 3]) -> [f64; 3] {
    [
        z as f64 * spacing_mm[0],
        y as f64 * spacing_mm[1],
        x as f64 * spacing_mm[2],
    ]
}

/// Mean position (mm) of the voxels of `mask`, or `None` if it is empty.
pub fn centroid_mm(mask: &Array3<bool>, spacing_mm: [f64; 3]) -> Option<[f64; 3]> {
    let mut sum = [0.0; 3];
    let mut n = 0_usize;
    for (i, _) in mask.indexed_iter().filter(|(_, m)| **m) {
        let p = position_mm(i, spacing_mm);
        (0..3).for_each(|k| sum[k] += p[k]);
        n += 1;
    }
    (n > 0).then(|| sum.map(|s| s / n as f64))
}

/// Intensity-weighted mean position (mm) over `mask`: `Σ X_k r_k / Σ X_k` (IBSI 3.1.10).
/// `None` if the intensities sum to zero (or the mask is empty), where it is undefined.
pub fn weighted_centroid_mm(
    mask: &Array3<bool>,
    values: &Array3<f32>,
    spacing_mm: [f64; 3],
) -> Option<[f64; 3]> {
    let mut sum = [0.0; 3];
    let mut weight = 0.0;
    for ((i, _), &v) in mask.indexed_iter().zip(values).filter(|((_, m), _)| **m) {
        let p = position_mm(i, spacing_mm);
        let w = f64::from(v);
        (0..3).for_each(|k| sum[k] += w * p[k]);
        weight += w;
    }
    let c = sum.map(|s| s / weight);
    (weight != 0.0 && c.iter().all(|v| v.is_finite())).then_some(c)
}

/// Eigenvalues (mm², descending) of the covariance matrix of the voxel-centre positions
/// of `mask` (IBSI 3.1.12: PCA of the point set `X_c`), or `None` for fewer than two
/// voxels.
///
/// The covariance is the sample covariance, normalised by `N − 1`: the IBSI
/// digital-phantom reference values follow it (minor axis 9.31 ± 0.06 mm; normalising by
/// `N` gives 9.24 mm there).
pub fn principal_eigenvalues(mask: &Array3<bool>, spacing_mm: [f64; 3]) -> Option<[f64; 3]> {
    let c = centroid_mm(mask, spacing_mm)?;
    let mut cov = [[0.0; 3]; 3];
    let mut n = 0_usize;
    for (i, _) in mask.indexed_iter().filter(|(_, m)| **m) {
        let p = position_mm(i, spacing_mm);
        let d = [0, 1, 2].map(|k| p[k] - c[k]);
        for r in 0..3 {
            for s in 0..3 {
                cov[r][s] += d[r] * d[s];
            }
        }
        n += 1;
    }
    if n < 2 {
        return None;
    }
    let cov = cov.map(|row| row.map(|v| v / (n - 1) as f64));
    Some(symmetric_eigenvalues(cov))
}

/// Eigenvalues of a symmetric 3×3 matrix, descending, by cyclic Jacobi rotations
/// (Golub & Van Loan, *Matrix Computations*, 4th ed., section 8.5).
pub fn symmetric_eigenvalues(mut a: [[f64; 3]; 3]) -> [f64; 3] {
    for _ in 0..JACOBI_MAX_SWEEPS {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        let diag = a[0][0].powi(2) + a[1][1].powi(2) + a[2][2].powi(2);
        if off <= f64::EPSILON * f64::EPSILON * diag || off == 0.0 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            // Rotation angle that zeroes a[p][q]: t = tan θ, the smaller root.
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            let apq = a[p][q];
            a[p][p] -= t * apq;
            a[q][q] += t * apq;
            a[p][q] = 0.0;
            a[q][p] = 0.0;
            let r = 3 - p - q;
            let (arp, arq) = (a[r][p], a[r][q]);
            a[r][p] = c * arp - s * arq;
            a[p][r] = a[r][p];
            a[r][q] = s * arp + c * arq;
            a[q][r] = a[r][q];
        }
    }
    let mut ev = [a[0][0], a[1][1], a[2][2]];
    ev.sort_by(|x, y| y.total_cmp(x));
    ev
}

/// Surface area of an ellipsoid with semi-axes `a ≥ b ≥ c` by the Legendre series of
/// IBSI 3.1.22 (RDD2), truncated after degree [`AEE_SERIES_LAST_DEGREE`]:
///
/// ```text
/// A = 4π a b Σ_{ν=0}^{20} (αβ)^ν / (1 − 4ν²) · P_ν((α² + β²) / (2αβ))
/// α = √(1 − b²/a²),  β = √(1 − c²/a²)
/// ```
///
/// `(αβ)^ν P_ν(x)` is evaluated as `Q_ν` with the Bonnet recurrence multiplied through
/// by `(αβ)^{ν+1}`: `Q_{ν+1} = ((2ν+1) s Q_ν − ν (αβ)² Q_{ν−1}) / (ν+1)`, `s = (α²+β²)/2`,
/// which stays finite for a sphere (`α = β = 0`), where the argument of `P_ν` is not.
pub fn ellipsoid_area(a: f64, b: f64, c: f64) -> f64 {
    let alpha = (1.0 - (b / a).powi(2)).max(0.0).sqrt();
    let beta = (1.0 - (c / a).powi(2)).max(0.0).sqrt();
    let s = (alpha * alpha + beta * beta) / 2.0;
    let ab2 = (alpha * beta).powi(2);
    let (mut q_prev, mut q) = (0.0, 1.0); // Q_{-1} (unused at ν = 0), Q_0
    let mut sum = 0.0;
    for nu in 0..=AEE_SERIES_LAST_DEGREE {
        let v = f64::from(nu);
        sum += q / (1.0 - 4.0 * v * v);
        let next = ((2.0 * v + 1.0) * s * q - v * ab2 * q_prev) / (v + 1.0);
        q_prev = q;
        q = next;
    }
    4.0 * std::f64::consts::PI * a * b * sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_matches_known_spectra() {
        let ev = symmetric_eigenvalues([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 5.0]]);
        for (got, want) in ev.iter().zip([5.0, 3.0, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{ev:?}");
        }
        // A full matrix: trace and determinant are preserved.
        let m = [[4.0, -2.0, 1.0], [-2.0, 3.0, 0.5], [1.0, 0.5, 1.0]];
        let ev = symmetric_eigenvalues(m);
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        assert!((ev.iter().sum::<f64>() - 8.0).abs() < 1e-12);
        assert!((ev.iter().product::<f64>() - det).abs() < 1e-12);
        assert!(ev[0] >= ev[1] && ev[1] >= ev[2]);
    }

    /// Legendre polynomial `P_ν(x)` by the Bonnet recurrence, for the literal series.
    fn legendre(nu: u32, x: f64) -> f64 {
        let (mut p_prev, mut p) = (1.0, x);
        if nu == 0 {
            return 1.0;
        }
        for k in 1..nu {
            let k = f64::from(k);
            let next = ((2.0 * k + 1.0) * x * p - k * p_prev) / (k + 1.0);
            p_prev = p;
            p = next;
        }
        p
    }

    #[test]
    fn ellipsoid_area_follows_the_ibsi_series() {
        let r = 3.0;
        let sphere = ellipsoid_area(r, r, r);
        assert!((sphere - 4.0 * std::f64::consts::PI * r * r).abs() < 1e-9);
        // Triaxial: the rescaled recurrence equals the series written with P_ν(x).
        let (a, b, c) = (3.0_f64, 2.0_f64, 1.0_f64);
        let alpha = (1.0 - (b / a).powi(2)).sqrt();
        let beta = (1.0 - (c / a).powi(2)).sqrt();
        let x = (alpha * alpha + beta * beta) / (2.0 * alpha * beta);
        let literal: f64 = (0..=AEE_SERIES_LAST_DEGREE)
            .map(|nu| {
                let v = f64::from(nu);
                (alpha * beta).powi(nu as i32) / (1.0 - 4.0 * v * v) * legendre(nu, x)
            })
            .sum::<f64>()
            * 4.0
            * std::f64::consts::PI
            * a
            * b;
        let got = ellipsoid_area(a, b, c);
        assert!((got / literal - 1.0).abs() < 1e-12, "{got} vs {literal}");
    }

    #[test]
    fn line_of_voxels_has_one_principal_axis() {
        let mask = Array3::from_elem((1, 1, 5), true);
        let ev = principal_eigenvalues(&mask, [1.0, 1.0, 2.0]).expect("five voxels");
        // x positions 0, 2, 4, 6, 8: sample variance 40 / 4 = 10.
        assert!(
            (ev[0] - 10.0).abs() < 1e-12 && ev[1] == 0.0 && ev[2] == 0.0,
            "{ev:?}"
        );
        let one = Array3::from_elem((1, 1, 1), true);
        assert!(principal_eigenvalues(&one, [1.0; 3]).is_none());
    }

    #[test]
    fn weighted_centroid_undefined_for_zero_weight() {
        let mask = Array3::from_elem((1, 1, 2), true);
        let values = Array3::from_shape_vec((1, 1, 2), vec![-1.0_f32, 1.0]).expect("2 values");
        assert!(weighted_centroid_mm(&mask, &values, [1.0; 3]).is_none());
        let values = Array3::from_shape_vec((1, 1, 2), vec![1.0_f32, 3.0]).expect("2 values");
        let c = weighted_centroid_mm(&mask, &values, [1.0; 3]).expect("defined");
        assert!((c[2] - 0.75).abs() < 1e-12);
    }
}
