//! DICOM RT Structure Set (PS3.3 A.19, C.8.8.5–C.8.8.6) → lesion masks on a series grid.
//!
//! Each ROI of StructureSetROISequence becomes one lesion (`label` = ROINumber, `name` =
//! ROIName). Its CLOSED_PLANAR contours (ContourData: LPS points in mm) are rasterised
//! onto the series grid:
//!
//! * **Matched to slices by position**: every point is converted to a continuous series
//!   index; the contour must be planar and parallel to the slices, within
//!   [`GEOMETRY_TOLERANCE_FRACTION`] of a voxel, and its plane must lie on a slice centre.
//!   ContourImageSequence (the referenced SOP Instance) is not used, because files edited
//!   or resampled after planning often reference stale instances.
//! * **Point in polygon at voxel centres, even-odd rule**: a voxel of a slice is inside
//!   when a ray from its centre crosses the contours of that ROI on that slice an odd number
//!   of times. Holes (a contour inside another) and several islands per slice therefore
//!   need no orientation or nesting information (CLOSEDPLANAR_XOR means the same).
//! * **Contours beyond the image**: an ROI whose contours reach past the in-plane image
//!   extent (by more than half a voxel beyond the outermost voxel centres) is cut at the
//!   edge and keeps a warning naming the contour and how far it reaches, because its
//!   shape and intensity features then describe only the part inside the field of view.
//!   An ROI with no voxel centre inside is refused, saying how far outside it lies.
//!
//! * **Resampled series** ([`MaskTarget::Acquired`]): each contour is matched to the
//!   acquired slice its plane lies on and rasterised in that slice's own pixel lattice (as
//!   above); each ROI's mask is then resampled onto the series grid as the image was and
//!   thresholded at 0.5 (see [`super::geometry`]).
//!
//! Refused with a [`DicomError`] naming the ROI (and contour): an ROI in another frame of
//! reference than the series, a contour that is not planar, not parallel to the slices,
//! between slices or beyond the first/last slice, and an ROI without contours or whose
//! contours enclose no voxel centre. ROIs made only of POINT / OPEN contours (markers,
//! reference lines) have no volume and are not lesions: they are left out, and a structure
//! set with nothing else is refused ([`DicomError::RtNoClosedContours`]).

use std::collections::BTreeMap;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::{Array3, s};

use super::geometry::MaskTarget;
use super::{
    Attr, DicomError, bad, opt_items, opt_str, parse_file, req_f64s_any, req_str, req_u32,
    sanitize_uid,
};
use crate::image::grid::{cross, dot};
use crate::image::{GEOMETRY_TOLERANCE_FRACTION as TOL, Grid, LesionMask, Segmentation};

/// RT Structure Set Storage SOP Class UID (PS3.4 B.5).
pub const RT_STRUCTURE_SET_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.3";

/// Most points one contour may hold. Contours of a whole-body outline on a 512² slice
/// have a few thousand; the bound keeps a hostile file from costing quadratic time.
pub const MAX_CONTOUR_POINTS: usize = 100_000;

const SOP_CLASS_UID: Attr = (tags::SOP_CLASS_UID, "SOPClassUID");
const STRUCTURE_SET_ROIS: Attr = (tags::STRUCTURE_SET_ROI_SEQUENCE, "StructureSetROISequence");
const ROI_NUMBER: Attr = (tags::ROI_NUMBER, "ROINumber");
const ROI_NAME: Attr = (tags::ROI_NAME, "ROIName");
const ROI_FRAME_OF_REFERENCE: Attr = (
    tags::REFERENCED_FRAME_OF_REFERENCE_UID,
    "ReferencedFrameOfReferenceUID",
);
const ROI_CONTOURS: Attr = (tags::ROI_CONTOUR_SEQUENCE, "ROIContourSequence");
const REFERENCED_ROI_NUMBER: Attr = (tags::REFERENCED_ROI_NUMBER, "ReferencedROINumber");
const CONTOURS: Attr = (tags::CONTOUR_SEQUENCE, "ContourSequence");
const GEOMETRIC_TYPE: Attr = (tags::CONTOUR_GEOMETRIC_TYPE, "ContourGeometricType");
const CONTOUR_DATA: Attr = (tags::CONTOUR_DATA, "ContourData");

/// One ROI as declared in StructureSetROISequence.
struct RoiDeclaration {
    name: Option<String>,
    frame_of_reference_uid: Option<String>,
}

/// A closed contour on one slice: vertices `(row, column)` as continuous series indices.
struct SliceContour {
    slice: usize,
    vertices: Vec<[f64; 2]>,
    /// 1-based position in the ROI's ContourSequence, for messages.
    number: usize,
    /// How far the contour reaches beyond the image's in-plane extent, mm (0 inside).
    beyond_mm: f64,
}

/// Decode an RT Structure Set and rasterise its ROIs onto `series`.
///
/// `frame_of_reference_uid` is the series' FrameOfReferenceUID when known; every ROI must
/// reference the same one.
///
/// # Errors
/// A [`DicomError`]: not an RTSTRUCT, an ROI in another frame of reference
/// ([`DicomError::FrameOfReferenceMismatch`]), a contour that cannot be placed on a slice
/// ([`DicomError::RtContour`], naming ROI and 1-based contour), an empty ROI
/// ([`DicomError::EmptyRoi`]).
pub fn read_rtstruct(
    bytes: &[u8],
    file_name: &str,
    series: &Grid,
    frame_of_reference_uid: Option<&str>,
) -> Result<Segmentation, DicomError> {
    read_rtstruct_on(
        bytes,
        file_name,
        MaskTarget::Grid(series),
        frame_of_reference_uid,
    )
}

/// As [`read_rtstruct`], onto `target`: on a resampled series each contour is placed on
/// the acquired slice its plane lies on and rasterised there (in that slice's own pixel
/// lattice), and each ROI's mask is then resampled onto the series grid like the image and
/// thresholded ([`AcquiredStack::resample_mask`](super::AcquiredStack::resample_mask)).
///
/// # Errors
/// As [`read_rtstruct`]; also [`DicomError::ResampledAway`] for an ROI none of whose
/// resampled voxels reaches the partial-volume threshold.
pub fn read_rtstruct_on(
    bytes: &[u8],
    file_name: &str,
    target: MaskTarget<'_>,
    frame_of_reference_uid: Option<&str>,
) -> Result<Segmentation, DicomError> {
    // Rows and columns of the planes the contours are rasterised on.
    let planes = match target {
        MaskTarget::Grid(series) => series,
        MaskTarget::Acquired(stack) => stack.slice_grid(0),
    };
    let obj = parse_file(file_name, bytes)?;
    let file = file_name;
    let sop_class = sanitize_uid(&req_str(&obj, file, SOP_CLASS_UID)?);
    if sop_class != RT_STRUCTURE_SET_STORAGE {
        return Err(DicomError::NotRtStruct {
            file: file.to_owned(),
            sop_class,
        });
    }

    let declared = roi_declarations(&obj, file)?;
    for (&number, roi) in &declared {
        if let (Some(expected), Some(found)) = (frame_of_reference_uid, &roi.frame_of_reference_uid)
            && sanitize_uid(expected) != *found
        {
            return Err(DicomError::FrameOfReferenceMismatch {
                file: file.to_owned(),
                what: format!("ROI {number}"),
                found: found.clone(),
                expected: sanitize_uid(expected),
            });
        }
    }

    let contours = roi_contours(&obj, file, target, &declared)?;
    let mut lesions = Vec::new();
    let mut warnings = Vec::new();
    let mut markers = Vec::new();
    for (number, roi) in declared {
        match contours.get(&number) {
            // Only POINT / OPEN contours: a marker, not a lesion.
            // LIMITATION: skipped without a warning when other ROIs are lesions; warnings are per lesion.
            Some(None) => markers.push(number.to_string()),
            None => return Err(roi_error(file, number, "it has no contours")),
            Some(Some(closed)) => {
                let farthest = closed
                    .iter()
                    .max_by(|a, b| a.beyond_mm.total_cmp(&b.beyond_mm))
                    .filter(|c| c.beyond_mm > 0.0);
                let Some(mut lesion) = rasterise(closed, planes) else {
                    let reason = match farthest {
                        Some(c) => format!(
                            "its contours enclose no voxel centre of the series: they lie \
                             outside the image (contour {} reaches {:.1} mm beyond its edge)",
                            c.number, c.beyond_mm
                        ),
                        None => "its contours enclose no voxel centre of the series".into(),
                    };
                    return Err(roi_error(file, number, reason));
                };
                if let Some(c) = farthest {
                    let outside = closed.iter().filter(|c| c.beyond_mm > 0.0).count();
                    warnings.push((
                        number,
                        format!(
                            "ROI {number}: {outside} contour(s) reach beyond the image (contour \
                             {} by {:.1} mm); the lesion is cut at the edge of the field of \
                             view, so its features describe only the part inside",
                            c.number, c.beyond_mm
                        ),
                    ));
                }
                lesion.label = number;
                lesion.name = roi.name;
                if let MaskTarget::Acquired(stack) = target {
                    lesion =
                        stack
                            .resample_mask(&lesion)
                            .ok_or_else(|| DicomError::ResampledAway {
                                file: file.to_owned(),
                                what: format!("ROI {number}"),
                            })?;
                }
                lesions.push(lesion);
            }
        }
    }
    if lesions.is_empty() {
        return Err(DicomError::RtNoClosedContours {
            file: file.to_owned(),
            rois: markers.join(", "),
        });
    }
    Ok(Segmentation {
        grid: target.grid().clone(),
        lesions,
        warnings,
    })
}

/// ROINumber → name and frame of reference, for every StructureSetROISequence item.
fn roi_declarations(
    obj: &InMemDicomObject,
    file: &str,
) -> Result<BTreeMap<u32, RoiDeclaration>, DicomError> {
    let items = opt_items(obj, file, STRUCTURE_SET_ROIS)?.ok_or(DicomError::MissingTag {
        file: file.to_owned(),
        tag: STRUCTURE_SET_ROIS.1,
    })?;
    let mut rois = BTreeMap::new();
    for item in items {
        let number = req_u32(item, file, ROI_NUMBER, "a positive integer")?;
        let declaration = RoiDeclaration {
            name: opt_str(item, file, ROI_NAME)?,
            frame_of_reference_uid: opt_str(item, file, ROI_FRAME_OF_REFERENCE)?
                .map(|u| sanitize_uid(&u)),
        };
        if number == 0 || rois.insert(number, declaration).is_some() {
            return Err(bad(file, ROI_NUMBER, "distinct positive integers"));
        }
    }
    if rois.is_empty() {
        return Err(bad(file, STRUCTURE_SET_ROIS, "at least one ROI"));
    }
    Ok(rois)
}

/// ROI number → its closed contours placed on slices (`None`: only POINT/OPEN contours).
fn roi_contours(
    obj: &InMemDicomObject,
    file: &str,
    target: MaskTarget<'_>,
    declared: &BTreeMap<u32, RoiDeclaration>,
) -> Result<BTreeMap<u32, Option<Vec<SliceContour>>>, DicomError> {
    let mut out: BTreeMap<u32, Option<Vec<SliceContour>>> = BTreeMap::new();
    for item in opt_items(obj, file, ROI_CONTOURS)?.unwrap_or(&[]) {
        let roi = req_u32(item, file, REFERENCED_ROI_NUMBER, "a declared ROINumber")?;
        if !declared.contains_key(&roi) {
            return Err(bad(
                file,
                REFERENCED_ROI_NUMBER,
                "a ROINumber of StructureSetROISequence",
            ));
        }
        let Some(contours) = opt_items(item, file, CONTOURS)? else {
            continue;
        };
        let (mut closed, mut open) = (Vec::new(), 0usize);
        for (c, contour) in contours.iter().enumerate() {
            let kind = req_str(contour, file, GEOMETRIC_TYPE)?;
            match kind.as_str() {
                "CLOSED_PLANAR" | "CLOSEDPLANAR_XOR" => {
                    closed.push(place_contour(contour, file, target, roi, c + 1)?);
                }
                "POINT" | "OPEN_PLANAR" | "OPEN_NONPLANAR" => open += 1,
                _ => {
                    return Err(bad(
                        file,
                        GEOMETRIC_TYPE,
                        "POINT, OPEN_PLANAR, OPEN_NONPLANAR or CLOSED_PLANAR",
                    ));
                }
            }
        }
        if !closed.is_empty() && open > 0 {
            return Err(roi_error(
                file,
                roi,
                "it mixes closed contours with POINT/OPEN ones, so its volume is ambiguous",
            ));
        }
        if contours.is_empty() {
            continue; // An empty ContourSequence: the ROI has no contours.
        }
        let entry = out.entry(roi).or_insert(None);
        if !closed.is_empty() {
            entry.get_or_insert_with(Vec::new).extend(closed);
        }
    }
    Ok(out)
}

fn roi_error(file: &str, roi: u32, reason: impl Into<String>) -> DicomError {
    DicomError::RtRoi {
        file: file.to_owned(),
        roi,
        reason: reason.into(),
    }
}

fn contour_error(file: &str, roi: u32, contour: usize, reason: String) -> DicomError {
    DicomError::RtContour {
        file: file.to_owned(),
        roi,
        contour,
        reason,
    }
}

/// Convert a closed contour to series indices and find its slice (on a resampled series:
/// the acquired slice, whose one-slice grid then gives the indices).
fn place_contour(
    item: &InMemDicomObject,
    file: &str,
    target: MaskTarget<'_>,
    roi: u32,
    contour: usize,
) -> Result<SliceContour, DicomError> {
    let error = |reason: String| contour_error(file, roi, contour, reason);
    let data = req_f64s_any(item, file, CONTOUR_DATA, "x\\y\\z triplets (mm)")?;
    if data.len() % 3 != 0 || data.len() < 9 {
        return Err(error(format!(
            "ContourData holds {} values; a closed contour needs at least 3 points (x, y, z)",
            data.len()
        )));
    }
    if data.len() / 3 > MAX_CONTOUR_POINTS {
        return Err(error(format!("more than {MAX_CONTOUR_POINTS} points")));
    }
    let (series, first_slice) = match target {
        MaskTarget::Grid(series) => (series, 0),
        MaskTarget::Acquired(stack) => {
            let n = (data.len() / 3) as f64;
            let centroid: [f64; 3] =
                std::array::from_fn(|c| data.chunks_exact(3).map(|p| p[c]).sum::<f64>() / n);
            let k = stack.slice_at(centroid).map_err(error)?;
            (stack.slice_grid(k), k)
        }
    };
    let points: Vec<[f64; 3]> = data
        .chunks_exact(3)
        .map(|p| series.world_to_index([p[0], p[1], p[2]]))
        .collect();
    check_planar(&data, series).map_err(error)?;

    // Every point must sit on one slice plane (within the tolerance, in voxels).
    let mean_k = points.iter().map(|p| p[0]).sum::<f64>() / points.len() as f64;
    let spread = points
        .iter()
        .map(|p| (p[0] - mean_k).abs())
        .fold(0.0, f64::max);
    if spread > TOL {
        return Err(error(format!(
            "its plane is not parallel to the series slices (points {spread:.3} slices apart)"
        )));
    }
    let slice = mean_k.round();
    let position_mm = series.index_to_world([mean_k, 0.0, 0.0]);
    let along_normal_mm = dot(position_mm, series.direction[0]);
    if !(0.0..series.shape_vox[0] as f64).contains(&slice) {
        return Err(error(format!(
            "lies at {along_normal_mm:.3} mm along the slice normal, off the series \
             (slices {} to {})",
            fmt_mm(series, 0.0),
            fmt_mm(series, series.shape_vox[0].saturating_sub(1) as f64),
        )));
    }
    if (mean_k - slice).abs() > TOL {
        return Err(error(format!(
            "lies at {along_normal_mm:.3} mm along the slice normal, between slices \
             (nearest {}; tolerance {:.3} mm)",
            fmt_mm(series, slice),
            TOL * series.spacing_mm[0]
        )));
    }
    Ok(SliceContour {
        slice: slice as usize + first_slice,
        vertices: points.iter().map(|p| [p[1], p[2]]).collect(),
        number: contour,
        beyond_mm: beyond_image_mm(&points, series),
    })
}

/// How far the farthest vertex lies beyond the image's in-plane extent (the outermost
/// voxel centres plus half a voxel, and the tolerance), mm; 0 when all are inside.
fn beyond_image_mm(points: &[[f64; 3]], series: &Grid) -> f64 {
    let [_, rows, columns] = series.shape_vox;
    let beyond = |index: f64, n: usize| {
        let lo = -0.5 - TOL;
        let hi = n as f64 - 0.5 + TOL;
        (lo - index).max(index - hi).max(0.0)
    };
    points
        .iter()
        .map(|p| {
            let dy = beyond(p[1], rows) * series.spacing_mm[1];
            let dx = beyond(p[2], columns) * series.spacing_mm[2];
            dy.max(dx)
        })
        .fold(0.0, f64::max)
}

/// A slice position along the normal, in mm, for messages.
fn fmt_mm(series: &Grid, k: f64) -> String {
    format!(
        "{:.3} mm",
        dot(series.index_to_world([k, 0.0, 0.0]), series.direction[0])
    )
}

/// The points (flat `x, y, z` list, mm) must lie in one plane: within the tolerance (as a
/// fraction of the slice spacing) of the plane through their centroid with Newell's normal.
fn check_planar(data: &[f64], series: &Grid) -> Result<(), String> {
    let points: Vec<[f64; 3]> = data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    let n = points.len() as f64;
    let centroid: [f64; 3] = std::array::from_fn(|c| points.iter().map(|p| p[c]).sum::<f64>() / n);
    // Newell's method: the normal of a closed polygon, robust to collinear runs.
    let mut normal = [0.0; 3];
    for (a, b) in points.iter().zip(points.iter().cycle().skip(1)) {
        let edge = cross(*a, *b);
        for c in 0..3 {
            normal[c] += edge[c];
        }
    }
    let length = dot(normal, normal).sqrt();
    if !(length.is_finite() && length > 0.0) {
        // Degenerate (all points on a line): no area, treated by the slice test.
        return Ok(());
    }
    let unit = normal.map(|c| c / length);
    let tolerance_mm = TOL * series.spacing_mm[0];
    let off = points
        .iter()
        .map(|p| {
            dot(
                [p[0] - centroid[0], p[1] - centroid[1], p[2] - centroid[2]],
                unit,
            )
            .abs()
        })
        .fold(0.0, f64::max);
    if off > tolerance_mm {
        return Err(format!(
            "it is not planar: a point lies {off:.3} mm off the contour's plane \
             (tolerance {tolerance_mm:.3} mm)"
        ));
    }
    Ok(())
}

/// The voxel centres inside the contours, slice by slice by the even-odd rule over all
/// contours of the slice, as a mask cropped to its bounding box (label and name unset);
/// `None` when no centre is inside.
fn rasterise(contours: &[SliceContour], series: &Grid) -> Option<LesionMask> {
    let [_, rows, columns] = series.shape_vox;
    let slices = contours.iter().map(|c| c.slice);
    let (first_slice, last_slice) = (slices.clone().min()?, slices.max()?);
    let (row_lo, row_hi) = clipped_range(contours, 0, rows);
    let (col_lo, col_hi) = clipped_range(contours, 1, columns);
    let mut mask = Array3::from_elem(
        (
            last_slice - first_slice + 1,
            row_hi - row_lo,
            col_hi - col_lo,
        ),
        false,
    );
    let mut crossings = Vec::new();
    for row in row_lo..row_hi {
        for slice in first_slice..=last_slice {
            crossings.clear();
            for contour in contours.iter().filter(|c| c.slice == slice) {
                edge_crossings(&contour.vertices, row as f64, &mut crossings);
            }
            crossings.sort_by(f64::total_cmp);
            // Inside ⇔ an odd number of crossings lie at or right of the centre; with the
            // crossings sorted that is x[2m] ≤ column < x[2m+1].
            for pair in crossings.chunks_exact(2) {
                let first = (pair[0].ceil().max(col_lo as f64) as usize).min(col_hi);
                let end = (pair[1].ceil().min(col_hi as f64).max(0.0) as usize).max(first);
                for column in first..end {
                    mask[[slice - first_slice, row - row_lo, column - col_lo]] = true;
                }
            }
        }
    }
    crop([first_slice, row_lo, col_lo], mask)
}

/// Whole indices along in-slice axis `axis` (0 = row, 1 = column) whose centres can lie
/// inside the contours, clipped to `0..n`.
fn clipped_range(contours: &[SliceContour], axis: usize, n: usize) -> (usize, usize) {
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in contours.iter().flat_map(|c| &c.vertices) {
        min = min.min(v[axis]);
        max = max.max(v[axis]);
    }
    let lo = min.ceil().clamp(0.0, n as f64) as usize;
    let hi = (max.floor() + 1.0).clamp(0.0, n as f64) as usize;
    (lo, hi.max(lo))
}

/// `mask` (whose first voxel is series index `offset`) cropped to its true voxels.
fn crop(offset: [usize; 3], mask: Array3<bool>) -> Option<LesionMask> {
    let dims = [mask.dim().0, mask.dim().1, mask.dim().2];
    let mut lo = dims;
    let mut hi = [0; 3];
    for ((z, y, x), &m) in mask.indexed_iter() {
        if m {
            for (a, i) in [z, y, x].into_iter().enumerate() {
                lo[a] = lo[a].min(i);
                hi[a] = hi[a].max(i + 1);
            }
        }
    }
    if lo[0] >= hi[0] {
        return None;
    }
    Some(LesionMask {
        label: 0,
        name: None,
        offset_zyx: [0, 1, 2].map(|a| offset[a] + lo[a]),
        mask: mask
            .slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]])
            .to_owned(),
    })
}

/// Columns where the closed polygon `vertices` crosses the row through `y`. An edge counts
/// when exactly one of its ends lies strictly below `y` (half-open rule), so a vertex on
/// the row is counted once and horizontal edges never.
fn edge_crossings(vertices: &[[f64; 2]], y: f64, out: &mut Vec<f64>) {
    for (a, b) in vertices.iter().zip(vertices.iter().cycle().skip(1)) {
        let (ya, xa) = (a[0], a[1]);
        let (yb, xb) = (b[0], b[1]);
        if (ya > y) != (yb > y) {
            out.push(xa + (y - ya) * (xb - xa) / (yb - ya));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid {
            shape_vox: [3, 10, 10],
            spacing_mm: [2.0, 1.0, 1.0],
            origin_mm: [0.0, 0.0, 0.0],
            direction: [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        }
    }

    fn square(slice: usize, lo: f64, hi: f64) -> SliceContour {
        SliceContour {
            slice,
            vertices: vec![[lo, lo], [lo, hi], [hi, hi], [hi, lo]],
            number: 1,
            beyond_mm: 0.0,
        }
    }

    /// Whether series voxel `[z, y, x]` is in the lesion.
    fn inside(l: &LesionMask, v: [usize; 3]) -> bool {
        let o = l.offset_zyx;
        (0..3).all(|a| v[a] >= o[a])
            && l.mask
                .get([v[0] - o[0], v[1] - o[1], v[2] - o[2]])
                .copied()
                .unwrap_or(false)
    }

    #[test]
    fn square_covers_the_centres_inside_it() {
        // Corners at 1.5 and 5.5: centres 2, 3, 4, 5 on both axes.
        let l = rasterise(&[square(1, 1.5, 5.5)], &grid()).unwrap();
        assert_eq!(l.voxel_count(), 16);
        assert_eq!(l.offset_zyx, [1, 2, 2]);
        assert_eq!(l.mask.dim(), (1, 4, 4));
    }

    #[test]
    fn even_odd_makes_holes_and_islands() {
        // Ring: outer 1.5…7.5 (6×6 = 36 centres), hole 3.5…5.5 (2×2 = 4): 32 voxels.
        let ring = [square(0, 1.5, 7.5), square(0, 3.5, 5.5)];
        let l = rasterise(&ring, &grid()).unwrap();
        assert_eq!(l.voxel_count(), 32);
        assert!(!inside(&l, [0, 4, 4]) && inside(&l, [0, 2, 2]));
        // Two disjoint islands on one slice, and a third contour on another slice.
        let islands = [
            square(2, -0.5, 1.5),
            square(2, 7.5, 9.5),
            square(0, 3.5, 4.5),
        ];
        let l = rasterise(&islands, &grid()).unwrap();
        assert_eq!(l.voxel_count(), 9);
        assert!(inside(&l, [2, 9, 9]) && inside(&l, [0, 4, 4]) && !inside(&l, [1, 4, 4]));
    }

    #[test]
    fn contours_beyond_the_grid_are_clipped_and_empty_ones_are_none() {
        let l = rasterise(&[square(0, -5.0, 2.5)], &grid()).unwrap();
        assert_eq!(l.voxel_count(), 9);
        assert!(rasterise(&[square(0, 2.1, 2.9)], &grid()).is_none());
        assert!(rasterise(&[square(0, 20.0, 30.0)], &grid()).is_none());
    }

    #[test]
    fn planarity_is_checked_in_millimetres() {
        let g = grid();
        let flat = [0.0, 0.0, 2.0, 4.0, 0.0, 2.0, 4.0, 4.0, 2.0, 0.0, 4.0, 2.0];
        assert!(check_planar(&flat, &g).is_ok());
        let bent = [0.0, 0.0, 2.0, 4.0, 0.0, 2.0, 4.0, 4.0, 3.0, 0.0, 4.0, 2.0];
        assert!(check_planar(&bent, &g).unwrap_err().contains("not planar"));
    }
}
