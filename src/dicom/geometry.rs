//! Stack geometry of a CT series: slice order, spacing and shear (gantry tilt), and the
//! resampling of an irregular stack onto a regular orthogonal grid when configured.
//!
//! * Slices are ordered by ImagePositionPatient projected on the slice normal (PS3.3
//!   C.7.6.2.1.1; InstanceNumber and file names are not slice order).
//! * A **regular** stack has every gap along the normal within
//!   [`GEOMETRY_TOLERANCE_FRACTION`](crate::image::GEOMETRY_TOLERANCE_FRACTION) of the
//!   median gap, and every slice origin on the line through the first origin along the
//!   normal (no in-plane drift).
//! * A gap that is a whole multiple of the median gap is a **missing slice**, refused in
//!   every mode (422 naming the gap position).
//! * **Non-uniform spacing** (other irregular gaps) and **shear** (slice origins drifting
//!   in-plane: the gantry tilt of a tilted acquisition, PS3.3 C.8.2.1 GantryDetectorTilt,
//!   written as ImagePositionPatient moving along the table while the slice planes are
//!   tilted) are refused by [`GeometryPolicy::Refuse`] (the default) with the positions /
//!   gap or the tilt angle, or resampled by [`GeometryPolicy::Resample`].
//!
//! # Resampling
//! The target grid keeps the slice orientation (axes: slice normal, column direction, row
//! direction: orthogonal), the in-plane pixel spacing, and takes the median gap as slice
//! spacing; it spans the first to the last slice along the normal and, in-plane, the union
//! of all slices (a tilted stack drifts sideways). Each target voxel centre is projected
//! along the normal onto the two acquired slices around it, each sampled bilinearly, and the
//! two values are interpolated linearly along the normal: trilinear interpolation that
//! reproduces any intensity varying linearly in space exactly. Target voxels outside every
//! acquired slice take [`RESAMPLE_FILL_HU`].

use crate::image::grid::{cross, dot};
use crate::image::{GEOMETRY_TOLERANCE_FRACTION as TOL, Grid};

use super::DicomError;
use super::frames::{IMAGE_ORIENTATION, SLICE_THICKNESS, Slice};

/// Value of resampled voxels outside every acquired slice: air, the usual CT padding
/// value (PS3.3 C.7.5.1.1.2 Pixel Padding Value is commonly −1024 HU after rescale).
pub const RESAMPLE_FILL_HU: f32 = -1024.0;

/// Interpolation weights within this fraction of a voxel of 0 or 1 are snapped: DS
/// positions carry about 6 significant digits, so an acquired pixel that lies on a target
/// voxel centre is copied, not blended with a 1e-4 share of its neighbour.
const SNAP_FRACTION: f64 = 1e-3;

/// `v` snapped to the nearest whole number when within [`SNAP_FRACTION`] of it.
fn snap(v: f64) -> f64 {
    let r = v.round();
    if (v - r).abs() < SNAP_FRACTION { r } else { v }
}

/// What to do with a stack that is not a regular lattice (`RADSCORE_GEOMETRY`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GeometryPolicy {
    /// Refuse non-uniform spacing and sheared / tilted stacks with a 422 naming the fault.
    #[default]
    Refuse,
    /// Resample such a stack onto a regular orthogonal grid and report it.
    Resample,
}

/// How the series grid relates to the acquired slices, reported with the series.
#[derive(Debug, Clone, PartialEq)]
pub enum GeometryStatus {
    /// The acquired slices form the grid as they are.
    Regular,
    /// The acquired slices were resampled onto the grid; `reason` names the fault.
    Resampled { reason: String },
}

impl GeometryStatus {
    /// The `geometry` member of the series document.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            GeometryStatus::Regular => serde_json::json!({ "status": "regular" }),
            GeometryStatus::Resampled { reason } => {
                serde_json::json!({ "status": "resampled", "reason": reason })
            }
        }
    }

    /// The policy that rebuilds the same grid from the stored instances.
    pub fn policy(&self) -> GeometryPolicy {
        match self {
            GeometryStatus::Regular => GeometryPolicy::Refuse,
            GeometryStatus::Resampled { .. } => GeometryPolicy::Resample,
        }
    }
}

/// Where each acquired slice lies relative to the resampled grid.
#[derive(Debug, Clone)]
pub(super) struct ResamplePlan {
    /// Position of each slice along the normal, relative to the first slice, mm (ascending).
    positions_mm: Vec<f64>,
    /// Offset of each slice's first pixel from the grid origin, in-plane: `[along the
    /// column direction (rows), along the row direction (columns)]`, mm.
    offsets_mm: Vec<[f64; 2]>,
    rows: usize,
    columns: usize,
}

/// Slices in order along the normal, with the grid they span (or are resampled onto).
pub(super) struct StackGeometry {
    pub slices: Vec<Slice>,
    pub grid: Grid,
    /// Mean distance between adjacent slice centres along the normal, mm.
    pub spacing_mm: f64,
    pub status: GeometryStatus,
    /// `Some` when the slices must be resampled onto `grid`.
    pub resample: Option<ResamplePlan>,
}

/// Order the slices along the normal and check (or, by `policy`, resample) the lattice.
pub(super) fn stack_geometry(
    mut slices: Vec<Slice>,
    policy: GeometryPolicy,
) -> Result<StackGeometry, DicomError> {
    let first = &slices[0];
    let (row, col) = super::orientation(&first.iop, &first.file, IMAGE_ORIENTATION)?;
    let normal = super::normalize(cross(row, col));
    slices.sort_by(|a, b| dot(a.ipp, normal).total_cmp(&dot(b.ipp, normal)));
    let positions: Vec<f64> = slices.iter().map(|s| dot(s.ipp, normal)).collect();

    let spacing = slice_spacing(&slices, &positions);
    let shear = check_unsheared(&slices, &positions, normal, row, col);
    let (spacing_mm, reason) = match (spacing, shear, policy) {
        (Ok(spacing_mm), Ok(()), _) => (spacing_mm, None),
        // Missing slices, duplicate positions and a one-slice stack without a thickness
        // are refused in every mode: resampling would invent data or has none.
        (Err(e), _, _) if !matches!(e, DicomError::NonUniformSpacing { .. }) => return Err(e),
        (Err(e), _, GeometryPolicy::Refuse) | (Ok(_), Err(e), GeometryPolicy::Refuse) => {
            return Err(e);
        }
        (spacing, shear, GeometryPolicy::Resample) => {
            let mut reasons = Vec::new();
            if let Err(e) = &spacing {
                reasons.push(e.to_string());
            }
            if let Err(e) = &shear {
                reasons.push(e.to_string());
            }
            let gap_mm = match spacing {
                Ok(mean) => mean,
                Err(_) => median_gap(&positions),
            };
            (gap_mm, Some(reasons.join("; ")))
        }
    };

    let first = &slices[0];
    let Some(reason) = reason else {
        let grid = Grid {
            shape_vox: [slices.len(), first.rows as usize, first.columns as usize],
            spacing_mm: [spacing_mm, first.pixel_spacing[0], first.pixel_spacing[1]],
            origin_mm: first.ipp,
            direction: [normal, col, row],
        };
        return Ok(StackGeometry {
            slices,
            grid,
            spacing_mm,
            status: GeometryStatus::Regular,
            resample: None,
        });
    };
    let (grid, plan) = resample_grid(&slices, &positions, spacing_mm, normal, row, col);
    let measured = (positions[positions.len() - 1] - positions[0]) / (positions.len() - 1) as f64;
    Ok(StackGeometry {
        slices,
        grid,
        spacing_mm: measured,
        status: GeometryStatus::Resampled {
            reason: format!("resampled onto a regular orthogonal grid: {reason}"),
        },
        resample: Some(plan),
    })
}

/// The median gap between adjacent positions (at least two positions).
fn median_gap(positions: &[f64]) -> f64 {
    let mut gaps: Vec<f64> = positions.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    gaps[gaps.len() / 2]
}

/// The regular grid covering every slice, and where each slice lies on it.
fn resample_grid(
    slices: &[Slice],
    positions: &[f64],
    gap_mm: f64,
    normal: [f64; 3],
    row: [f64; 3],
    col: [f64; 3],
) -> (Grid, ResamplePlan) {
    let first = &slices[0];
    let [row_spacing, col_spacing] = first.pixel_spacing;
    // In-plane drift of each slice origin from the first one's line along the normal.
    let drift: Vec<[f64; 2]> = slices
        .iter()
        .zip(positions)
        .map(|(s, &p)| {
            let along = p - positions[0];
            let d = [0, 1, 2].map(|c| s.ipp[c] - first.ipp[c] - along * normal[c]);
            [dot(d, col), dot(d, row)]
        })
        .collect();
    let min = |a: usize| drift.iter().map(|d| d[a]).fold(0.0, f64::min);
    let max = |a: usize| drift.iter().map(|d| d[a]).fold(0.0, f64::max);
    let extra = |a: usize, spacing: f64| ((max(a) - min(a)) / spacing - TOL).ceil().max(0.0);
    let rows = first.rows as usize + extra(0, row_spacing) as usize;
    let columns = first.columns as usize + extra(1, col_spacing) as usize;
    let span = positions[positions.len() - 1] - positions[0];
    let nz = (span / gap_mm + TOL).floor() as usize + 1;
    let origin_mm = [0, 1, 2].map(|c| first.ipp[c] + min(0) * col[c] + min(1) * row[c]);
    let grid = Grid {
        shape_vox: [nz, rows, columns],
        spacing_mm: [gap_mm, row_spacing, col_spacing],
        origin_mm,
        direction: [normal, col, row],
    };
    let plan = ResamplePlan {
        positions_mm: positions.iter().map(|p| p - positions[0]).collect(),
        offsets_mm: drift
            .iter()
            .map(|d| [d[0] - min(0), d[1] - min(1)])
            .collect(),
        rows: first.rows as usize,
        columns: first.columns as usize,
    };
    (grid, plan)
}

/// Resample the acquired slices (each `rows × columns` HU, row-major, in stack order) onto
/// `grid` by `plan` (see the module documentation).
pub(super) fn resample_stack(
    plan: &ResamplePlan,
    slices: &[Vec<f32>],
    grid: &Grid,
) -> ndarray::Array3<f32> {
    let [nz, ny, nx] = grid.shape_vox;
    let [dz, sy, sx] = grid.spacing_mm;
    let last = plan.positions_mm.len() - 1;
    let sample = |s: usize, y_mm: f64, x_mm: f64| -> Option<f64> {
        let y = (y_mm - plan.offsets_mm[s][0]) / sy;
        let x = (x_mm - plan.offsets_mm[s][1]) / sx;
        bilinear(&slices[s], plan.rows, plan.columns, y, x)
    };
    let mut out = ndarray::Array3::from_elem((nz, ny, nx), RESAMPLE_FILL_HU);
    for k in 0..nz {
        let q = k as f64 * dz;
        // The acquired slices a ≤ q ≤ b around the target plane.
        let a = plan
            .positions_mm
            .partition_point(|&p| p <= q + TOL * dz)
            .saturating_sub(1);
        let b = (a + 1).min(last);
        let t = if b == a {
            0.0
        } else {
            snap((q - plan.positions_mm[a]) / (plan.positions_mm[b] - plan.positions_mm[a]))
                .clamp(0.0, 1.0)
        };
        for i in 0..ny {
            for j in 0..nx {
                let (y_mm, x_mm) = (i as f64 * sy, j as f64 * sx);
                let value = if t == 0.0 {
                    sample(a, y_mm, x_mm)
                } else if t == 1.0 {
                    sample(b, y_mm, x_mm)
                } else {
                    match (sample(a, y_mm, x_mm), sample(b, y_mm, x_mm)) {
                        (Some(va), Some(vb)) => Some((1.0 - t) * va + t * vb),
                        _ => None,
                    }
                };
                if let Some(v) = value {
                    out[[k, i, j]] = v as f32;
                }
            }
        }
    }
    out
}

/// Bilinear sample of a row-major `rows × columns` plane at continuous `(y, x)`; `None`
/// outside the outermost pixel centres (beyond the tolerance).
fn bilinear(plane: &[f32], rows: usize, columns: usize, y: f64, x: f64) -> Option<f64> {
    let inside = |v: f64, n: usize| v >= -TOL && v <= (n - 1) as f64 + TOL;
    if !inside(y, rows) || !inside(x, columns) {
        return None;
    }
    let y = snap(y).clamp(0.0, (rows - 1) as f64);
    let x = snap(x).clamp(0.0, (columns - 1) as f64);
    let (y0, x0) = (y.floor() as usize, x.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(rows - 1), (x0 + 1).min(columns - 1));
    let (fy, fx) = (y - y0 as f64, x - x0 as f64);
    let at = |r: usize, c: usize| f64::from(plane[r * columns + c]);
    let top = (1.0 - fx) * at(y0, x0) + fx * at(y0, x1);
    let bottom = (1.0 - fx) * at(y1, x0) + fx * at(y1, x1);
    Some((1.0 - fy) * top + fy * bottom)
}

/// The mean slice spacing, after checking every gap against the median gap.
fn slice_spacing(slices: &[Slice], positions: &[f64]) -> Result<f64, DicomError> {
    if positions.len() == 1 {
        return single_slice_spacing(&slices[0]);
    }
    let mut gaps: Vec<f64> = positions.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, &gap) in gaps.iter().enumerate() {
        if gap <= f64::EPSILON.max(1e-6) {
            return Err(DicomError::DuplicatePosition {
                file: slices[i + 1].file.clone(),
                other_file: slices[i].file.clone(),
                position_mm: positions[i],
            });
        }
    }
    let expected = median_gap(positions);
    let tolerance = TOL * expected;

    for (i, gap) in gaps.drain(..).enumerate() {
        if (gap - expected).abs() <= tolerance {
            continue;
        }
        let (from_mm, to_mm) = (positions[i], positions[i + 1]);
        let multiple = (gap / expected).round();
        if multiple >= 2.0 && (gap - multiple * expected).abs() <= tolerance {
            let missing = multiple as usize - 1;
            return Err(DicomError::MissingSlice {
                from_mm,
                to_mm,
                gap_mm: gap,
                expected_mm: expected,
                missing,
            });
        }
        return Err(DicomError::NonUniformSpacing {
            from_mm,
            to_mm,
            gap_mm: gap,
            expected_mm: expected,
            tolerance_mm: tolerance,
        });
    }

    // Small per-gap deviations must not add up to a drift of more than the tolerance.
    let n = positions.len();
    let mean = (positions[n - 1] - positions[0]) / (n - 1) as f64;
    for (k, &p) in positions.iter().enumerate() {
        if (p - (positions[0] + k as f64 * mean)).abs() > TOL * mean {
            let (from_mm, to_mm) = (positions[k.saturating_sub(1)], p);
            return Err(DicomError::NonUniformSpacing {
                from_mm,
                to_mm,
                gap_mm: to_mm - from_mm,
                expected_mm: mean,
                tolerance_mm: TOL * mean,
            });
        }
    }
    Ok(mean)
}

/// Spacing of a one-slice "stack": SpacingBetweenSlices, else SliceThickness.
fn single_slice_spacing(slice: &Slice) -> Result<f64, DicomError> {
    slice.thickness_mm.ok_or_else(|| DicomError::MissingTag {
        file: slice.file.clone(),
        tag: SLICE_THICKNESS.1,
    })
}

/// Every slice origin lies on the line through the first origin along the normal; the
/// first that does not is named with the tilt angle of the stack axis.
fn check_unsheared(
    slices: &[Slice],
    positions: &[f64],
    normal: [f64; 3],
    row: [f64; 3],
    col: [f64; 3],
) -> Result<(), DicomError> {
    let origin = slices[0].ipp;
    let [row_spacing, col_spacing] = slices[0].pixel_spacing;
    for (s, &p) in slices.iter().zip(positions) {
        let along = p - positions[0];
        let d = [0, 1, 2].map(|c| s.ipp[c] - origin[c] - along * normal[c]);
        // Offset along the row direction is measured in columns, and vice versa.
        let (dx, dy) = (dot(d, row), dot(d, col));
        let tolerance = TOL * col_spacing.min(row_spacing);
        if dx.abs() > TOL * col_spacing || dy.abs() > TOL * row_spacing {
            let offset_mm = (dx * dx + dy * dy).sqrt();
            // The angle between the stack axis (first origin to this one) and the normal.
            let angle_deg = offset_mm.atan2(along.abs()).to_degrees();
            return Err(DicomError::ShearedStack {
                file: s.file.clone(),
                offset_mm,
                along_mm: along,
                angle_deg,
                tolerance_mm: tolerance,
            });
        }
    }
    Ok(())
}
