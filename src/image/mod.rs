//! Voxel grids, CT volumes and lesion masks in patient space.
//!
//! # Conventions (used everywhere in radscore)
//!
//! * **Array axis order is `[z, y, x]`** = `[slice, row, column]`. Every `Array3` and every
//!   `[_; 3]` that describes array axes (`shape_vox`, `spacing_mm`, `index_zyx`) uses it.
//! * **World coordinates are DICOM patient coordinates (LPS), in millimetres, ordered
//!   `(x, y, z)`**, as in ImagePositionPatient (DICOM PS3.3 C.7.6.2.1.1).
//! * `Grid::direction[a]` is the LPS unit vector along array axis `a` (`a` in `[z, y, x]`
//!   order), so a voxel centre at index `(k, j, i)` lies at
//!   `origin_mm + k·sz·direction[0] + j·sy·direction[1] + i·sx·direction[2]`.
//! * Intensities are Hounsfield units after the DICOM Modality LUT. A series keeps its
//!   16-bit samples ([`Intensities`]); features read `f32` crops of one lesion each.

pub mod discretise;
pub mod filters;
pub mod grid;
pub mod intensities;
pub mod labelmap;
pub mod nrrd;
pub mod resample;
pub mod voxels;

pub use grid::{GEOMETRY_TOLERANCE_FRACTION, Grid, GridMismatch};
pub use intensities::{Intensities, Rescale16};

use ndarray::Array3;

/// A CT volume in Hounsfield units on its grid.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Geometry of the voxel grid.
    pub grid: Grid,
    /// Intensities in HU, indexed `[z, y, x]`; shape equals `grid.shape_vox`.
    pub hu: Intensities,
}

/// One lesion of a segmentation, stored cropped to its bounding box on the series grid.
///
/// Cropping keeps memory proportional to the lesion, not to the series, and allows
/// overlapping segments (DICOM SEG permits them) without a shared label array.
#[derive(Debug, Clone)]
pub struct LesionMask {
    /// Label value (label map) or Segment Number (DICOM SEG).
    pub label: u32,
    /// Human-readable name (SEG Segment Label), when the format has one.
    pub name: Option<String>,
    /// Index `[z, y, x]` of the crop's first voxel on the series grid.
    pub offset_zyx: [usize; 3],
    /// Membership, indexed `[z, y, x]` relative to `offset_zyx`.
    pub mask: Array3<bool>,
}

impl LesionMask {
    /// Number of voxels inside the lesion.
    pub fn voxel_count(&self) -> usize {
        self.mask.iter().filter(|&&m| m).count()
    }

    /// Inclusive bounding box `[min_zyx, max_zyx]` on the series grid.
    pub fn bbox_zyx(&self) -> [[usize; 3]; 2] {
        let s = self.mask.dim();
        let o = self.offset_zyx;
        [
            o,
            [
                o[0] + s.0.max(1) - 1,
                o[1] + s.1.max(1) - 1,
                o[2] + s.2.max(1) - 1,
            ],
        ]
    }
}

/// A segmentation mapped onto a series grid: the lesions it contains.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// The grid of the series the masks are mapped onto.
    pub grid: Grid,
    /// Lesions in ascending label order.
    pub lesions: Vec<LesionMask>,
    /// Quality warnings about single lesions, `(label, message)` (e.g. an RTSTRUCT ROI
    /// cut at the edge of the image). Never PHI.
    pub warnings: Vec<(u32, String)>,
}
