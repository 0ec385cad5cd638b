//! Writing the demo label map as NIfTI-1 on the series grid.

use std::path::Path;

use ndarray::Array3;
use nifti::NiftiHeader;
use nifti::writer::WriterOptions;

use super::DemoError;
use crate::image::Grid;

/// NIfTI-1 `xform` code "scanner-based anatomical coordinates" (nifti1.h,
/// NIFTI_XFORM_SCANNER_ANAT).
const XFORM_SCANNER_ANAT: i16 = 1;
/// NIfTI-1 `xyzt_units` for millimetres (nifti1.h, NIFTI_UNITS_MM).
const UNITS_MM: u8 = 2;

/// Write `labels` (indexed `[z, y, x]` on `grid`) to `path` (`.nii.gz` ⇒ gzip).
///
/// NIfTI voxel `(i, j, k)` is array index `[k, j, i]`, and NIfTI world space is RAS: the
/// affine is the grid's LPS affine with its x and y rows negated (nifti1.h, "method 3").
/// The qform says the same for readers that ignore the sform.
pub(super) fn write_labelmap(
    path: &Path,
    grid: &Grid,
    labels: &Array3<u8>,
) -> Result<(), DemoError> {
    let header = header_for(grid).map_err(|reason| DemoError::Nifti {
        path: path.to_path_buf(),
        reason,
    })?;
    // The writer takes the array in (i, j, k) axis order and stores it i-fastest.
    let ijk = labels.view().reversed_axes();
    WriterOptions::new(path)
        .reference_header(&header)
        .write_nifti(&ijk)
        .map_err(|e| DemoError::Nifti {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn header_for(grid: &Grid) -> Result<NiftiHeader, String> {
    let [sz, sy, sx] = grid.spacing_mm;
    let o = grid.origin_mm;
    // LPS affine columns: direction of axis i (x), j (y), k (z) times spacing.
    let column = |a: usize, s: f64| grid.direction[a].map(|c| c * s);
    let (ci, cj, ck) = (column(2, sx), column(1, sy), column(0, sz));
    let row = |r: usize, sign: f64| {
        [ci[r] * sign, cj[r] * sign, ck[r] * sign, o[r] * sign].map(|v| v as f32)
    };

    let mut header = NiftiHeader {
        pixdim: [1.0, sx as f32, sy as f32, sz as f32, 0.0, 0.0, 0.0, 0.0],
        xyzt_units: UNITS_MM,
        sform_code: XFORM_SCANNER_ANAT,
        srow_x: row(0, -1.0),
        srow_y: row(1, -1.0),
        srow_z: row(2, 1.0),
        qform_code: XFORM_SCANNER_ANAT,
        // LIMITATION: this qform is right for axis-aligned grids only (demo_grid's kind).
        // LPS → RAS for an axis-aligned LPS grid is a 180° turn about z: quaternion
        // (a, b, c, d) = (0, 0, 0, 1), qfac = pixdim[0] = 1.
        quatern_b: 0.0,
        quatern_c: 0.0,
        quatern_d: 1.0,
        quatern_x: -o[0] as f32,
        quatern_y: -o[1] as f32,
        quatern_z: o[2] as f32,
        ..NiftiHeader::default()
    };
    header
        .set_description(b"radscore synthetic demo lesion labels".to_vec())
        .map_err(|e| e.to_string())?;
    Ok(header)
}
