//! Assemble one CT series from single-frame DICOM instances into a [`Volume`] in HU.
//!
//! Steps: parse each file → one SeriesInstanceUID → drop duplicate SOPInstanceUIDs →
//! same Rows/Columns/PixelSpacing/ImageOrientationPatient everywhere → order by
//! ImagePositionPatient projected on the slice normal (PS3.3 C.7.6.2.1.1; InstanceNumber
//! and file names are not slice order) → uniform spacing and an unsheared stack within
//! [`GEOMETRY_TOLERANCE_FRACTION`] → decode pixel data with the Modality LUT
//! (RescaleSlope/RescaleIntercept, PS3.3 C.11.1.1.2) into `f32` HU.

use std::collections::{BTreeMap, HashMap};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use ndarray::{Array3, s};

use super::{
    Attr, DicomError, InputFile, bad, check_transfer_syntax, opt_str, opt_u32, orientation,
    parse_file, req_f64s, req_str, req_u32, sanitize_uid,
};
use crate::image::grid::{cross, dot};
use crate::image::{GEOMETRY_TOLERANCE_FRACTION as TOL, Grid, Volume};

const SERIES_INSTANCE_UID: Attr = (tags::SERIES_INSTANCE_UID, "SeriesInstanceUID");
const SOP_INSTANCE_UID: Attr = (tags::SOP_INSTANCE_UID, "SOPInstanceUID");
const FRAME_OF_REFERENCE_UID: Attr = (tags::FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID");
const ROWS: Attr = (tags::ROWS, "Rows");
const COLUMNS: Attr = (tags::COLUMNS, "Columns");
const PIXEL_SPACING: Attr = (tags::PIXEL_SPACING, "PixelSpacing");
const IMAGE_ORIENTATION: Attr = (tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient");
const IMAGE_POSITION: Attr = (tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient");
const NUMBER_OF_FRAMES: Attr = (tags::NUMBER_OF_FRAMES, "NumberOfFrames");
const SAMPLES_PER_PIXEL: Attr = (tags::SAMPLES_PER_PIXEL, "SamplesPerPixel");
const SLICE_THICKNESS: Attr = (tags::SLICE_THICKNESS, "SliceThickness");
const SPACING_BETWEEN_SLICES: Attr = (tags::SPACING_BETWEEN_SLICES, "SpacingBetweenSlices");
const PIXEL_DATA: Attr = (tags::PIXEL_DATA, "PixelData");
const BITS_ALLOCATED: Attr = (tags::BITS_ALLOCATED, "BitsAllocated");
const BITS_STORED: Attr = (tags::BITS_STORED, "BitsStored");
const RESCALE_SLOPE: Attr = (tags::RESCALE_SLOPE, "RescaleSlope");
const RESCALE_INTERCEPT: Attr = (tags::RESCALE_INTERCEPT, "RescaleIntercept");

/// Largest plausible pixel spacing, mm. CT in-plane spacing is below about 2 mm; a value
/// beyond this is a corrupt header, and would overflow volume features downstream.
const MAX_PIXEL_SPACING_MM: f64 = 100.0;

/// Largest plausible |coordinate| in ImagePositionPatient, mm (a 10 m patient space).
const MAX_POSITION_MM: f64 = 10_000.0;

/// Largest plausible |RescaleSlope| and |RescaleIntercept| (PS3.3 C.11.1.1.2). CT uses a
/// slope of 1 and an intercept near −1024; these bounds only refuse corrupt values that
/// would overflow `f32` HU.
const MAX_ABS_RESCALE_SLOPE: f64 = 1.0e4;
const MAX_ABS_RESCALE_INTERCEPT: f64 = 1.0e6;

/// PS3.5 8.1.1: Bits Allocated for greyscale images, and the longest UID (PS3.5 9.1).
const SUPPORTED_BITS_ALLOCATED: [u32; 3] = [8, 16, 32];
const MAX_UID_CHARS: usize = 64;

/// A CT series assembled into a volume, with what was learnt on the way.
#[derive(Debug, Clone)]
pub struct AssembledSeries {
    /// The volume in HU on the series grid.
    pub volume: Volume,
    /// SeriesInstanceUID (0020,000E).
    pub series_uid: String,
    /// FrameOfReferenceUID (0020,0052) of the first slice, when present.
    pub frame_of_reference_uid: Option<String>,
    /// Mean distance between adjacent slice centres along the normal, mm.
    pub measured_slice_spacing_mm: f64,
    /// Number of distinct instances used (after removing duplicates).
    pub instance_count: usize,
    /// Lenient recoveries (duplicates dropped, …), for quality flags. Never PHI.
    pub warnings: Vec<String>,
}

/// The header facts of one slice, kept with its parsed object for the pixel decode.
struct Slice {
    file: String,
    sop_uid: String,
    series_uid: String,
    frame_of_reference_uid: Option<String>,
    rows: u32,
    columns: u32,
    pixel_spacing: [f64; 2],
    iop: [f64; 6],
    ipp: [f64; 3],
    obj: DefaultDicomObject,
}

/// Assemble the CT series contained in `files` (any order).
///
/// # Errors
/// A [`DicomError`] naming the file and tag at fault: non-DICOM input, missing or
/// malformed attributes, several series, inconsistent geometry, a missing slice,
/// non-uniform spacing, a sheared stack, undecodable or short pixel data.
pub fn assemble_series(files: &[InputFile]) -> Result<AssembledSeries, DicomError> {
    if files.is_empty() {
        return Err(DicomError::NoFiles);
    }
    let parsed = files
        .iter()
        .map(read_slice)
        .collect::<Result<Vec<_>, _>>()?;
    let series_uid = single_series(&parsed)?;

    let mut warnings = Vec::new();
    let slices = drop_duplicates(parsed, &mut warnings);
    check_consistent(&slices)?;
    let geometry = stack_geometry(slices)?;
    let hu = decode_volume(&geometry.slices)?;

    let first = &geometry.slices[0];
    let frame_of_reference_uid = first.frame_of_reference_uid.clone();
    if geometry
        .slices
        .iter()
        .any(|s| s.frame_of_reference_uid != frame_of_reference_uid)
    {
        warnings.push("slices carry different FrameOfReferenceUIDs; the first is used".into());
    }
    for w in &warnings {
        tracing::warn!(series_uid = %series_uid, warning = %w, "lenient DICOM recovery");
    }
    Ok(AssembledSeries {
        volume: Volume {
            grid: geometry.grid,
            hu,
        },
        series_uid,
        frame_of_reference_uid,
        measured_slice_spacing_mm: geometry.spacing_mm,
        instance_count: geometry.slices.len(),
        warnings,
    })
}

/// Parse one file and read the attributes assembly needs.
fn read_slice(file: &InputFile) -> Result<Slice, DicomError> {
    let obj = parse_file(&file.name, &file.bytes)?;
    let name = file.name.as_str();
    if opt_u32(&obj, name, NUMBER_OF_FRAMES, "an integer")?.unwrap_or(1) > 1 {
        // LIMITATION: enhanced multi-frame CT keeps geometry in functional groups; not read.
        return Err(DicomError::Unsupported {
            file: file.name.clone(),
            what: "multi-frame images are not supported; upload single-frame CT slices",
        });
    }
    const SPACING_EXPECTED: &str = "2 positive numbers of at most 100 mm";
    let ps = req_f64s(&obj, name, PIXEL_SPACING, 2, SPACING_EXPECTED)?;
    if ps.iter().any(|&v| v <= 0.0 || v > MAX_PIXEL_SPACING_MM) {
        return Err(bad(name, PIXEL_SPACING, SPACING_EXPECTED));
    }
    let iop = req_f64s(&obj, name, IMAGE_ORIENTATION, 6, "6 direction cosines")?;
    orientation(&iop, name, IMAGE_ORIENTATION)?;
    const POSITION_EXPECTED: &str = "3 coordinates (mm) within ±10 m";
    let ipp = req_f64s(&obj, name, IMAGE_POSITION, 3, POSITION_EXPECTED)?;
    if ipp.iter().any(|v| v.abs() > MAX_POSITION_MM) {
        return Err(bad(name, IMAGE_POSITION, POSITION_EXPECTED));
    }
    check_transfer_syntax(name, obj.meta().transfer_syntax(), true)?;
    check_pixel_module(&obj, name)?;
    if obj.element_opt(PIXEL_DATA.0).ok().flatten().is_none() {
        return Err(DicomError::MissingTag {
            file: file.name.clone(),
            tag: PIXEL_DATA.1,
        });
    }
    Ok(Slice {
        file: file.name.clone(),
        sop_uid: valid_uid(
            &req_str(&obj, name, SOP_INSTANCE_UID)?,
            name,
            SOP_INSTANCE_UID,
        )?,
        series_uid: valid_uid(
            &req_str(&obj, name, SERIES_INSTANCE_UID)?,
            name,
            SERIES_INSTANCE_UID,
        )?,
        frame_of_reference_uid: opt_str(&obj, name, FRAME_OF_REFERENCE_UID)?
            .map(|u| sanitize_uid(&u)),
        rows: positive(req_u32(&obj, name, ROWS, "a positive integer")?, name, ROWS)?,
        columns: positive(
            req_u32(&obj, name, COLUMNS, "a positive integer")?,
            name,
            COLUMNS,
        )?,
        pixel_spacing: [ps[0], ps[1]],
        iop: [iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]],
        ipp: [ipp[0], ipp[1], ipp[2]],
        obj,
    })
}

/// A UID as stored: digits and dots only, at most 64 characters (PS3.5 9.1). Refused
/// otherwise, rather than cleaned, so two different malformed UIDs never merge.
fn valid_uid(raw: &str, file: &str, attr: Attr) -> Result<String, DicomError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_UID_CHARS
        && raw.chars().all(|c| c.is_ascii_digit() || c == '.');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(bad(
            file,
            attr,
            "a UID: digits and dots, at most 64 characters",
        ))
    }
}

/// Bits Allocated / Bits Stored (PS3.3 C.7.6.3) and the Modality LUT (C.11.1) values that
/// the decoder trusts: checked here so corrupt values are a 422, not a decoder panic.
fn check_pixel_module(obj: &InMemDicomObject, file: &str) -> Result<(), DicomError> {
    let allocated = req_u32(obj, file, BITS_ALLOCATED, "8, 16 or 32")?;
    if !SUPPORTED_BITS_ALLOCATED.contains(&allocated) {
        return Err(bad(file, BITS_ALLOCATED, "8, 16 or 32"));
    }
    let stored = req_u32(obj, file, BITS_STORED, "1 to BitsAllocated")?;
    if stored == 0 || stored > allocated {
        return Err(bad(file, BITS_STORED, "1 to BitsAllocated"));
    }
    let decimal = |attr: Attr, max: f64, expected: &'static str| match opt_str(obj, file, attr)? {
        None => Ok(None),
        Some(text) => match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v.abs() <= max => Ok(Some(v)),
            _ => Err(bad(file, attr, expected)),
        },
    };
    const SLOPE_EXPECTED: &str = "a finite non-zero number within ±1e4";
    if decimal(RESCALE_SLOPE, MAX_ABS_RESCALE_SLOPE, SLOPE_EXPECTED)? == Some(0.0) {
        return Err(bad(file, RESCALE_SLOPE, SLOPE_EXPECTED));
    }
    decimal(
        RESCALE_INTERCEPT,
        MAX_ABS_RESCALE_INTERCEPT,
        "a finite number within ±1e6",
    )?;
    Ok(())
}

fn positive(v: u32, file: &str, attr: Attr) -> Result<u32, DicomError> {
    if v == 0 {
        Err(bad(file, attr, "a positive integer"))
    } else {
        Ok(v)
    }
}

/// The one SeriesInstanceUID, or `MixedSeries` with instance counts (most first).
fn single_series(slices: &[Slice]) -> Result<String, DicomError> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in slices {
        *counts.entry(&s.series_uid).or_default() += 1;
    }
    if counts.len() == 1 {
        return Ok(slices[0].series_uid.clone());
    }
    let mut series: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(uid, n)| (uid.to_owned(), n))
        .collect();
    series.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Err(DicomError::MixedSeries { series })
}

/// Keep the first file of each SOPInstanceUID; report the others as warnings.
fn drop_duplicates(slices: Vec<Slice>, warnings: &mut Vec<String>) -> Vec<Slice> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut kept = Vec::with_capacity(slices.len());
    for s in slices {
        if let Some(first) = seen.get(&s.sop_uid) {
            warnings.push(format!(
                "file '{}' repeats the SOPInstanceUID of '{}' and was ignored",
                s.file, first
            ));
            continue;
        }
        seen.insert(s.sop_uid.clone(), s.file.clone());
        kept.push(s);
    }
    kept
}

/// Rows, Columns, PixelSpacing and ImageOrientationPatient equal to the first slice's
/// (spacing within the tolerance times its value, cosines within the tolerance).
fn check_consistent(slices: &[Slice]) -> Result<(), DicomError> {
    let Some(first) = slices.first() else {
        return Err(DicomError::NoFiles);
    };
    for s in &slices[1..] {
        let differs = |attr: Attr| DicomError::Inconsistent {
            file: s.file.clone(),
            tag: attr.1,
            reference_file: first.file.clone(),
        };
        if s.rows != first.rows {
            return Err(differs(ROWS));
        }
        if s.columns != first.columns {
            return Err(differs(COLUMNS));
        }
        let spacing_ok = (0..2).all(|a| {
            let steps = f64::from(if a == 0 { first.rows } else { first.columns } - 1).max(1.0);
            (s.pixel_spacing[a] - first.pixel_spacing[a]).abs() * steps
                <= TOL * first.pixel_spacing[a]
        });
        if !spacing_ok {
            return Err(differs(PIXEL_SPACING));
        }
        if (0..6).any(|i| (s.iop[i] - first.iop[i]).abs() > TOL) {
            return Err(differs(IMAGE_ORIENTATION));
        }
    }
    Ok(())
}

/// Slices in order along the normal, with the grid they span.
struct StackGeometry {
    slices: Vec<Slice>,
    grid: Grid,
    spacing_mm: f64,
}

/// Order the slices along the normal and check the stack is a regular lattice.
fn stack_geometry(mut slices: Vec<Slice>) -> Result<StackGeometry, DicomError> {
    let first = &slices[0];
    let (row, col) = orientation(&first.iop, &first.file, IMAGE_ORIENTATION)?;
    let normal = super::normalize(cross(row, col));
    slices.sort_by(|a, b| dot(a.ipp, normal).total_cmp(&dot(b.ipp, normal)));
    let positions: Vec<f64> = slices.iter().map(|s| dot(s.ipp, normal)).collect();

    let spacing_mm = slice_spacing(&slices, &positions)?;
    check_unsheared(&slices, &positions, normal, row, col)?;

    let first = &slices[0];
    let grid = Grid {
        shape_vox: [slices.len(), first.rows as usize, first.columns as usize],
        spacing_mm: [spacing_mm, first.pixel_spacing[0], first.pixel_spacing[1]],
        origin_mm: first.ipp,
        direction: [normal, col, row],
    };
    Ok(StackGeometry {
        slices,
        grid,
        spacing_mm,
    })
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
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let expected = sorted[sorted.len() / 2];
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
    for attr in [SPACING_BETWEEN_SLICES, SLICE_THICKNESS] {
        if let Ok(v) = req_f64s(&slice.obj, &slice.file, attr, 1, "a positive number (mm)")
            && v[0] > 0.0
        {
            return Ok(v[0]);
        }
    }
    Err(DicomError::MissingTag {
        file: slice.file.clone(),
        tag: SLICE_THICKNESS.1,
    })
}

/// Every slice origin lies on the line through the first origin along the normal.
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
            return Err(DicomError::ShearedStack {
                file: s.file.clone(),
                offset_mm,
                tolerance_mm: tolerance,
            });
        }
    }
    Ok(())
}

/// Decode every slice through the Modality LUT into one `[z, y, x]` HU array.
///
/// The first slice is decoded before the volume is allocated, so a header that declares
/// a huge Rows × Columns without the pixel data to match fails before any allocation.
fn decode_volume(slices: &[Slice]) -> Result<Array3<f32>, DicomError> {
    let (rows, cols) = (slices[0].rows as usize, slices[0].columns as usize);
    // Check every native Pixel Data length before allocating the volume, so many small
    // files that repeat a large header cannot make us allocate far more than was uploaded.
    for slice in slices {
        check_native_pixel_length(slice)?;
    }
    let first = decode_slice(&slices[0])?;
    let mut hu = Array3::<f32>::zeros((slices.len(), rows, cols));
    for (k, slice) in slices.iter().enumerate() {
        let values = if k == 0 {
            first.clone()
        } else {
            decode_slice(slice)?
        };
        let plane = ndarray::ArrayView2::from_shape((rows, cols), &values).map_err(|_| {
            DicomError::PixelDataTooShort {
                file: slice.file.clone(),
                expected_bytes: rows * cols,
                found_bytes: values.len(),
            }
        })?;
        hu.slice_mut(s![k, .., ..]).assign(&plane);
    }
    Ok(hu)
}

/// Native (uncompressed) Pixel Data must hold Rows × Columns samples of BitsAllocated.
// LIMITATION: encapsulated (compressed) pixel data is only checked when decoded.
fn check_native_pixel_length(slice: &Slice) -> Result<(), DicomError> {
    let file = slice.file.as_str();
    let Ok(element) = slice.obj.element(PIXEL_DATA.0) else {
        return Err(DicomError::MissingTag {
            file: file.to_owned(),
            tag: PIXEL_DATA.1,
        });
    };
    let Some(found_bytes) = element.header().len.get().map(|l| l as usize) else {
        return Ok(()); // undefined length: encapsulated fragments
    };
    let bits = req_u32(&slice.obj, file, BITS_ALLOCATED, "8, 16 or 32")? as usize;
    let expected_bytes = (slice.rows as usize)
        .saturating_mul(slice.columns as usize)
        .saturating_mul(bits.div_ceil(8));
    if found_bytes < expected_bytes {
        return Err(DicomError::PixelDataTooShort {
            file: file.to_owned(),
            expected_bytes,
            found_bytes,
        });
    }
    Ok(())
}

/// One slice's HU values, row-major, exactly Rows × Columns of them.
fn decode_slice(slice: &Slice) -> Result<Vec<f32>, DicomError> {
    let file = slice.file.as_str();
    let decode_error = || DicomError::PixelDecode {
        file: file.to_owned(),
        transfer_syntax: sanitize_uid(slice.obj.meta().transfer_syntax()),
    };
    let decoded = slice.obj.decode_pixel_data().map_err(|_| decode_error())?;
    if decoded.samples_per_pixel() != 1 {
        return Err(bad(file, SAMPLES_PER_PIXEL, "1 (greyscale CT)"));
    }
    if decoded.rows() != slice.rows || decoded.columns() != slice.columns {
        return Err(decode_error());
    }

    let expected_bytes = (slice.rows as usize)
        .saturating_mul(slice.columns as usize)
        .saturating_mul(usize::from(decoded.bits_allocated().div_ceil(8)));
    let found_bytes = decoded.data().len();
    if found_bytes < expected_bytes {
        return Err(DicomError::PixelDataTooShort {
            file: file.to_owned(),
            expected_bytes,
            found_bytes,
        });
    }

    let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::Default);
    let values: Vec<f32> = decoded
        .to_vec_frame_with_options(0, &options)
        .map_err(|_| decode_error())?;
    if values.len() != slice.rows as usize * slice.columns as usize {
        return Err(DicomError::PixelDataTooShort {
            file: file.to_owned(),
            expected_bytes,
            found_bytes,
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sanitizing_drops_free_text() {
        assert_eq!(sanitize_uid("1.2.3\0"), "1.2.3");
        assert_eq!(sanitize_uid("Doe^Jane"), "");
    }
}
