//! DICOM Segmentation Storage (PS3.3 A.51, C.8.20) → lesion masks on a series grid.
//!
//! Each frame carries its own position (Per-frame Functional Groups → Plane Position,
//! ImagePositionPatient) and segment (Segment Identification → ReferencedSegmentNumber).
//! Orientation and pixel spacing come from the Per-frame group when present, else the
//! Shared group. A frame is placed through world coordinates: its first pixel and its row
//! and column steps are converted to series indices, which must be whole voxels and unit
//! steps along series axes within [`GEOMETRY_TOLERANCE_FRACTION`]. So frames may come in
//! any order, cover only some slices, and segments may overlap; two frames of one segment
//! on one plane are refused, as the mask they give would depend on which one is believed.
//!
//! BINARY frames are 1 bit per pixel, packed least significant bit first, frames
//! concatenated without padding (PS3.5 8.1.1, PS3.3 C.8.20.2.1). FRACTIONAL frames
//! (8 bit) are thresholded at half of MaximumFractionalValue. Encapsulated (compressed)
//! pixel data is decoded frame by frame through dicom-pixeldata, with the transfer syntaxes
//! the CT path decodes (RLE Lossless, JPEG 2000, …; a Deflated data set is inflated when
//! the file is parsed), and then read like native data.
//!
//! On a resampled series ([`MaskTarget::Acquired`]) each frame is placed on the acquired
//! slice it lies on, and each segment's mask is resampled onto the series grid as the image
//! was and thresholded at 0.5 (see [`super::geometry`]).

use std::collections::BTreeMap;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

use super::geometry::MaskTarget;
use super::{
    Attr, DicomError, bad, check_transfer_syntax, opt_first_item, opt_items, opt_str, orientation,
    parse_file, req_f64s, req_str, req_u32, sanitize_uid,
};
use crate::image::grid::AXIS_NAMES;
use crate::image::labelmap::lesion_from_voxels;
use crate::image::{GEOMETRY_TOLERANCE_FRACTION as TOL, Grid, GridMismatch, Segmentation};

/// Segmentation Storage SOP Class UID (PS3.4 B.5).
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// Fraction of MaximumFractionalValue at and above which a FRACTIONAL pixel is inside
/// (the IBSI 1 partial-volume threshold of 0.5, §2.4).
pub const FRACTIONAL_THRESHOLD: f64 = 0.5;

const SOP_CLASS_UID: Attr = (tags::SOP_CLASS_UID, "SOPClassUID");
const SEGMENTATION_TYPE: Attr = (tags::SEGMENTATION_TYPE, "SegmentationType");
const FRAME_OF_REFERENCE_UID: Attr = (tags::FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID");
const MAX_FRACTIONAL: Attr = (tags::MAXIMUM_FRACTIONAL_VALUE, "MaximumFractionalValue");
const ROWS: Attr = (tags::ROWS, "Rows");
const COLUMNS: Attr = (tags::COLUMNS, "Columns");
const NUMBER_OF_FRAMES: Attr = (tags::NUMBER_OF_FRAMES, "NumberOfFrames");
const BITS_ALLOCATED: Attr = (tags::BITS_ALLOCATED, "BitsAllocated");
const SEGMENT_SEQUENCE: Attr = (tags::SEGMENT_SEQUENCE, "SegmentSequence");
const SEGMENT_NUMBER: Attr = (tags::SEGMENT_NUMBER, "SegmentNumber");
const SEGMENT_LABEL: Attr = (tags::SEGMENT_LABEL, "SegmentLabel");
const SHARED_GROUPS: Attr = (
    tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
    "SharedFunctionalGroupsSequence",
);
const PER_FRAME_GROUPS: Attr = (
    tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
    "PerFrameFunctionalGroupsSequence",
);
const PLANE_POSITION_SEQ: Attr = (tags::PLANE_POSITION_SEQUENCE, "PlanePositionSequence");
const PLANE_ORIENTATION_SEQ: Attr = (tags::PLANE_ORIENTATION_SEQUENCE, "PlaneOrientationSequence");
const PIXEL_MEASURES_SEQ: Attr = (tags::PIXEL_MEASURES_SEQUENCE, "PixelMeasuresSequence");
const SEGMENT_ID_SEQ: Attr = (
    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
    "SegmentIdentificationSequence",
);
const REFERENCED_SEGMENT: Attr = (tags::REFERENCED_SEGMENT_NUMBER, "ReferencedSegmentNumber");
const IMAGE_POSITION: Attr = (tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient");
const IMAGE_ORIENTATION: Attr = (tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient");
const PIXEL_SPACING: Attr = (tags::PIXEL_SPACING, "PixelSpacing");
const PIXEL_DATA: Attr = (tags::PIXEL_DATA, "PixelData");

/// How stored pixel values become membership.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// 1 bit per pixel.
    Binary,
    /// 8 bits per pixel; inside when `value >= threshold`.
    Fractional { threshold: f64 },
}

/// Decode a DICOM SEG and map its segments onto `series`.
///
/// Each segment becomes a [`LesionMask`](crate::image::LesionMask) with `label` = Segment
/// Number and `name` = Segment Label, in ascending segment number.
///
/// # Errors
/// A [`DicomError`]: not a SEG, an unsupported encoding, a frame that is not on the
/// series grid ([`DicomError::SegFrame`], [`DicomError::SegFrameGrid`], naming the
/// 1-based frame number), a declared segment without voxels, a FrameOfReferenceUID other
/// than `frame_of_reference_uid` (the series', when known).
pub fn read_seg(
    bytes: &[u8],
    file_name: &str,
    series: &Grid,
    frame_of_reference_uid: Option<&str>,
) -> Result<Segmentation, DicomError> {
    read_seg_on(
        bytes,
        file_name,
        MaskTarget::Grid(series),
        frame_of_reference_uid,
    )
}

/// As [`read_seg`], onto `target`: on a resampled series each frame is placed on the
/// acquired slice its plane lies on (refused, naming the frame, when it lies on none), and
/// each segment is resampled onto the series grid like the image and thresholded
/// ([`AcquiredStack::resample_mask`](super::AcquiredStack::resample_mask)).
///
/// # Errors
/// As [`read_seg`]; also [`DicomError::ResampledAway`] for a segment none of whose
/// resampled voxels reaches the partial-volume threshold.
pub fn read_seg_on(
    bytes: &[u8],
    file_name: &str,
    target: MaskTarget<'_>,
    frame_of_reference_uid: Option<&str>,
) -> Result<Segmentation, DicomError> {
    let obj = parse_file(file_name, bytes)?;
    let file = file_name;

    let sop_class = sanitize_uid(&req_str(&obj, file, SOP_CLASS_UID)?);
    if sop_class != SEGMENTATION_STORAGE {
        return Err(DicomError::NotSegmentation {
            file: file.to_owned(),
            sop_class,
        });
    }
    check_frame_of_reference(&obj, file, frame_of_reference_uid)?;
    let encoding = encoding(&obj, file)?;
    let segments = segment_names(&obj, file)?;
    let layout = FrameLayout::read(&obj, file, encoding)?;
    let pixels = pixel_bytes(&obj, file, &layout)?;

    let per_frame = opt_items(&obj, file, PER_FRAME_GROUPS)?.ok_or(DicomError::MissingTag {
        file: file.to_owned(),
        tag: PER_FRAME_GROUPS.1,
    })?;
    if per_frame.len() != layout.frames {
        return Err(bad(
            file,
            PER_FRAME_GROUPS,
            "one item per frame (NumberOfFrames)",
        ));
    }
    let shared = opt_first_item(&obj, file, SHARED_GROUPS)?;

    let mut voxels: BTreeMap<u32, Vec<[usize; 3]>> = BTreeMap::new();
    // Per segment, the plane (first pixel on the target, row and column steps) each frame
    // covers, with its frame number: a second frame on one plane is refused.
    let mut planes: BTreeMap<(u32, [[i64; 3]; 3]), usize> = BTreeMap::new();
    for (f, groups) in per_frame.iter().enumerate() {
        let frame_no = f + 1;
        let segment = frame_segment(groups, shared, file, frame_no)?;
        if !segments.contains_key(&segment) {
            return Err(frame_error(
                file,
                frame_no,
                format!("references segment {segment}, which SegmentSequence does not define"),
            ));
        }
        // On a resampled series: the acquired slice the frame lies on, as index 0 of its
        // one-slice grid; the frame's voxels are then `[slice, row, column]`.
        // LIMITATION: frames drawn on the resampled grid (not on acquired slices) are refused.
        // LIMITATION: a FRACTIONAL SEG is thresholded on the acquired slices, then resampled.
        let (grid, slice) = match target {
            MaskTarget::Grid(series) => (series, 0),
            MaskTarget::Acquired(stack) => {
                let ipp = frame_position(groups, shared, file)?;
                let k = stack
                    .slice_at(ipp)
                    .map_err(|reason| frame_error(file, frame_no, reason))?;
                (stack.slice_grid(k), k)
            }
        };
        let placement = place_frame(groups, shared, file, frame_no, grid, &layout)?;
        let mut origin = placement.origin;
        origin[0] += slice as i64;
        let plane = (segment, [origin, placement.row_step, placement.column_step]);
        if let Some(first) = planes.insert(plane, frame_no) {
            return Err(frame_error(
                file,
                frame_no,
                format!(
                    "covers the same plane as frame {first} for segment {segment}; a segment \
                     has at most one frame per position, so the mask would be ambiguous"
                ),
            ));
        }
        let out = voxels.entry(segment).or_default();
        for (r, c) in layout.foreground(&pixels, f) {
            let [z, y, x] = placement.index(r, c);
            out.push([z + slice, y, x]);
        }
    }

    let mut lesions = Vec::with_capacity(segments.len());
    for (number, name) in segments {
        let found = voxels.get(&number).map(Vec::as_slice).unwrap_or(&[]);
        let lesion = lesion_from_voxels(number, name, found).ok_or(DicomError::EmptySegment {
            file: file.to_owned(),
            segment: number,
        })?;
        lesions.push(match target {
            MaskTarget::Grid(_) => lesion,
            MaskTarget::Acquired(stack) => {
                stack
                    .resample_mask(&lesion)
                    .ok_or_else(|| DicomError::ResampledAway {
                        file: file.to_owned(),
                        what: format!("segment {number}"),
                    })?
            }
        });
    }
    Ok(Segmentation {
        grid: target.grid().clone(),
        lesions,
        warnings: Vec::new(),
    })
}

/// ImagePositionPatient of a frame (Plane Position, per-frame or shared).
fn frame_position(
    groups: &InMemDicomObject,
    shared: Option<&InMemDicomObject>,
    file: &str,
) -> Result<[f64; 3], DicomError> {
    let ipp = group_attr(
        groups,
        shared,
        file,
        PLANE_POSITION_SEQ,
        IMAGE_POSITION,
        3,
        "3 coordinates (mm)",
    )?;
    Ok([ipp[0], ipp[1], ipp[2]])
}

/// The SEG's FrameOfReferenceUID (type 1 in the SEG IOD) must be the series' one, when the
/// series has one (a NIfTI image in `radscore extract` has none).
fn check_frame_of_reference(
    obj: &InMemDicomObject,
    file: &str,
    series_uid: Option<&str>,
) -> Result<(), DicomError> {
    let Some(expected) = series_uid.map(sanitize_uid) else {
        return Ok(());
    };
    let found = sanitize_uid(&req_str(obj, file, FRAME_OF_REFERENCE_UID)?);
    if found != expected {
        return Err(DicomError::FrameOfReferenceMismatch {
            file: file.to_owned(),
            what: "the segmentation".into(),
            found,
            expected,
        });
    }
    Ok(())
}

fn frame_error(file: &str, frame: usize, reason: String) -> DicomError {
    DicomError::SegFrame {
        file: file.to_owned(),
        frame,
        reason,
    }
}

/// SegmentationType: BINARY, or FRACTIONAL with its MaximumFractionalValue.
fn encoding(obj: &InMemDicomObject, file: &str) -> Result<Encoding, DicomError> {
    match req_str(obj, file, SEGMENTATION_TYPE)?.as_str() {
        "BINARY" => Ok(Encoding::Binary),
        "FRACTIONAL" => {
            let max = req_u32(obj, file, MAX_FRACTIONAL, "an integer 1…255")?;
            if !(1..=255).contains(&max) {
                return Err(bad(file, MAX_FRACTIONAL, "an integer 1…255"));
            }
            Ok(Encoding::Fractional {
                threshold: FRACTIONAL_THRESHOLD * f64::from(max),
            })
        }
        _ => Err(bad(file, SEGMENTATION_TYPE, "BINARY or FRACTIONAL")),
    }
}

/// SegmentNumber → SegmentLabel for every item of SegmentSequence.
fn segment_names(
    obj: &InMemDicomObject,
    file: &str,
) -> Result<BTreeMap<u32, Option<String>>, DicomError> {
    let items = opt_items(obj, file, SEGMENT_SEQUENCE)?.ok_or(DicomError::MissingTag {
        file: file.to_owned(),
        tag: SEGMENT_SEQUENCE.1,
    })?;
    let mut names = BTreeMap::new();
    for item in items {
        let number = req_u32(item, file, SEGMENT_NUMBER, "a positive integer")?;
        let label = opt_str(item, file, SEGMENT_LABEL)?;
        if number == 0 || names.insert(number, label).is_some() {
            return Err(bad(file, SEGMENT_NUMBER, "distinct positive integers"));
        }
    }
    if names.is_empty() {
        return Err(bad(file, SEGMENT_SEQUENCE, "at least one segment"));
    }
    Ok(names)
}

/// Frame size and pixel encoding.
struct FrameLayout {
    rows: usize,
    columns: usize,
    frames: usize,
    encoding: Encoding,
}

impl FrameLayout {
    fn read(obj: &InMemDicomObject, file: &str, encoding: Encoding) -> Result<Self, DicomError> {
        let rows = req_u32(obj, file, ROWS, "a positive integer")? as usize;
        let columns = req_u32(obj, file, COLUMNS, "a positive integer")? as usize;
        let frames = req_u32(obj, file, NUMBER_OF_FRAMES, "a positive integer")? as usize;
        // Name the attribute that is zero (the break test had Rows = 0 reported as
        // NumberOfFrames).
        for (attr, value) in [(ROWS, rows), (COLUMNS, columns), (NUMBER_OF_FRAMES, frames)] {
            if value == 0 {
                return Err(bad(file, attr, "a positive integer"));
            }
        }
        let bits = req_u32(obj, file, BITS_ALLOCATED, "1 (BINARY) or 8 (FRACTIONAL)")?;
        let expected_bits = match encoding {
            Encoding::Binary => 1,
            Encoding::Fractional { .. } => 8,
        };
        if bits != expected_bits {
            return Err(bad(file, BITS_ALLOCATED, "1 (BINARY) or 8 (FRACTIONAL)"));
        }
        Ok(Self {
            rows,
            columns,
            frames,
            encoding,
        })
    }

    /// Bytes the pixel data must hold.
    fn required_bytes(&self) -> usize {
        let pixels = self
            .rows
            .saturating_mul(self.columns)
            .saturating_mul(self.frames);
        match self.encoding {
            Encoding::Binary => pixels.div_ceil(8),
            Encoding::Fractional { .. } => pixels,
        }
    }

    /// `(row, column)` of every foreground pixel of frame `f` (0-based).
    fn foreground<'p>(
        &self,
        pixels: &'p [u8],
        f: usize,
    ) -> impl Iterator<Item = (usize, usize)> + 'p {
        let (rows, columns, encoding) = (self.rows, self.columns, self.encoding);
        let start = f * rows * columns;
        (0..rows * columns).filter_map(move |p| {
            let k = start + p;
            let inside = match encoding {
                Encoding::Binary => pixels.get(k / 8).is_some_and(|b| (b >> (k % 8)) & 1 == 1),
                Encoding::Fractional { threshold } => {
                    pixels.get(k).is_some_and(|&v| f64::from(v) >= threshold)
                }
            };
            inside.then_some((p / columns, p % columns))
        })
    }
}

/// The pixel data of all frames laid out as native data (PS3.5 8.1.1: BINARY bits packed
/// least significant bit first, frames unpadded; FRACTIONAL one byte per pixel), long
/// enough for all frames: native data as it is, encapsulated data decoded frame by frame.
fn pixel_bytes<'o>(
    obj: &'o DefaultDicomObject,
    file: &str,
    layout: &FrameLayout,
) -> Result<std::borrow::Cow<'o, [u8]>, DicomError> {
    let element = obj
        .element_opt(PIXEL_DATA.0)
        .ok()
        .flatten()
        .ok_or(DicomError::MissingTag {
            file: file.to_owned(),
            tag: PIXEL_DATA.1,
        })?;
    if element.fragments().is_some() {
        return decode_encapsulated(obj, file, layout).map(std::borrow::Cow::Owned);
    }
    let data = element
        .to_bytes()
        .map_err(|_| bad(file, PIXEL_DATA, "native pixel data"))?;
    let expected_bytes = layout.required_bytes();
    if data.len() < expected_bytes {
        return Err(DicomError::PixelDataTooShort {
            file: file.to_owned(),
            expected_bytes,
            found_bytes: data.len(),
        });
    }
    // PS3.5 8.1.1: the value is padded to an even length, nothing more. Longer data means
    // the declared Rows, Columns, NumberOfFrames or BitsAllocated do not describe it.
    if data.len() > expected_bytes.next_multiple_of(2) {
        return Err(DicomError::PixelDataTooLong {
            file: file.to_owned(),
            expected_bytes,
            found_bytes: data.len(),
            frames: layout.frames,
            rows: layout.rows,
            columns: layout.columns,
            bits: match layout.encoding {
                Encoding::Binary => 1,
                Encoding::Fractional { .. } => 8,
            },
        });
    }
    Ok(data)
}

/// Encapsulated (compressed, PS3.5 A.4) pixel data: every frame decoded by dicom-pixeldata
/// as a CT frame is (RLE Lossless, JPEG 2000, the JPEG processes of this build; others are
/// refused naming the transfer syntax), then laid out as native data. dicom-rs decoders
/// write 8 or 16 bits per sample, so a BINARY object is decoded as if BitsAllocated were 8:
/// a 1-bit frame (JPEG 2000 of precision 1, as highdicom writes) comes out as one 0/1
/// sample per byte, and any non-zero sample is inside.
fn decode_encapsulated(
    obj: &DefaultDicomObject,
    file: &str,
    layout: &FrameLayout,
) -> Result<Vec<u8>, DicomError> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_pixeldata::PixelDecoder;
    let transfer_syntax = obj.meta().transfer_syntax();
    check_transfer_syntax(file, transfer_syntax, true)?;
    let undecodable = || DicomError::PixelDecode {
        file: file.to_owned(),
        transfer_syntax: sanitize_uid(transfer_syntax),
    };
    let widened;
    let source = match layout.encoding {
        Encoding::Binary => {
            let mut copy = obj.clone();
            copy.put(DataElement::new(
                BITS_ALLOCATED.0,
                VR::US,
                PrimitiveValue::from(8_u16),
            ));
            widened = copy;
            &widened
        }
        Encoding::Fractional { .. } => obj,
    };
    let pixels = layout.rows * layout.columns;
    let mut out = match layout.encoding {
        Encoding::Binary => vec![0u8; layout.required_bytes()],
        Encoding::Fractional { .. } => Vec::with_capacity(layout.required_bytes()),
    };
    for f in 0..layout.frames {
        let frame = u32::try_from(f).map_err(|_| undecodable())?;
        let decoded = source
            .decode_pixel_data_frame(frame)
            .map_err(|_| undecodable())?;
        if decoded.rows() as usize != layout.rows || decoded.columns() as usize != layout.columns {
            return Err(undecodable());
        }
        let data = decoded.data();
        if data.len() < pixels {
            return Err(DicomError::PixelDataTooShort {
                file: file.to_owned(),
                expected_bytes: pixels,
                found_bytes: data.len(),
            });
        }
        match layout.encoding {
            Encoding::Binary => {
                for (p, _) in data[..pixels].iter().enumerate().filter(|(_, v)| **v != 0) {
                    let k = f * pixels + p;
                    out[k / 8] |= 1 << (k % 8);
                }
            }
            Encoding::Fractional { .. } => out.extend_from_slice(&data[..pixels]),
        }
    }
    Ok(out)
}

/// ReferencedSegmentNumber of one frame, from its Per-frame group or else the Shared group
/// (writers put it there when the object has a single segment).
fn frame_segment(
    groups: &InMemDicomObject,
    shared: Option<&InMemDicomObject>,
    file: &str,
    frame: usize,
) -> Result<u32, DicomError> {
    for g in std::iter::once(groups).chain(shared) {
        if let Some(item) = opt_first_item(g, file, SEGMENT_ID_SEQ)? {
            return req_u32(item, file, REFERENCED_SEGMENT, "a segment number");
        }
    }
    Err(frame_error(
        file,
        frame,
        format!("{} is missing", SEGMENT_ID_SEQ.1),
    ))
}

/// Where a frame's pixels land on the series grid: index of pixel (0, 0) and the index
/// steps per row and per column.
struct Placement {
    origin: [i64; 3],
    row_step: [i64; 3],
    column_step: [i64; 3],
}

impl Placement {
    fn index(&self, r: usize, c: usize) -> [usize; 3] {
        // In bounds by construction: all four frame corners were checked to be on the grid.
        [0, 1, 2].map(|a| {
            (self.origin[a] + r as i64 * self.row_step[a] + c as i64 * self.column_step[a]) as usize
        })
    }
}

/// Find an attribute in a functional group macro of the frame, else of the shared groups.
fn group_attr(
    groups: &InMemDicomObject,
    shared: Option<&InMemDicomObject>,
    file: &str,
    sequence: Attr,
    attr: Attr,
    n: usize,
    expected: &'static str,
) -> Result<Vec<f64>, DicomError> {
    for g in std::iter::once(groups).chain(shared) {
        if let Some(item) = opt_first_item(g, file, sequence)?
            && item.element_opt(attr.0).ok().flatten().is_some()
        {
            return req_f64s(item, file, attr, n, expected);
        }
    }
    Err(DicomError::MissingTag {
        file: file.to_owned(),
        tag: attr.1,
    })
}

/// Map frame `frame` (1-based) onto the series grid.
fn place_frame(
    groups: &InMemDicomObject,
    shared: Option<&InMemDicomObject>,
    file: &str,
    frame: usize,
    series: &Grid,
    layout: &FrameLayout,
) -> Result<Placement, DicomError> {
    let ipp = frame_position(groups, shared, file)?;
    let iop = group_attr(
        groups,
        shared,
        file,
        PLANE_ORIENTATION_SEQ,
        IMAGE_ORIENTATION,
        6,
        "6 direction cosines",
    )?;
    let ps = group_attr(
        groups,
        shared,
        file,
        PIXEL_MEASURES_SEQ,
        PIXEL_SPACING,
        2,
        "2 positive numbers (mm)",
    )?;
    let (row_dir, col_dir) = orientation(&iop, file, IMAGE_ORIENTATION)?;

    // Continuous series index of pixel (0,0), and of one step down a column / along a row.
    let origin = series.world_to_index(ipp);
    let step = |dir: [f64; 3], mm: f64| {
        let end = series.world_to_index([0, 1, 2].map(|c| ipp[c] + dir[c] * mm));
        [0, 1, 2].map(|a| end[a] - origin[a])
    };
    let row_step = unit_step(step(col_dir, ps[0]), layout.rows, series).map_err(|mismatch| {
        DicomError::SegFrameGrid {
            file: file.to_owned(),
            frame,
            mismatch,
        }
    })?;
    let column_step =
        unit_step(step(row_dir, ps[1]), layout.columns, series).map_err(|mismatch| {
            DicomError::SegFrameGrid {
                file: file.to_owned(),
                frame,
                mismatch,
            }
        })?;
    if row_step
        .iter()
        .zip(&column_step)
        .any(|(r, c)| *r != 0 && *c != 0)
    {
        return Err(frame_error(
            file,
            frame,
            "rows and columns run along the same series axis".into(),
        ));
    }

    let mut rounded = [0i64; 3];
    for a in 0..3 {
        let nearest = origin[a].round();
        // Pixel (0, 0) is a frame corner, so it must index the grid; checking here also
        // keeps a far-away (or non-finite) position from overflowing the index maths.
        if !(0.0..series.shape_vox[a] as f64).contains(&nearest) {
            return Err(outside_grid(file, frame, a, nearest));
        }
        if (origin[a] - nearest).abs() > TOL {
            return Err(DicomError::SegFrameGrid {
                file: file.to_owned(),
                frame,
                mismatch: GridMismatch::Origin {
                    axis: AXIS_NAMES[a],
                    offset_mm: (origin[a] - nearest) * series.spacing_mm[a],
                    tolerance_mm: TOL * series.spacing_mm[a],
                },
            });
        }
        rounded[a] = nearest as i64;
    }
    let placement = Placement {
        origin: rounded,
        row_step,
        column_step,
    };
    check_on_grid(&placement, layout, series, file, frame)?;
    Ok(placement)
}

fn outside_grid(file: &str, frame: usize, axis: usize, index: f64) -> DicomError {
    frame_error(
        file,
        frame,
        format!(
            "lies outside the series grid along axis {} (index {index})",
            AXIS_NAMES[axis]
        ),
    )
}

/// A step that must be ±1 voxel along exactly one series axis; the drift over the frame
/// extent must stay within the tolerance (as in [`Grid::check_same_as`]).
fn unit_step(step: [f64; 3], extent: usize, series: &Grid) -> Result<[i64; 3], GridMismatch> {
    if step.iter().any(|v| !v.is_finite()) {
        // Positions near the f64 range give inf - inf; NaN would pass every comparison.
        return Err(GridMismatch::Spacing {
            axis: AXIS_NAMES[0],
            expected_mm: series.spacing_mm[0],
            found_mm: f64::NAN,
        });
    }
    let axis = (0..3)
        .max_by(|&a, &b| step[a].abs().total_cmp(&step[b].abs()))
        .unwrap_or(0);
    let sign = step[axis].signum();
    let mut ideal = [0.0; 3];
    ideal[axis] = sign;
    let span = extent.saturating_sub(1).max(1) as f64;
    for a in 0..3 {
        if (step[a] - ideal[a]).abs() * span > TOL {
            return Err(if a == axis {
                GridMismatch::Spacing {
                    axis: AXIS_NAMES[axis],
                    expected_mm: series.spacing_mm[axis],
                    found_mm: step[axis].abs() * series.spacing_mm[axis],
                }
            } else {
                // The step back in world space, for the message.
                let world = [0, 1, 2].map(|c| {
                    (0..3)
                        .map(|b| step[b] * series.spacing_mm[b] * series.direction[b][c])
                        .sum()
                });
                GridMismatch::Direction {
                    axis: AXIS_NAMES[axis],
                    expected: series.direction[axis].map(|c| c * sign),
                    found: super::normalize(world),
                }
            });
        }
    }
    Ok(ideal.map(|v| v as i64))
}

/// All four corners of the frame must fall inside the series grid.
fn check_on_grid(
    p: &Placement,
    layout: &FrameLayout,
    series: &Grid,
    file: &str,
    frame: usize,
) -> Result<(), DicomError> {
    let (last_r, last_c) = ((layout.rows - 1) as i64, (layout.columns - 1) as i64);
    for (r, c) in [(0, 0), (last_r, 0), (0, last_c), (last_r, last_c)] {
        for a in 0..3 {
            let i = p.origin[a] + r * p.row_step[a] + c * p.column_step[a];
            if i < 0 || i >= series.shape_vox[a] as i64 {
                return Err(outside_grid(file, frame, a, i as f64));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid {
            shape_vox: [4, 3, 5],
            spacing_mm: [3.0, 0.5, 0.5],
            origin_mm: [0.0, 0.0, 0.0],
            direction: [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        }
    }

    #[test]
    fn binary_bits_are_lsb_first_and_frames_unpadded() {
        // 3×1 frames: frame 0 = [1,0,1], frame 1 = [0,1,1] → bits 0,2,4,5 → 0b0011_0101.
        let layout = FrameLayout {
            rows: 1,
            columns: 3,
            frames: 2,
            encoding: Encoding::Binary,
        };
        let px = [0b0011_0101u8];
        assert_eq!(
            layout.foreground(&px, 0).collect::<Vec<_>>(),
            [(0, 0), (0, 2)]
        );
        assert_eq!(
            layout.foreground(&px, 1).collect::<Vec<_>>(),
            [(0, 1), (0, 2)]
        );
    }

    /// Per-frame functional groups with one position, axial orientation and 0.5 mm pixels.
    fn frame_groups(ipp: &str) -> InMemDicomObject {
        use dicom_core::value::DataSetSequence;
        use dicom_core::{DataElement, VR};
        let item = |attr: Attr, vr: VR, value: &str| {
            InMemDicomObject::from_element_iter([DataElement::new(
                attr.0,
                vr,
                dicom_core::PrimitiveValue::Strs(value.split('\\').map(String::from).collect()),
            )])
        };
        let seq = |attr: Attr, inner: InMemDicomObject| {
            DataElement::new(attr.0, VR::SQ, DataSetSequence::from(vec![inner]))
        };
        InMemDicomObject::from_element_iter([
            seq(PLANE_POSITION_SEQ, item(IMAGE_POSITION, VR::DS, ipp)),
            seq(
                PLANE_ORIENTATION_SEQ,
                item(IMAGE_ORIENTATION, VR::DS, "1\\0\\0\\0\\1\\0"),
            ),
            seq(PIXEL_MEASURES_SEQ, item(PIXEL_SPACING, VR::DS, "0.5\\0.5")),
        ])
    }

    /// Hardening found in review while fuzzing: a frame positioned far off the grid (or at
    /// a non-finite index) is refused before any index arithmetic, instead of relying on
    /// `f64 as i64` saturation and the later corner check.
    #[test]
    fn far_away_frame_is_outside_the_grid_not_an_overflow() {
        let layout = FrameLayout {
            rows: 3,
            columns: 5,
            frames: 1,
            encoding: Encoding::Binary,
        };
        let g = grid();
        let on_grid = place_frame(&frame_groups("0\\0\\3"), None, "s.dcm", 1, &g, &layout);
        assert_eq!(
            on_grid.map(|p| p.origin).map_err(|e| e.to_string()),
            Ok([1, 0, 0])
        );
        for ipp in ["1e300\\1e300\\1e300", "-1e18\\0\\0", "0\\0\\1e17"] {
            let err = place_frame(&frame_groups(ipp), None, "s.dcm", 1, &g, &layout);
            assert!(
                matches!(
                    err,
                    Err(DicomError::SegFrame { .. } | DicomError::SegFrameGrid { .. })
                ),
                "{ipp}: {:?}",
                err.map(|p| p.origin)
            );
        }
    }

    #[test]
    fn unit_step_refuses_non_finite_steps() {
        let g = grid();
        assert!(unit_step([f64::NAN, 1.0, 0.0], 3, &g).is_err());
        assert!(unit_step([0.0, f64::INFINITY, 0.0], 3, &g).is_err());
    }

    #[test]
    fn unit_step_accepts_flips_and_refuses_other_spacing() {
        let g = grid();
        assert_eq!(unit_step([0.0, -1.0, 0.0], 3, &g), Ok([0, -1, 0]));
        assert!(matches!(
            unit_step([0.0, 1.2, 0.0], 3, &g),
            Err(GridMismatch::Spacing { .. })
        ));
    }
}
