//! Square-root filter (PyRadiomics image type `SquareRoot`).
//!
//! ```text
//! f(x) =  √(c·x)    for x ≥ 0
//! f(x) = −√(−c·x)   for x < 0,     c = max|x|
//! ```
//! so the output range equals the input's and signs are kept. Reference: PyRadiomics 3.x
//! `imageoperations.getSquareRootImage`.

use ndarray::Array3;

/// Signed square root of every intensity, scaled by the image's largest absolute value.
pub fn apply(mut image: Array3<f64>, max_abs: f64) -> Array3<f64> {
    image.mapv_inplace(|x| {
        if x > 0.0 {
            (x * max_abs).sqrt()
        } else if x < 0.0 {
            -(-x * max_abs).sqrt()
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
    fn signed_and_scaled() {
        let image = Array3::from_shape_vec((1, 1, 3), vec![-4.0, 1.0, 0.0]).unwrap();
        let out = apply(image, 4.0);
        assert_eq!(out.into_raw_vec_and_offset().0, vec![-4.0, 2.0, 0.0]);
    }
}
