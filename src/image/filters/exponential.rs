//! Exponential filter (PyRadiomics image type `Exponential`).
//!
//! ```text
//! f(x) = exp(c·x),   c = log(max|x|) / max|x|
//! ```
//! so `f(max|x|) = max|x|`. Reference: PyRadiomics 3.x
//! `imageoperations.getExponentialImage`.

use ndarray::Array3;

/// Exponential of every intensity, scaled by the image's largest absolute value.
pub fn apply(mut image: Array3<f64>, max_abs: f64) -> Array3<f64> {
    let c = max_abs.ln() / max_abs;
    image.mapv_inplace(|x| (c * x).exp());
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_maximum_onto_itself() {
        let image = Array3::from_shape_vec((1, 1, 3), vec![100.0, 0.0, -100.0]).unwrap();
        let v = apply(image, 100.0).into_raw_vec_and_offset().0;
        assert!((v[0] - 100.0).abs() < 1e-9);
        assert_eq!(v[1], 1.0);
        assert!((v[2] - 0.01).abs() < 1e-12);
    }
}
