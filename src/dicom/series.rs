//! Assemble one CT series from classic single-frame or enhanced multi-frame DICOM instances
//! into a [`Volume`] in HU.
//!
//! Steps: parse each file into its image planes ([`frames`](super::frames)) → one
//! SeriesInstanceUID → drop duplicate SOPInstanceUIDs →
//! same Rows/Columns/PixelSpacing/ImageOrientationPatient everywhere → order by
//! ImagePositionPatient projected on the slice normal (PS3.3 C.7.6.2.1.1; InstanceNumber
//! and file names are not slice order) → uniform spacing and an unsheared stack within
//! [`GEOMETRY_TOLERANCE_FRACTION`] → decode pixel data with the Modality LUT
//! (RescaleSlope/RescaleIntercept, PS3.3 C.11.1.1.2) into `f32` HU.

use std::collections::{BTreeMap, HashMap};

use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, Rescale};
use ndarray::{Array3, s};

use super::frames::{
    BITS_ALLOCATED, COLUMNS, IMAGE_ORIENTATION, Instance, PIXEL_DATA, PIXEL_SPACING, ROWS,
    SLICE_THICKNESS, Slice, read_instance,
};
use super::{Attr, DicomError, InputFile, bad, orientation, req_u32, sanitize_uid};
use crate::image::grid::{cross, dot};
use crate::image::{GEOMETRY_TOLERANCE_FRACTION as TOL, Grid, Volume};

const SAMPLES_PER_PIXEL: Attr = (
    dicom_dictionary_std::tags::SAMPLES_PER_PIXEL,
    "SamplesPerPixel",
);

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
        .map(read_instance)
        .collect::<Result<Vec<_>, _>>()?;
    let series_uid = single_series(&parsed)?;

    let mut warnings = Vec::new();
    let instances = drop_duplicates(parsed, &mut warnings);
    let frame_of_reference_uid = instances[0].frame_of_reference_uid.clone();
    if instances
        .iter()
        .any(|i| i.frame_of_reference_uid != frame_of_reference_uid)
    {
        warnings.push("slices carry different FrameOfReferenceUIDs; the first is used".into());
    }
    let instance_count = instances.len();
    let slices: Vec<Slice> = instances.into_iter().flat_map(|i| i.planes).collect();
    check_consistent(&slices)?;
    let geometry = stack_geometry(slices)?;
    let hu = decode_volume(&geometry.slices)?;

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
        instance_count,
        warnings,
    })
}

/// The one SeriesInstanceUID, or `MixedSeries` with instance counts (most first).
fn single_series(instances: &[Instance]) -> Result<String, DicomError> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in instances {
        *counts.entry(&i.series_uid).or_default() += 1;
    }
    if counts.len() == 1 {
        return Ok(instances[0].series_uid.clone());
    }
    let mut series: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(uid, n)| (uid.to_owned(), n))
        .collect();
    series.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Err(DicomError::MixedSeries { series })
}

/// Keep the first file of each SOPInstanceUID; report the others as warnings.
fn drop_duplicates(instances: Vec<Instance>, warnings: &mut Vec<String>) -> Vec<Instance> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut kept = Vec::with_capacity(instances.len());
    for s in instances {
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
    slice.thickness_mm.ok_or_else(|| DicomError::MissingTag {
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

/// Native (uncompressed) Pixel Data must hold Rows × Columns samples of BitsAllocated for
/// every frame up to this one.
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
        .saturating_mul(bits.div_ceil(8))
        .saturating_mul(slice.frame as usize + 1);
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
    let decoded = slice
        .obj
        .decode_pixel_data_frame(slice.frame)
        .map_err(|_| decode_error())?;
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

    // The plane's own rescale: dicom-pixeldata indexes per-frame rescale values by the
    // frame number within the decoded object, which is 0 after a single-frame decode.
    let rescale = Rescale::new(slice.rescale_slope, slice.rescale_intercept);
    let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::Override(rescale));
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
