//! Image filters that PyRadiomics offers as image types (`imageType` in a parameter file),
//! one filter per file: Laplacian of Gaussian ([`log`]), the undecimated wavelet transform
//! ([`wavelet`]), the intensity maps square, square root, logarithm and exponential
//! ([`square`], [`square_root`], [`logarithm`], [`exponential`]) and the gradient
//! magnitude ([`gradient`]).
//!
//! Every filter maps an intensity array (axis order `[z, y, x]`, spacing in mm) to a
//! filtered array of the same shape. Features of a filtered image are computed on the
//! filtered intensities inside the lesion's (re-segmented) intensity mask, as PyRadiomics
//! does; the definitions follow PyRadiomics 3.x `radiomics/imageoperations.py` (which the
//! IBSI 2 chapter on convolutional filters standardises for LoG and wavelets, with
//! PyRadiomics' own boundary conditions kept here for parity).
//!
//! # Region
//! A filter sees one box of the image as "the image" ([`FilterImage`]): the whole series
//! (PyRadiomics without resampling or `preCrop`) or the lesion's bounding box padded by
//! `padDistance` voxels (PyRadiomics with resampling or `preCrop`). Its borders are the
//! filter's boundary conditions. radscore computes only the window the lesion needs plus
//! the filter's margin ([`ImageFilter::margin_vox`]) inside that box, so a lesion on a
//! 512×512×300 CT does not filter the whole volume.

pub mod exponential;
pub mod gradient;
pub mod log;
pub mod logarithm;
pub mod square;
pub mod square_root;
pub mod wavelet;

use std::ops::Range;

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One filter and its parameters: a PyRadiomics image type, expanded to one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageFilter {
    /// Laplacian of Gaussian with standard deviation `sigma_mm` (PyRadiomics `LoG`).
    Log {
        /// Gaussian σ in millimetres (PyRadiomics `sigma`).
        sigma_mm: f64,
        /// σ was written as an integer (`sigma: [3]`). PyRadiomics names the image from
        /// Python's `str` of the value as written: `log-sigma-3-mm-3D` for `3`,
        /// `log-sigma-3-0-mm-3D` for `3.0` (`imageoperations.getLoGImage`). Only the name
        /// depends on it; absent from the JSON (and the hash) when false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sigma_as_integer: bool,
    },
    /// One band of PyRadiomics' stationary wavelet decomposition (PyRadiomics `Wavelet`).
    Wavelet {
        /// PyWavelets name of the wavelet, e.g. `coif1` (see [`wavelet::WAVELETS`]).
        wavelet: String,
        /// Levels of approximation applied before the first output level
        /// (PyRadiomics `start_level`).
        #[serde(default)]
        start_level: u32,
        /// Output level, 1-based after `start_level` (PyRadiomics names level 1
        /// `wavelet-…`, level 2 `wavelet2-…`).
        level: u32,
        /// Band as low/high pass along x, y, z, e.g. `LHH` (PyRadiomics order).
        band: String,
    },
    /// `(x / √max|x|)²` (PyRadiomics `Square`).
    Square,
    /// `sign(x)·√(|x|·max|x|)` (PyRadiomics `SquareRoot`).
    SquareRoot,
    /// `sign(x)·log(|x| + 1)`, rescaled to the original maximum (PyRadiomics `Logarithm`).
    Logarithm,
    /// `exp(x·log(max|x|) / max|x|)` (PyRadiomics `Exponential`).
    Exponential,
    /// Gradient magnitude by central differences (PyRadiomics `Gradient`).
    Gradient {
        /// Differences per millimetre (true, PyRadiomics' default) or per voxel.
        use_spacing: bool,
    },
}

/// Why a filter cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// Parameters out of range (checked when settings are read).
    #[error("image filter {filter}: {reason}")]
    Invalid { filter: String, reason: String },
    /// The image the filter sees is too small for it (PyRadiomics skips such images).
    #[error("image filter {filter}: the image ({shape:?} voxels) is too small: {reason}")]
    TooSmall {
        filter: String,
        shape: [usize; 3],
        reason: String,
    },
}

/// The box of the series a filter treats as the whole image, and the window inside it
/// whose filtered values are wanted. Both in series voxel indices, `[z, y, x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterImage {
    /// The filter's image: its borders are the boundary conditions.
    pub bounds: [Range<usize>; 3],
    /// The wanted output window; must lie inside `bounds`.
    pub output: [Range<usize>; 3],
    /// Voxel spacing `[z, y, x]`, mm.
    pub spacing_mm: [f64; 3],
    /// Largest absolute intensity in `bounds` (the scaling of the intensity maps).
    pub max_abs: f64,
}

impl ImageFilter {
    /// PyRadiomics' image type name, the prefix of its feature names, e.g.
    /// `log-sigma-3-0-mm-3D`, `wavelet-LHH`, `wavelet2-LLL`, `squareroot`.
    pub fn image_type(&self) -> String {
        match self {
            ImageFilter::Log {
                sigma_mm,
                sigma_as_integer,
            } => log::image_type(*sigma_mm, *sigma_as_integer),
            ImageFilter::Wavelet { level, band, .. } => wavelet::image_type(*level, band),
            ImageFilter::Square => "square".into(),
            ImageFilter::SquareRoot => "squareroot".into(),
            ImageFilter::Logarithm => "logarithm".into(),
            ImageFilter::Exponential => "exponential".into(),
            ImageFilter::Gradient { .. } => "gradient".into(),
        }
    }

    /// Check the parameters.
    ///
    /// # Errors
    /// [`FilterError::Invalid`] naming the parameter.
    pub fn validate(&self) -> Result<(), FilterError> {
        let invalid = |reason: String| FilterError::Invalid {
            filter: self.image_type(),
            reason,
        };
        match self {
            ImageFilter::Log { sigma_mm, .. } if !(sigma_mm.is_finite() && *sigma_mm > 0.0) => {
                Err(invalid(format!("sigma_mm must be > 0, got {sigma_mm}")))
            }
            ImageFilter::Log {
                sigma_mm,
                sigma_as_integer: true,
            } if sigma_mm.fract() != 0.0 => Err(invalid(format!(
                "sigma_as_integer needs an integral sigma_mm, got {sigma_mm}"
            ))),
            ImageFilter::Wavelet {
                wavelet,
                start_level,
                level,
                band,
            } => wavelet::validate(wavelet, *start_level, *level, band).map_err(invalid),
            _ => Ok(()),
        }
    }

    /// Voxels of image around the output window that the filtered values depend on (or,
    /// for LoG, beyond which their influence is below [`log::MARGIN_SIGMAS`] σ).
    pub fn margin_vox(&self, spacing_mm: [f64; 3]) -> [usize; 3] {
        match self {
            ImageFilter::Log { sigma_mm, .. } => std::array::from_fn(|a| {
                ((log::MARGIN_SIGMAS * sigma_mm / spacing_mm[a]).ceil() as usize)
                    .max(log::MIN_LINE_VOX)
            }),
            ImageFilter::Wavelet {
                wavelet,
                start_level,
                level,
                ..
            } => [wavelet::margin_vox(wavelet, start_level + level); 3],
            ImageFilter::Gradient { .. } => [gradient::MARGIN_VOX; 3],
            _ => [0; 3],
        }
    }

    /// Whether the filter must see whole axes where its window reaches the image border
    /// (periodic boundary conditions wrap the far side in).
    fn periodic(&self) -> bool {
        matches!(self, ImageFilter::Wavelet { .. })
    }

    /// The filtered values of `image.output`, reading from `voxels` only the window
    /// [`ImageFilter::input_window`] (indices like `image.bounds`).
    ///
    /// # Errors
    /// [`FilterError`] for invalid parameters or an image too small for the filter.
    pub fn apply(
        &self,
        voxels: &dyn FilterSource,
        image: &FilterImage,
    ) -> Result<Array3<f32>, FilterError> {
        self.validate()?;
        self.check_image(image)?;
        let window = self.input_window(image);
        let region = voxels.region(&window);
        let at_border: [[bool; 2]; 3] = std::array::from_fn(|a| {
            [
                window[a].start == image.bounds[a].start,
                window[a].end == image.bounds[a].end,
            ]
        });
        let filtered = match self {
            ImageFilter::Log { sigma_mm, .. } => {
                log::laplacian_of_gaussian(&region, image.spacing_mm, *sigma_mm, self)?
            }
            ImageFilter::Wavelet {
                wavelet,
                start_level,
                level,
                band,
            } => {
                let whole: [bool; 3] = std::array::from_fn(|a| at_border[a][0] || at_border[a][1]);
                wavelet::band(&region, whole, wavelet, *start_level, *level, band).map_err(
                    |reason| FilterError::Invalid {
                        filter: self.image_type(),
                        reason,
                    },
                )?
            }
            ImageFilter::Square => square::apply(region, image.max_abs),
            ImageFilter::SquareRoot => square_root::apply(region, image.max_abs),
            ImageFilter::Logarithm => logarithm::apply(region, image.max_abs),
            ImageFilter::Exponential => exponential::apply(region, image.max_abs),
            ImageFilter::Gradient { use_spacing } => {
                let spacing = if *use_spacing {
                    image.spacing_mm
                } else {
                    [1.0; 3]
                };
                gradient::magnitude(&region, spacing)
            }
        };
        let out: [Range<usize>; 3] = std::array::from_fn(|a| {
            image.output[a].start - window[a].start..image.output[a].end - window[a].start
        });
        Ok(filtered
            .slice(ndarray::s![out[0].clone(), out[1].clone(), out[2].clone()])
            .mapv(|v| v as f32))
    }

    /// Refuse images PyRadiomics would skip the filter on: LoG needs every axis at
    /// least [`log::MIN_LINE_VOX`] and `⌈σ / spacing⌉ + 1` voxels long; the intensity
    /// maps need a non-zero image.
    fn check_image(&self, image: &FilterImage) -> Result<(), FilterError> {
        let shape: [usize; 3] = std::array::from_fn(|a| image.bounds[a].len());
        let too_small = |reason: String| FilterError::TooSmall {
            filter: self.image_type(),
            shape,
            reason,
        };
        match self {
            ImageFilter::Log { sigma_mm, .. } => {
                for (a, (&len, spacing)) in shape.iter().zip(image.spacing_mm).enumerate() {
                    let needed = ((sigma_mm / spacing).ceil() as usize + 1).max(log::MIN_LINE_VOX);
                    if len < needed {
                        return Err(too_small(format!(
                            "LoG with σ = {sigma_mm} mm needs {needed} voxels along axis {a}"
                        )));
                    }
                }
                Ok(())
            }
            ImageFilter::Square
            | ImageFilter::SquareRoot
            | ImageFilter::Logarithm
            | ImageFilter::Exponential
                if !(image.max_abs > 0.0 && image.max_abs.is_finite()) =>
            {
                Err(too_small(
                    "the image is all zero, so the intensity map's scale is undefined".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The window the filter reads: the output window plus the margin, within the bounds;
    /// whole axes for periodic filters whose margin reaches a border.
    pub fn input_window(&self, image: &FilterImage) -> [Range<usize>; 3] {
        let margin = self.margin_vox(image.spacing_mm);
        std::array::from_fn(|a| {
            let b = &image.bounds[a];
            let lo = image.output[a].start.saturating_sub(margin[a]).max(b.start);
            let hi = (image.output[a].end + margin[a]).min(b.end);
            if self.periodic() && (lo == b.start || hi == b.end) {
                b.clone()
            } else {
                lo..hi
            }
        })
    }
}

/// The voxels a filter reads, by window: an array indexed like the filter's image, or a
/// crop of a larger image (a lesion's neighbourhood in a series held as 16-bit samples),
/// so a filter never needs the whole series widened to floating point.
pub trait FilterSource: Sync {
    /// The voxels of `window` as `f64`.
    ///
    /// # Panics
    /// When `window` is not inside the voxels the source holds (a caller's bug: it holds
    /// at least every filter's [`ImageFilter::input_window`]).
    fn region(&self, window: &[Range<usize>; 3]) -> Array3<f64>;
}

impl FilterSource for ArrayView3<'_, f32> {
    fn region(&self, window: &[Range<usize>; 3]) -> Array3<f64> {
        self.slice(ndarray::s![
            window[0].clone(),
            window[1].clone(),
            window[2].clone()
        ])
        .mapv(f64::from)
    }
}

/// Largest absolute value of `voxels` (0 for an empty array).
pub fn max_abs(voxels: ArrayView3<f32>) -> f64 {
    voxels
        .iter()
        .fold(0.0f64, |m, &v| m.max(f64::from(v).abs()))
}

/// Apply `f` to every line of `input` along `axis` (0 = z, 1 = y, 2 = x), in parallel;
/// `f` reads the line and writes the output line (same length).
pub(crate) fn map_lines(
    input: &Array3<f64>,
    axis: usize,
    f: impl Fn(&[f64], &mut [f64]) + Sync,
) -> Array3<f64> {
    // Move `axis` last so every line is contiguous in the output buffer.
    let (to_last, back) = match axis {
        0 => ([1, 2, 0], [2, 0, 1]),
        1 => ([0, 2, 1], [0, 2, 1]),
        _ => ([0, 1, 2], [0, 1, 2]),
    };
    let moved = input.view().permuted_axes(to_last);
    let (d0, d1, n) = moved.dim();
    let mut out = vec![0.0; d0 * d1 * n];
    if n > 0 {
        out.par_chunks_mut(n).enumerate().for_each_init(
            || Vec::with_capacity(n),
            |line, (index, line_out)| {
                line.clear();
                line.extend(moved.slice(ndarray::s![index / d1, index % d1, ..]).iter());
                f(line, line_out);
            },
        );
    }
    Array3::from_shape_vec((d0, d1, n), out)
        .expect("the buffer holds d0·d1·n values")
        .permuted_axes(back)
        .as_standard_layout()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_runs_along_each_axis() {
        let a = Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z * 100 + y * 10 + x) as f64);
        for axis in 0..3 {
            // Reverse every line along `axis`.
            let r = map_lines(&a, axis, |l, o| {
                for (i, v) in l.iter().rev().enumerate() {
                    o[i] = *v;
                }
            });
            let n = a.shape()[axis];
            for ((z, y, x), v) in r.indexed_iter() {
                let mut idx = [z, y, x];
                idx[axis] = n - 1 - idx[axis];
                assert_eq!(*v, a[idx]);
            }
        }
    }

    fn log_filter(sigma_mm: f64, sigma_as_integer: bool) -> ImageFilter {
        ImageFilter::Log {
            sigma_mm,
            sigma_as_integer,
        }
    }

    #[test]
    fn image_type_names_follow_pyradiomics() {
        assert_eq!(log_filter(3.0, false).image_type(), "log-sigma-3-0-mm-3D");
        assert_eq!(log_filter(3.0, true).image_type(), "log-sigma-3-mm-3D");
        assert_eq!(log_filter(0.5, false).image_type(), "log-sigma-0-5-mm-3D");
        assert!(log_filter(0.5, true).validate().is_err());
        let w = |level, band: &str| ImageFilter::Wavelet {
            wavelet: "coif1".into(),
            start_level: 0,
            level,
            band: band.into(),
        };
        assert_eq!(w(1, "LHH").image_type(), "wavelet-LHH");
        assert_eq!(w(2, "LLL").image_type(), "wavelet2-LLL");
        assert_eq!(ImageFilter::SquareRoot.image_type(), "squareroot");
    }
}
