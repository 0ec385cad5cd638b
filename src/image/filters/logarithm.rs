//! Logarithm filter (PyRadiomics image type `Logarithm`).
//!
//! ```text
//! f(x) = sign(x)·c·log(|x| + 1),   c = max|x| / log(max|x| + 1)
//! ```
//! so the output range equals the input's and signs are kept. Reference: PyRadiomics 3.x
//! `imageoperations.getLogarithmImage`.

use ndarray::Array3;

/// Signed logarithm of every intensity, rescaled to the image's largest absolute value.
pub fn apply(mut image: Array3<f64>, max_abs: f64) -> Array3<f64> {
    // PyRadiomics divides by the largest transformed magnitude, which is log(max|x| + 1).
    let c = max_abs / (max_abs + 1.0).ln();
    image.mapv_inplace(|x| {
        if x > 0.0 {
            c * (x + 1.0).ln()
        } else if x < 0.0 {
            -c * (1.0 - x).ln()
        } else {
            x
        }
    });
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_range_and_sign() {
        let e = std::f64::consts::E;
        let image = Array3::from_shape_vec((1, 1, 3), vec![-(e - 1.0), e - 1.0, 0.0]).unwrap();
        let out = apply(image, e - 1.0);
        let v = out.into_raw_vec_and_offset().0;
        assert!((v[0] + (e - 1.0)).abs() < 1e-12 && (v[1] - (e - 1.0)).abs() < 1e-12);
        assert_eq!(v[2], 0.0);
    }
}
