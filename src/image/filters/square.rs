//! Square filter (PyRadiomics image type `Square`).
//!
//! ```text
//! f(x) = (c·x)²,  c = 1 / √max|x|
//! ```
//! where `max|x|` is taken over the whole image the filter sees, so the output range
//! equals the input's. Reference: PyRadiomics 3.x `imageoperations.getSquareImage`.

use ndarray::Array3;

/// Square every intensity, scaled by the image's largest absolute value `max_abs`.
pub fn apply(mut image: Array3<f64>, max_abs: f64) -> Array3<f64> {
    let c = 1.0 / max_abs.sqrt();
    image.mapv_inplace(|x| (c * x).powi(2));
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_maximum_and_squares() {
        let image = Array3::from_shape_vec((1, 1, 3), vec![-4.0, 2.0, 1.0]).unwrap();
        let out = apply(image, 4.0);
        assert_eq!(out.into_raw_vec_and_offset().0, vec![4.0, 1.0, 0.25]);
    }
}
