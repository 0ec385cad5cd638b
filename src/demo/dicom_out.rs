//! Writing the demo series: one CT Image Storage file per slice, and a zip of them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use ndarray::{Array3, Axis};

use super::{DemoError, PATIENT_NAME, RESCALE_INTERCEPT_HU, derived_uid, io_error};
use crate::image::Grid;

/// The synthetic case's fixed study date (DA); no clock is read, so files are reproducible.
const STUDY_DATE: &str = "20260101";
/// Display window for soft tissue, HU (centre, width).
const WINDOW_HU: (f64, f64) = (40.0, 400.0);

/// The UIDs of one case.
pub(super) struct CaseUids {
    pub study: String,
    pub series: String,
    pub frame_of_reference: String,
    seed: u64,
}

impl CaseUids {
    pub fn new(seed: u64) -> Self {
        CaseUids {
            study: derived_uid(seed, "study", 0),
            series: derived_uid(seed, "series", 0),
            frame_of_reference: derived_uid(seed, "frame-of-reference", 0),
            seed,
        }
    }

    fn instance(&self, slice: usize) -> String {
        derived_uid(
            self.seed,
            "instance",
            u32::try_from(slice).unwrap_or(u32::MAX),
        )
    }
}

/// Write `hu` as `dir/CT_0000.dcm …` in slice order; returns the paths.
pub(super) fn write_series(
    dir: &Path,
    grid: &Grid,
    hu: &Array3<f32>,
    uids: &CaseUids,
    patient_id: &str,
) -> Result<Vec<PathBuf>, DemoError> {
    let mut files = Vec::with_capacity(grid.shape_vox[0]);
    for (k, slice) in hu.axis_iter(Axis(0)).enumerate() {
        let path = dir.join(format!("CT_{k:04}.dcm"));
        let mut obj = InMemDicomObject::new_empty();
        put_identity(&mut obj, uids, patient_id, k);
        put_geometry(&mut obj, grid, k);
        put_pixels(&mut obj, grid, slice.iter().copied());

        let file = obj
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
            .map_err(|e| DemoError::Dicom {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        file.write_to_file(&path).map_err(|e| DemoError::Dicom {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        files.push(path);
    }
    Ok(files)
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// Patient, study, series and instance identification (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1,
/// C.12.1).
fn put_identity(obj: &mut InMemDicomObject, uids: &CaseUids, patient_id: &str, slice: usize) {
    let instance_number = i32::try_from(slice + 1).unwrap_or(i32::MAX);
    put(obj, tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
    put(obj, tags::SOP_INSTANCE_UID, VR::UI, uids.instance(slice));
    put(obj, tags::STUDY_INSTANCE_UID, VR::UI, uids.study.as_str());
    put(obj, tags::SERIES_INSTANCE_UID, VR::UI, uids.series.as_str());
    put(
        obj,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        uids.frame_of_reference.as_str(),
    );
    put(obj, tags::PATIENT_NAME, VR::PN, PATIENT_NAME);
    put(obj, tags::PATIENT_ID, VR::LO, patient_id);
    put(obj, tags::PATIENT_BIRTH_DATE, VR::DA, "");
    put(obj, tags::PATIENT_SEX, VR::CS, "O");
    put(obj, tags::STUDY_DATE, VR::DA, STUDY_DATE);
    put(obj, tags::STUDY_TIME, VR::TM, "120000");
    put(obj, tags::STUDY_ID, VR::SH, "1");
    put(obj, tags::ACCESSION_NUMBER, VR::SH, "");
    put(obj, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(obj, tags::MODALITY, VR::CS, "CT");
    put(obj, tags::MANUFACTURER, VR::LO, "radscore demo-data");
    put(
        obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "radscore synthetic demo CT",
    );
    put(obj, tags::SERIES_NUMBER, VR::IS, "1");
    put(
        obj,
        tags::INSTANCE_NUMBER,
        VR::IS,
        instance_number.to_string(),
    );
    put(obj, tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY\\AXIAL");
    put(obj, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
}

/// Image Plane module (PS3.3 C.7.6.2): slice `k`'s position, axial orientation, spacing.
fn put_geometry(obj: &mut InMemDicomObject, grid: &Grid, k: usize) {
    let ipp = grid.index_to_world([k as f64, 0.0, 0.0]);
    let [dz, dy, dx] = grid.direction;
    let [sz, sy, sx] = grid.spacing_mm;
    put(obj, tags::IMAGE_POSITION_PATIENT, VR::DS, ds_list(&ipp));
    put(
        obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds_list(&[dx, dy].concat()),
    );
    // PixelSpacing is (row spacing, column spacing) = (y, x) (PS3.3 10.7.1.3).
    put(obj, tags::PIXEL_SPACING, VR::DS, ds_list(&[sy, sx]));
    put(obj, tags::SLICE_THICKNESS, VR::DS, ds(sz));
    put(
        obj,
        tags::SLICE_LOCATION,
        VR::DS,
        ds(crate::image::grid::dot(ipp, dz)),
    );
}

/// Image Pixel and CT Image modules (PS3.3 C.7.6.3, C.8.2.1): signed 16-bit stored values.
fn put_pixels(obj: &mut InMemDicomObject, grid: &Grid, hu: impl Iterator<Item = f32>) {
    let [_, rows, columns] = grid.shape_vox;
    put(obj, tags::SAMPLES_PER_PIXEL, VR::US, 1_u16);
    put(obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put(
        obj,
        tags::ROWS,
        VR::US,
        u16::try_from(rows).unwrap_or(u16::MAX),
    );
    put(
        obj,
        tags::COLUMNS,
        VR::US,
        u16::try_from(columns).unwrap_or(u16::MAX),
    );
    put(obj, tags::BITS_ALLOCATED, VR::US, 16_u16);
    put(obj, tags::BITS_STORED, VR::US, 16_u16);
    put(obj, tags::HIGH_BIT, VR::US, 15_u16);
    put(obj, tags::PIXEL_REPRESENTATION, VR::US, 1_u16);
    put(
        obj,
        tags::RESCALE_INTERCEPT,
        VR::DS,
        ds(RESCALE_INTERCEPT_HU),
    );
    put(obj, tags::RESCALE_SLOPE, VR::DS, "1");
    put(obj, tags::RESCALE_TYPE, VR::LO, "HU");
    put(obj, tags::WINDOW_CENTER, VR::DS, ds(WINDOW_HU.0));
    put(obj, tags::WINDOW_WIDTH, VR::DS, ds(WINDOW_HU.1));

    let mut bytes = Vec::with_capacity(rows * columns * 2);
    for v in hu {
        let stored = (f64::from(v) - RESCALE_INTERCEPT_HU).round();
        let stored = stored.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
        bytes.extend_from_slice(&stored.to_le_bytes());
    }
    put(obj, tags::PIXEL_DATA, VR::OW, bytes);
}

/// A Decimal String value (at most 16 characters, PS3.5 6.2): 6 decimals, trailing
/// zeros removed; coordinates of a demo grid stay well within that.
fn ds(v: f64) -> String {
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn ds_list(values: &[f64]) -> String {
    values.iter().map(|&v| ds(v)).collect::<Vec<_>>().join("\\")
}

/// Zip `files` flat, with a fixed timestamp so the archive is reproducible.
pub(super) fn write_zip(path: &Path, files: &[PathBuf]) -> Result<(), DemoError> {
    use zip::write::SimpleFileOptions;
    let zip_error = |e: zip::result::ZipError| DemoError::Zip {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };

    let out = File::create(path).map_err(io_error(path))?;
    let mut zip = zip::ZipWriter::new(out);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(file).map_err(io_error(file))?;
        zip.start_file(name, options).map_err(zip_error)?;
        zip.write_all(&bytes).map_err(io_error(path))?;
    }
    let mut out = zip.finish().map_err(zip_error)?;
    out.flush().map_err(io_error(path))
}
