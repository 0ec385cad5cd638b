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
//!
//! # Masks drawn on the acquired slices
//! A DICOM SEG or RTSTRUCT of a resampled series outlines the acquired slices, not the
//! grid. [`AcquiredStack`] keeps those slices (one single-slice [`Grid`] each) so the
//! readers place frames and contours on the slice they lie on; the resulting mask is then
//! resampled with the image's own transform (the same bracketing slices, weights and
//! bilinear taps, the mask read as 0 / 1) and thresholded at
//! [`MASK_PARTIAL_VOLUME_THRESHOLD`] (IBSI 1 §2.4: interpolate the mask, then keep voxels
//! whose fraction is at least 0.5).

use crate::image::grid::{cross, dot};
use crate::image::labelmap::lesion_from_voxels;
use crate::image::{GEOMETRY_TOLERANCE_FRACTION as TOL, Grid, LesionMask};

use super::DicomError;
use super::frames::{IMAGE_ORIENTATION, SLICE_THICKNESS, Slice};

/// Value of resampled voxels outside every acquired slice: air, the usual CT padding
/// value (PS3.3 C.7.5.1.1.2 Pixel Padding Value is commonly −1024 HU after rescale).
pub const RESAMPLE_FILL_HU: f32 = -1024.0;

/// Fraction at and above which a resampled mask voxel belongs to the ROI (IBSI 1 §2.4,
/// partial volume of an interpolated mask).
pub const MASK_PARTIAL_VOLUME_THRESHOLD: f64 = 0.5;

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
pub(crate) struct ResamplePlan {
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
    /// The acquired slices, when they are resampled (masks drawn on them follow).
    pub acquired: Option<AcquiredStack>,
}

/// The acquired slices of a resampled series and the transform that resamples them: a
/// DICOM SEG or RTSTRUCT is placed on these slices and its mask resampled onto the series
/// grid as the image was (see the module documentation).
#[derive(Debug, Clone)]
pub struct AcquiredStack {
    /// One single-slice grid per acquired slice, in stack order; its slice spacing is the
    /// smaller gap to a neighbour (the tolerance of "on this slice").
    slices: Vec<Grid>,
    /// Position of each slice along the normal (LPS origin · normal), mm, ascending.
    along_mm: Vec<f64>,
    plan: ResamplePlan,
    /// The resampled series grid.
    grid: Grid,
}

/// Where a DICOM SEG or RTSTRUCT is placed: on the series grid itself, or on the acquired
/// slices of a resampled series and then resampled onto its grid.
#[derive(Debug, Clone, Copy)]
pub enum MaskTarget<'a> {
    Grid(&'a Grid),
    Acquired(&'a AcquiredStack),
}

impl<'a> MaskTarget<'a> {
    /// `Acquired` when `acquired` is given, else the series grid.
    pub fn new(grid: &'a Grid, acquired: Option<&'a AcquiredStack>) -> Self {
        acquired.map_or(MaskTarget::Grid(grid), MaskTarget::Acquired)
    }

    /// The series grid the lesions end up on.
    pub fn grid(&self) -> &'a Grid {
        match self {
            MaskTarget::Grid(g) => g,
            MaskTarget::Acquired(stack) => &stack.grid,
        }
    }
}

impl AcquiredStack {
    fn new(slices: &[Slice], positions: &[f64], plan: ResamplePlan, grid: Grid) -> Self {
        let gap = |k: usize| -> f64 {
            let before = k.checked_sub(1).map(|j| positions[k] - positions[j]);
            let after = positions.get(k + 1).map(|p| p - positions[k]);
            before
                .into_iter()
                .chain(after)
                .fold(f64::INFINITY, f64::min)
        };
        let grids = slices
            .iter()
            .enumerate()
            .map(|(k, s)| Grid {
                shape_vox: [1, s.rows as usize, s.columns as usize],
                spacing_mm: [gap(k), s.pixel_spacing[0], s.pixel_spacing[1]],
                origin_mm: s.ipp,
                direction: grid.direction,
            })
            .collect();
        Self {
            slices: grids,
            along_mm: positions.to_vec(),
            plan,
            grid,
        }
    }

    /// Number of acquired slices.
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    /// Whether there are no slices (never, for a stack that was resampled).
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Acquired slice `k` (stack order) as a one-slice grid (rows and columns as acquired).
    pub fn slice_grid(&self, k: usize) -> &Grid {
        &self.slices[k]
    }

    /// The resampled series grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The acquired slice whose plane holds `point_mm` (LPS), within
    /// [`GEOMETRY_TOLERANCE_FRACTION`](crate::image::GEOMETRY_TOLERANCE_FRACTION) of its
    /// gap to a neighbour; else why not, for a message.
    pub fn slice_at(&self, point_mm: [f64; 3]) -> Result<usize, String> {
        let along = dot(point_mm, self.grid.direction[0]);
        let (first, last) = (self.along_mm[0], self.along_mm[self.along_mm.len() - 1]);
        let nearest = (0..self.along_mm.len())
            .min_by(|&a, &b| {
                let d = |k: usize| (self.along_mm[k] - along).abs();
                d(a).total_cmp(&d(b))
            })
            .unwrap_or(0);
        let tolerance_mm = TOL * self.slices[nearest].spacing_mm[0];
        let off_mm = along - self.along_mm[nearest];
        if off_mm.abs() <= tolerance_mm {
            return Ok(nearest);
        }
        if along < first || along > last {
            return Err(format!(
                "lies at {along:.3} mm along the slice normal, off the acquired slices \
                 ({first:.3} mm to {last:.3} mm)"
            ));
        }
        Err(format!(
            "lies at {along:.3} mm along the slice normal, between acquired slices (nearest \
             {:.3} mm; tolerance {tolerance_mm:.3} mm)",
            self.along_mm[nearest]
        ))
    }

    /// Resample `lesion` (indices `[acquired slice, row, column]`) onto the series grid as
    /// the image was resampled, and keep the voxels whose fraction reaches
    /// [`MASK_PARTIAL_VOLUME_THRESHOLD`]; `None` when none does. Only target voxels whose
    /// interpolation taps can reach the lesion are visited.
    pub fn resample_mask(&self, lesion: &LesionMask) -> Option<LesionMask> {
        let lo = lesion.offset_zyx;
        let (dz_box, dy_box, dx_box) = lesion.mask.dim();
        let hi = [lo[0] + dz_box, lo[1] + dy_box, lo[2] + dx_box];
        let inside = |s: usize, r: usize, c: usize| -> f64 {
            let local = [
                s.wrapping_sub(lo[0]),
                r.wrapping_sub(lo[1]),
                c.wrapping_sub(lo[2]),
            ];
            let hit = lesion.mask.get(local).copied().unwrap_or(false);
            if hit { 1.0 } else { 0.0 }
        };
        let plan = &self.plan;
        let [nz, ny, nx] = self.grid.shape_vox;
        let [dz, sy, sx] = self.grid.spacing_mm;
        let mut voxels = Vec::new();
        for k in 0..nz {
            let (a, b, t) = plan.bracket(k as f64 * dz, dz);
            let taps: &[usize] = if t == 0.0 {
                &[a]
            } else if t == 1.0 {
                &[b]
            } else {
                &[a, b]
            };
            if taps.iter().all(|&s| s < lo[0] || s >= hi[0]) {
                continue;
            }
            // Target index i samples slice s at row i − offset / spacing; a foreground row r
            // reaches rows r − 1 < y < r + 1.
            let reach = |axis: usize, spacing: f64, n: usize| {
                let (mut from, mut to) = (f64::INFINITY, f64::NEG_INFINITY);
                for &s in taps {
                    let shift = plan.offsets_mm[s][axis - 1] / spacing;
                    from = from.min(lo[axis] as f64 - 1.0 + shift);
                    to = to.max(hi[axis] as f64 + shift);
                }
                let from = from.floor().max(0.0) as usize;
                let to = (to.ceil().max(0.0) as usize).min(n);
                from..to.max(from)
            };
            for i in reach(1, sy, ny) {
                for j in reach(2, sx, nx) {
                    let fraction =
                        plan.interpolate(a, b, t, i as f64 * sy, j as f64 * sx, sy, sx, &inside);
                    if fraction.is_some_and(|f| f >= MASK_PARTIAL_VOLUME_THRESHOLD) {
                        voxels.push([k, i, j]);
                    }
                }
            }
        }
        lesion_from_voxels(lesion.label, lesion.name.clone(), &voxels)
    }
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
            acquired: None,
        });
    };
    let (grid, plan) = resample_grid(&slices, &positions, spacing_mm, normal, row, col);
    let measured = (positions[positions.len() - 1] - positions[0]) / (positions.len() - 1) as f64;
    let acquired = AcquiredStack::new(&slices, &positions, plan.clone(), grid.clone());
    Ok(StackGeometry {
        slices,
        grid,
        spacing_mm: measured,
        status: GeometryStatus::Resampled {
            reason: format!("resampled onto a regular orthogonal grid: {reason}"),
        },
        resample: Some(plan),
        acquired: Some(acquired),
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

impl ResamplePlan {
    /// The acquired slices `a ≤ q ≤ b` around the target plane at `q_mm` from the first
    /// slice, and the weight `t` of `b` (snapped: 0 or 1 when a slice lies on the plane).
    fn bracket(&self, q_mm: f64, dz_mm: f64) -> (usize, usize, f64) {
        let last = self.positions_mm.len() - 1;
        let a = self
            .positions_mm
            .partition_point(|&p| p <= q_mm + TOL * dz_mm)
            .saturating_sub(1);
        let b = (a + 1).min(last);
        let t = if b == a {
            0.0
        } else {
            snap((q_mm - self.positions_mm[a]) / (self.positions_mm[b] - self.positions_mm[a]))
                .clamp(0.0, 1.0)
        };
        (a, b, t)
    }

    /// The trilinear value at the target position `(y_mm, x_mm)` (from the grid origin, in
    /// plane) between slices `a` and `b` with weight `t` (see [`Self::bracket`]);
    /// `value(slice, row, column)` reads an acquired pixel. `None` where a slice that
    /// contributes does not reach.
    #[allow(clippy::too_many_arguments)]
    fn interpolate(
        &self,
        a: usize,
        b: usize,
        t: f64,
        y_mm: f64,
        x_mm: f64,
        sy: f64,
        sx: f64,
        value: &impl Fn(usize, usize, usize) -> f64,
    ) -> Option<f64> {
        let sample = |s: usize| -> Option<f64> {
            let y = (y_mm - self.offsets_mm[s][0]) / sy;
            let x = (x_mm - self.offsets_mm[s][1]) / sx;
            bilinear(|r, c| value(s, r, c), self.rows, self.columns, y, x)
        };
        if t == 0.0 {
            sample(a)
        } else if t == 1.0 {
            sample(b)
        } else {
            match (sample(a), sample(b)) {
                (Some(va), Some(vb)) => Some((1.0 - t) * va + t * vb),
                _ => None,
            }
        }
    }
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
    let columns = plan.columns;
    let hu = |s: usize, r: usize, c: usize| f64::from(slices[s][r * columns + c]);
    let mut out = ndarray::Array3::from_elem((nz, ny, nx), RESAMPLE_FILL_HU);
    for k in 0..nz {
        let (a, b, t) = plan.bracket(k as f64 * dz, dz);
        for i in 0..ny {
            for j in 0..nx {
                let (y_mm, x_mm) = (i as f64 * sy, j as f64 * sx);
                if let Some(v) = plan.interpolate(a, b, t, y_mm, x_mm, sy, sx, &hu) {
                    out[[k, i, j]] = v as f32;
                }
            }
        }
    }
    out
}

/// Bilinear sample of a `rows × columns` plane, read by `at(row, column)`, at continuous
/// `(y, x)`; `None` outside the outermost pixel centres (beyond the tolerance).
fn bilinear(
    at: impl Fn(usize, usize) -> f64,
    rows: usize,
    columns: usize,
    y: f64,
    x: f64,
) -> Option<f64> {
    let inside = |v: f64, n: usize| v >= -TOL && v <= (n - 1) as f64 + TOL;
    if !inside(y, rows) || !inside(x, columns) {
        return None;
    }
    let y = snap(y).clamp(0.0, (rows - 1) as f64);
    let x = snap(x).clamp(0.0, (columns - 1) as f64);
    let (y0, x0) = (y.floor() as usize, x.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(rows - 1), (x0 + 1).min(columns - 1));
    let (fy, fx) = (y - y0 as f64, x - x0 as f64);
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
