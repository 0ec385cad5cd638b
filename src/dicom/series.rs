//! One CT series: DICOM files → a [`Volume`] in HU.
//!
//! Parse every file (classic or enhanced CT, see `frames`) → one SeriesInstanceUID →
//! duplicates dropped by SOPInstanceUID → consistent Rows / Columns / PixelSpacing /
//! orientation → stack geometry (order, spacing, shear; resampled when configured, see
//! [`geometry`](super::geometry)) → decode pixel data with the Modality LUT
//! (RescaleSlope/RescaleIntercept, PS3.3 C.11.1.1.2) into `f32` HU.
//!
//! [`scan_series`] runs the same checks for an upload with bounded memory: it reads one
//! file at a time from disk, decodes its pixel data to prove it decodable and releases it,
//! so a 1 GiB series needs about one instance in memory, not the volume.

use std::collections::{BTreeMap, HashMap};

use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, Rescale};
use ndarray::{Array3, s};

use super::frames::{
    BITS_ALLOCATED, COLUMNS, IMAGE_ORIENTATION, Instance, PIXEL_DATA, PIXEL_SPACING, ROWS, Slice,
    read_instance,
};
use super::geometry::{GeometryPolicy, GeometryStatus, StackGeometry, stack_geometry};
use super::{Attr, DicomError, InputFile, bad, req_u32, sanitize_uid};
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
    /// Whether the grid is the acquired stack or a resampling of it.
    pub geometry: GeometryStatus,
}

/// What an upload check learns about a series: everything but the voxels.
#[derive(Debug, Clone)]
pub struct SeriesSummary {
    /// The series grid (after resampling, when the policy resampled).
    pub grid: Grid,
    pub series_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub measured_slice_spacing_mm: f64,
    pub instance_count: usize,
    pub warnings: Vec<String>,
    pub geometry: GeometryStatus,
}

/// One instance file on disk (an upload spooled to a temporary directory).
#[derive(Debug, Clone)]
pub struct FileRef {
    /// Name for messages (client file name, archive entry or `part N`).
    pub name: String,
    pub path: std::path::PathBuf,
}

/// Assemble the CT series contained in `files` (any order), refusing irregular stacks.
///
/// # Errors
/// As [`assemble_series_with`].
pub fn assemble_series(files: &[InputFile]) -> Result<AssembledSeries, DicomError> {
    assemble_series_with(files, GeometryPolicy::Refuse)
}

/// Assemble the CT series contained in `files` (any order); irregular stacks are refused
/// or resampled by `policy`.
///
/// # Errors
/// A [`DicomError`] naming the file and tag at fault: non-DICOM input, missing or
/// malformed attributes, several series, inconsistent geometry, a missing slice,
/// non-uniform spacing or a sheared stack (with [`GeometryPolicy::Refuse`]), undecodable
/// or short pixel data.
pub fn assemble_series_with(
    files: &[InputFile],
    policy: GeometryPolicy,
) -> Result<AssembledSeries, DicomError> {
    if files.is_empty() {
        return Err(DicomError::NoFiles);
    }
    let parsed = files
        .iter()
        .map(read_instance)
        .collect::<Result<Vec<_>, _>>()?;
    let (summary, geometry) = summarise(parsed, policy)?;
    let hu = match &geometry.resample {
        None => decode_volume(&geometry.slices)?,
        Some(plan) => {
            for slice in &geometry.slices {
                check_native_pixel_length(slice)?;
            }
            let planes = geometry
                .slices
                .iter()
                .map(decode_slice)
                .collect::<Result<Vec<_>, _>>()?;
            super::geometry::resample_stack(plan, &planes, &geometry.grid)
        }
    };
    Ok(AssembledSeries {
        volume: Volume {
            grid: summary.grid,
            hu,
        },
        series_uid: summary.series_uid,
        frame_of_reference_uid: summary.frame_of_reference_uid,
        measured_slice_spacing_mm: summary.measured_slice_spacing_mm,
        instance_count: summary.instance_count,
        warnings: summary.warnings,
        geometry: summary.geometry,
    })
}

/// Check the series in `files` as [`assemble_series_with`] does, reading one file at a
/// time and releasing its pixel data once decoded, without building the volume.
///
/// # Errors
/// As [`assemble_series_with`]; [`DicomError::Io`] when a file cannot be read.
pub fn scan_series(files: &[FileRef], policy: GeometryPolicy) -> Result<SeriesSummary, DicomError> {
    if files.is_empty() {
        return Err(DicomError::NoFiles);
    }
    let mut parsed = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(&f.path).map_err(|source| DicomError::Io {
            path: f.name.clone(),
            source,
        })?;
        let mut instance = read_instance(&InputFile {
            name: f.name.clone(),
            bytes: bytes.into(),
        })?;
        for plane in &mut instance.planes {
            check_native_pixel_length(plane)?;
            let values = decode_slice(plane)?;
            drop(values);
            plane.obj = None;
        }
        parsed.push(instance);
    }
    Ok(summarise(parsed, policy)?.0)
}

/// The series-level checks and the stack geometry of parsed instances.
fn summarise(
    parsed: Vec<Instance>,
    policy: GeometryPolicy,
) -> Result<(SeriesSummary, StackGeometry), DicomError> {
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
    let geometry = stack_geometry(slices, policy)?;
    if let GeometryStatus::Resampled { reason } = &geometry.status {
        warnings.push(reason.clone());
    }
    for w in &warnings {
        tracing::warn!(series_uid = %series_uid, warning = %w, "lenient DICOM recovery");
    }
    let summary = SeriesSummary {
        grid: geometry.grid.clone(),
        series_uid,
        frame_of_reference_uid,
        measured_slice_spacing_mm: geometry.spacing_mm,
        instance_count,
        warnings,
        geometry: geometry.status.clone(),
    };
    Ok((summary, geometry))
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
    let Ok(element) = object(slice)?.element(PIXEL_DATA.0) else {
        return Err(DicomError::MissingTag {
            file: file.to_owned(),
            tag: PIXEL_DATA.1,
        });
    };
    let Some(found_bytes) = element.header().len.get().map(|l| l as usize) else {
        return Ok(()); // undefined length: encapsulated fragments
    };
    let bits = req_u32(object(slice)?, file, BITS_ALLOCATED, "8, 16 or 32")? as usize;
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

/// The parsed instance of a plane; a released one (after an upload check) has none.
fn object(slice: &Slice) -> Result<&dicom_object::DefaultDicomObject, DicomError> {
    slice.obj.as_deref().ok_or_else(|| DicomError::MissingTag {
        file: slice.file.clone(),
        tag: PIXEL_DATA.1,
    })
}

/// One slice's HU values, row-major, exactly Rows × Columns of them.
fn decode_slice(slice: &Slice) -> Result<Vec<f32>, DicomError> {
    let file = slice.file.as_str();
    let obj = object(slice)?;
    let decode_error = || DicomError::PixelDecode {
        file: file.to_owned(),
        transfer_syntax: sanitize_uid(obj.meta().transfer_syntax()),
    };
    let decoded = obj
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
