//! Features of filtered images (PyRadiomics image types such as `LoG`, `Wavelet`,
//! `Square`) for one lesion: the glue between [`crate::image::filters`] and the feature
//! families.
//!
//! For each [`FilteredImage`] of a profile, the lesion's ROI window is filtered, then the
//! image's families run on the filtered intensities with the ROI's masks — the intensity
//! mask re-segmented on the *original* intensities, as PyRadiomics does — and every name
//! is prefixed with the image type ([`crate::features::filtered_name`]).
//!
//! Which image the filter sees ([`ImageFilters::crop_pad_vox`]):
//! * on the series grid: the whole series, or the lesion's bounding box padded by `n`
//!   voxels; only the ROI window plus the filter's margin is computed.
//! * after interpolation: the resampled ROI window (the lesion plus
//!   [`crate::pipeline::ROI_CONTEXT_MARGIN_MM`]), or its part within `n` voxels of the
//!   lesion's bounding box.

use std::ops::Range;

use ndarray::{Array3, ArrayView3, s};
use rayon::prelude::*;

use crate::features::settings::{FilteredImage, ImageFilters};
use crate::features::{self, FamilySettings, Feature, FeatureError, Roi};
use crate::image::LesionMask;
use crate::image::filters::{self, FilterImage, FilterSource};
use crate::pipeline::SeriesImage;

/// A lesion's ROI and, when it lies on the series grid, the series index of its first
/// voxel.
pub struct PlacedRoi<'a> {
    /// The ROI of the original image.
    pub roi: &'a Roi,
    /// Series index `[z, y, x]` of `roi`'s first voxel; `None` after interpolation.
    pub series_offset: Option<[usize; 3]>,
}

/// The features of every filtered image of `settings`, in order, prefixed.
///
/// # Errors
/// The first filter or family error (the lesion then fails as a whole, like any family
/// error).
pub fn compute_filtered(
    series: &SeriesImage<'_>,
    lesion: &LesionMask,
    placed: &PlacedRoi<'_>,
    settings: &FamilySettings,
) -> Result<Vec<Feature>, FeatureError> {
    let filters = &settings.image_filters;
    let source = Source::new(series, lesion, placed, filters);
    let per_image: Vec<Result<Vec<Feature>, FeatureError>> = filters
        .images
        .par_iter()
        .map(|image| compute_image(&source, placed.roi, image, settings))
        .collect();
    let mut out = Vec::new();
    for features in per_image {
        out.extend(features?);
    }
    Ok(out)
}

/// The voxels the filters read.
enum Voxels<'a> {
    /// The resampled ROI window, which is the filters' whole image.
    Roi(ArrayView3<'a, f32>),
    /// The part of the series every filter reads (the union of their input windows),
    /// widened to `f32`; `origin` is the series index of its first voxel.
    SeriesCrop {
        voxels: Array3<f32>,
        origin: [usize; 3],
    },
}

impl FilterSource for Voxels<'_> {
    fn region(&self, window: &[Range<usize>; 3]) -> Array3<f64> {
        match self {
            Voxels::Roi(view) => view.region(window),
            Voxels::SeriesCrop { voxels, origin } => {
                let local: [Range<usize>; 3] =
                    std::array::from_fn(|a| window[a].start - origin[a]..window[a].end - origin[a]);
                voxels.view().region(&local)
            }
        }
    }
}

/// The voxels a filter reads and the box it treats as the image.
struct Source<'a> {
    /// Indexed like `image.bounds` / `image.output`.
    voxels: Voxels<'a>,
    /// Bounds, output window, spacing and scaling.
    image: FilterImage,
    /// Index of the ROI's first voxel in `voxels`' indices.
    roi_offset: [usize; 3],
}

impl<'a> Source<'a> {
    fn new(
        series: &SeriesImage<'_>,
        lesion: &LesionMask,
        placed: &PlacedRoi<'a>,
        filters: &ImageFilters,
    ) -> Self {
        let roi = placed.roi;
        let roi_dim = roi.hu.dim();
        let roi_shape = [roi_dim.0, roi_dim.1, roi_dim.2];
        let (full, roi_offset, spacing_mm, lesion_box) = match placed.series_offset {
            Some(offset) => {
                let [lo, hi] = lesion.bbox_zyx();
                let lesion_box: [Range<usize>; 3] = std::array::from_fn(|a| lo[a]..hi[a] + 1);
                (
                    series.dim(),
                    offset,
                    series.volume.grid.spacing_mm,
                    lesion_box,
                )
            }
            // After interpolation the ROI window is the image; the lesion box is the
            // morphological mask's.
            // LIMITATION: after resampling, the filter's image is at most the resampled ROI window (lesion + 6.2 mm + one source voxel), so a larger padDistance is clipped to it; PyRadiomics' resampled grid differs anyway (see params.rs).
            None => (roi.hu.dim(), [0; 3], roi.spacing_mm, mask_box(roi)),
        };
        let full = [full.0, full.1, full.2];
        let bounds: [Range<usize>; 3] = std::array::from_fn(|a| match filters.crop_pad_vox {
            None => 0..full[a],
            Some(pad) => {
                lesion_box[a].start.saturating_sub(pad)..(lesion_box[a].end + pad).min(full[a])
            }
        });
        // The ROI window, within the filter's image (the lesion itself always is).
        let output: [Range<usize>; 3] = std::array::from_fn(|a| {
            roi_offset[a].max(bounds[a].start)..(roi_offset[a] + roi_shape[a]).min(bounds[a].end)
        });
        let mut image = FilterImage {
            bounds,
            output,
            spacing_mm,
            max_abs: 0.0,
        };
        let voxels = match placed.series_offset {
            Some(_) => {
                image.max_abs = series.max_abs(&image.bounds);
                let window = read_window(&filters.images, &image);
                Voxels::SeriesCrop {
                    voxels: series.crop(&window),
                    origin: window.map(|w| w.start),
                }
            }
            None => {
                let view = roi.hu.view();
                let b = &image.bounds;
                image.max_abs =
                    filters::max_abs(view.slice(s![b[0].clone(), b[1].clone(), b[2].clone()]));
                Voxels::Roi(view)
            }
        };
        Source {
            voxels,
            image,
            roi_offset,
        }
    }
}

/// The union of every filter's input window on `image`: the part of the series the
/// filters read.
fn read_window(images: &[FilteredImage], image: &FilterImage) -> [Range<usize>; 3] {
    let mut window = image.output.clone();
    for filtered in images {
        let input = filtered.filter.input_window(image);
        for a in 0..3 {
            window[a] = window[a].start.min(input[a].start)..window[a].end.max(input[a].end);
        }
    }
    window
}

/// The bounding box of the ROI's morphological mask, in ROI indices.
fn mask_box(roi: &Roi) -> [Range<usize>; 3] {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for ((z, y, x), &m) in roi.morph_mask.indexed_iter() {
        if m {
            for (a, i) in [z, y, x].into_iter().enumerate() {
                lo[a] = lo[a].min(i);
                hi[a] = hi[a].max(i + 1);
            }
        }
    }
    std::array::from_fn(|a| lo[a].min(hi[a])..hi[a])
}

/// Filter one image and compute its families on the ROI's masks.
fn compute_image(
    source: &Source<'_>,
    roi: &Roi,
    image: &FilteredImage,
    settings: &FamilySettings,
) -> Result<Vec<Feature>, FeatureError> {
    let filtered = image.filter.apply(&source.voxels, &source.image)?;
    let window: [Range<usize>; 3] = std::array::from_fn(|a| {
        source.image.output[a].start - source.roi_offset[a]
            ..source.image.output[a].end - source.roi_offset[a]
    });
    let masks = || s![window[0].clone(), window[1].clone(), window[2].clone()];
    let filtered_roi = Roi {
        hu: filtered,
        intensity_mask: roi.intensity_mask.slice(masks()).to_owned(),
        morph_mask: roi.morph_mask.slice(masks()).to_owned(),
        spacing_mm: roi.spacing_mm,
    };
    let image_type = image.filter.image_type();
    let values = features::compute_all(&filtered_roi, &settings.for_filtered(image)).map_err(
        |e| match e {
            // Name the feature as it is output, with its image type.
            FeatureError::Undefined { feature, reason } => FeatureError::Undefined {
                feature: features::filtered_name(&image_type, &feature),
                reason,
            },
            other => other,
        },
    )?;
    Ok(values
        .into_iter()
        .map(|f| Feature::new(features::filtered_name(&image_type, &f.name), f.value))
        .collect())
}
