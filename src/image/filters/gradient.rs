//! Gradient magnitude (PyRadiomics image type `Gradient`, which runs SimpleITK's
//! `GradientMagnitudeImageFilter`).
//!
//! ```text
//! g(v) = √( Σ_a ((x[v + e_a] − x[v − e_a]) / (2·s_a))² )
//! ```
//! central differences along each axis `a` with spacing `s_a` (mm, or 1 without
//! `gradientUseSpacing`), the image edge value repeated beyond the border (ITK's
//! zero-flux Neumann boundary condition).

use ndarray::Array3;

/// Voxels of context the central difference reads on each side.
pub const MARGIN_VOX: usize = 1;

/// Gradient magnitude of `image` with voxel spacing `spacing` (`[z, y, x]`).
pub fn magnitude(image: &Array3<f64>, spacing: [f64; 3]) -> Array3<f64> {
    let dim = image.dim();
    let shape = [dim.0, dim.1, dim.2];
    Array3::from_shape_fn(dim, |(z, y, x)| {
        let at = [z, y, x];
        let mut sum = 0.0;
        for a in 0..3 {
            let mut lo = at;
            let mut hi = at;
            lo[a] = at[a].saturating_sub(1);
            hi[a] = (at[a] + 1).min(shape[a] - 1);
            let d = (image[hi] - image[lo]) / (2.0 * spacing[a]);
            sum += d * d;
        }
        sum.sqrt()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ramp_has_its_slope_inside_and_half_at_the_border() {
        // x ramps by 3 per voxel of 1.5 mm: slope 2 per mm.
        let image = Array3::from_shape_fn((3, 3, 4), |(_, _, x)| 3.0 * x as f64);
        let g = magnitude(&image, [1.0, 1.0, 1.5]);
        assert!((g[[1, 1, 1]] - 2.0).abs() < 1e-12);
        assert!((g[[1, 1, 0]] - 1.0).abs() < 1e-12);
    }
}
