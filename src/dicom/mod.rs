//! DICOM ingestion: uploaded files → a CT [`Volume`](crate::image::Volume) in HU, and
//! DICOM Segmentation objects → lesion masks on that volume's grid.
//!
//! * [`archive`] unpacks a zip upload (in memory) or lists a directory into [`InputFile`]s.
//! * `frames` reads one instance's image planes: a classic CT slice, or every frame of an
//!   enhanced (multi-frame) CT with its functional groups.
//! * [`series`] assembles one CT series (Modality LUT, PS3.3 C.11.1) or, for an upload,
//!   checks it one file at a time without building the volume.
//! * [`geometry`] orders the slices along the normal (PS3.3 C.7.6.2.1.1), checks uniform
//!   spacing and shear (gantry tilt), and resamples irregular stacks when configured.
//! * [`seg`] decodes a DICOM SEG (PS3.3 C.8.20) and places its frames on the series grid
//!   through world coordinates.
//! * [`rtstruct`] rasterises the planar contours of an RT Structure Set (PS3.3 C.8.8.6)
//!   onto the series grid.
//!
//! # Privacy
//! No [`DicomError`] message quotes a value read from a file other than UIDs (which are not
//! patient attributes) and numbers we computed. dicom-rs errors are never wrapped with
//! their `Display`, because some of them quote element values; each is replaced by the
//! file name, the tag keyword and what was expected.

pub mod acquisition;
pub mod archive;
pub mod deidentify;
mod frames;
pub mod geometry;
pub mod precheck;
pub mod rtstruct;
pub mod seg;
pub mod series;

pub use archive::{
    ArchiveLimits, file_refs_from_dir, files_from_dir, files_from_zip, unzip_to_dir,
};
pub use geometry::{AcquiredStack, GeometryPolicy, GeometryStatus, MaskTarget};
pub use rtstruct::{read_rtstruct, read_rtstruct_on};
pub use seg::{read_seg, read_seg_on};
pub use series::{
    AssembledSeries, FileRef, HEADER_CACHE_PLANES, InstanceSource, SeriesPlan, SeriesSummary,
    assemble_series, assemble_series_from, assemble_series_with, check_instance, plan_series,
    scan_series,
};

use bytes::Bytes;
use dicom_core::Tag;
use dicom_object::InMemDicomObject;

use crate::image::GridMismatch;

/// One uploaded file: its client-side name (for messages only) and its content.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Name as given by the client or the archive entry; never used as a path.
    pub name: String,
    /// Raw file content.
    pub bytes: Bytes,
}

/// Everything that can go wrong while ingesting DICOM. All variants are client faults
/// (HTTP 422) except [`DicomError::Io`] (a CLI directory read).
#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("no DICOM files were supplied")]
    NoFiles,
    #[error("file '{file}' is not a readable DICOM file (Part 10 header or data set invalid)")]
    NotDicom { file: String },
    #[error("file '{file}': required attribute {tag} is missing")]
    MissingTag { file: String, tag: &'static str },
    #[error("file '{file}': attribute {tag} is invalid, expected {expected}")]
    BadValue {
        file: String,
        tag: &'static str,
        expected: &'static str,
    },
    #[error(
        "file '{file}': attribute {tag} differs from the first file '{reference_file}' of the series"
    )]
    Inconsistent {
        file: String,
        tag: &'static str,
        reference_file: String,
    },
    #[error("file '{file}': attribute {tag} is stored with VR {found}, expected VR {expected}")]
    WrongVr {
        file: String,
        tag: &'static str,
        /// The VR code as read (one of the fixed PS3.5 codes, never file text).
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "file '{file}': SamplesPerPixel (0028,0002) is {samples}, expected 1: a CT image has \
         one sample per pixel (greyscale, PS3.3 C.8.2.1)"
    )]
    NotGreyscale { file: String, samples: u32 },
    /// Instances of one series disagree on the patient or the study. The values are never
    /// part of the message: they identify the patient.
    #[error(
        "files '{reference_file}' and '{file}' of one series carry different {tag} values; a \
         series must belong to one patient and one study, so it is refused (the values are \
         not shown because they identify the patient)"
    )]
    MixedPatientOrStudy {
        /// The attribute keyword with its tag, e.g. `PatientID (0010,0020)`.
        tag: &'static str,
        file: String,
        reference_file: String,
    },
    #[error(
        "files '{first_file}' and '{file}' carry the same SOPInstanceUID {uid} but different \
         images (ImagePositionPatient or frame count differ); one instance cannot be at two \
         positions, so the conflicting duplicate is refused"
    )]
    ConflictingDuplicate {
        /// The shared SOPInstanceUID (not a patient attribute).
        uid: String,
        first_file: String,
        file: String,
    },
    #[error("the upload mixes {} series: {}", .series.len(), describe_series(.series))]
    MixedSeries {
        /// `(SeriesInstanceUID, instance count)`, most instances first.
        series: Vec<(String, usize)>,
    },
    #[error(
        "files '{file}' and '{other_file}' are both at {position_mm:.3} mm along the slice normal"
    )]
    DuplicatePosition {
        file: String,
        other_file: String,
        position_mm: f64,
    },
    #[error(
        "missing slice: gap of {gap_mm:.3} mm between {from_mm:.3} mm and {to_mm:.3} mm along the \
         slice normal, expected spacing {expected_mm:.3} mm ({missing} slice(s) missing)"
    )]
    MissingSlice {
        from_mm: f64,
        to_mm: f64,
        gap_mm: f64,
        expected_mm: f64,
        missing: usize,
    },
    #[error(
        "non-uniform slice spacing: gap of {gap_mm:.3} mm between {from_mm:.3} mm and \
         {to_mm:.3} mm along the slice normal, expected {expected_mm:.3} mm (tolerance \
         {tolerance_mm:.3} mm); set RADSCORE_GEOMETRY=resample to resample such series onto \
         a regular grid"
    )]
    NonUniformSpacing {
        from_mm: f64,
        to_mm: f64,
        gap_mm: f64,
        expected_mm: f64,
        tolerance_mm: f64,
    },
    #[error(
        "file '{file}': gantry tilt or sheared stack: the slice origin lies {offset_mm:.3} mm \
         in-plane off the first slice's normal, {along_mm:.3} mm along it, a tilt of \
         {angle_deg:.2}° between the stack axis and the slice normal (tolerance \
         {tolerance_mm:.3} mm); set RADSCORE_GEOMETRY=resample to resample such series onto \
         a regular grid"
    )]
    ShearedStack {
        file: String,
        offset_mm: f64,
        along_mm: f64,
        angle_deg: f64,
        tolerance_mm: f64,
    },
    #[error(
        "file '{file}': attribute {tag} is stored with VR UN (unknown) and cannot be read: \
         {reason}"
    )]
    UnknownVr {
        file: String,
        tag: &'static str,
        reason: String,
    },
    #[error("file '{file}': {what}")]
    Unsupported { file: String, what: &'static str },
    #[error(
        "file '{file}': transfer syntax {uid} ({name}) is not supported: {reason}; supported are \
         {SUPPORTED_TRANSFER_SYNTAXES}"
    )]
    UnsupportedTransferSyntax {
        file: String,
        /// The Transfer Syntax UID, sanitised to UID characters.
        uid: String,
        /// Its name in the standard registry, or `unknown`.
        name: &'static str,
        reason: &'static str,
    },
    #[error("file '{file}': pixel data could not be decoded (transfer syntax {transfer_syntax})")]
    PixelDecode {
        file: String,
        transfer_syntax: String,
    },
    #[error(
        "file '{file}': pixel data holds {found_bytes} bytes, {expected_bytes} needed for the \
         declared size"
    )]
    PixelDataTooShort {
        file: String,
        expected_bytes: usize,
        found_bytes: usize,
    },
    #[error(
        "file '{file}': pixel data holds {found_bytes} bytes, but {frames} frame(s) of {rows} × \
         {columns} pixels at {bits} bit(s) need {expected_bytes} (one more byte of padding to \
         an even length is allowed); the frames would be misread"
    )]
    PixelDataTooLong {
        file: String,
        expected_bytes: usize,
        found_bytes: usize,
        frames: usize,
        rows: usize,
        columns: usize,
        bits: u32,
    },
    #[error(
        "file '{file}' is neither a DICOM Segmentation nor an RT Structure Set (SOP Class \
         {sop_class})"
    )]
    NotSegmentation { file: String, sop_class: String },
    #[error("file '{file}' is not an RT Structure Set (SOP Class {sop_class})")]
    NotRtStruct { file: String, sop_class: String },
    #[error(
        "file '{file}': {what} is in frame of reference {found}, the series is in {expected} \
         (FrameOfReferenceUID)"
    )]
    FrameOfReferenceMismatch {
        file: String,
        what: String,
        found: String,
        expected: String,
    },
    #[error("file '{file}': ROI {roi}, contour {contour}: {reason}")]
    RtContour {
        file: String,
        roi: u32,
        contour: usize,
        reason: String,
    },
    #[error("file '{file}': ROI {roi} is refused: {reason}")]
    RtRoi {
        file: String,
        roi: u32,
        reason: String,
    },
    #[error(
        "file '{file}': the structure set has no ROI with closed planar contours, so it \
         outlines no lesion volume (ROI(s) {rois} hold only POINT or OPEN contours)"
    )]
    RtNoClosedContours { file: String, rois: String },
    #[error("file '{file}': segmentation frame {frame}: {reason}")]
    SegFrame {
        file: String,
        frame: usize,
        reason: String,
    },
    #[error(
        "file '{file}': segmentation frame {frame} does not lie on the series grid: {mismatch}"
    )]
    SegFrameGrid {
        file: String,
        frame: usize,
        mismatch: GridMismatch,
    },
    #[error("file '{file}': segment {segment} is declared but has no foreground voxels")]
    EmptySegment { file: String, segment: u32 },
    /// A mask on the acquired slices of a resampled series that keeps no voxel of the
    /// series grid (IBSI 1 §2.4 partial-volume threshold).
    #[error(
        "file '{file}': {what} covers voxels of the acquired slices, but resampled onto the \
         series grid no voxel reaches the partial-volume fraction 0.5 (the lesion is thinner \
         than the resampling keeps)"
    )]
    ResampledAway { file: String, what: String },
    /// The file's structure is unsafe or broken (see [`precheck`]).
    #[error("file '{file}' is malformed at byte {offset}: {reason}")]
    Malformed {
        file: String,
        offset: usize,
        reason: String,
    },
    #[error("archive: {reason}")]
    Archive { reason: &'static str },
    /// An entry refused before anything is inflated; entries are named by position, since
    /// file names may carry patient names.
    #[error("archive entry {number} (counting from 1): {reason}")]
    ArchiveEntry { number: usize, reason: &'static str },
    #[error("archive exceeds the limit of {limit} {what}")]
    ArchiveLimit { what: &'static str, limit: u64 },
    #[error("cannot read '{path}': {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// `uid (n instances), …` for [`DicomError::MixedSeries`].
fn describe_series(series: &[(String, usize)]) -> String {
    let parts: Vec<String> = series
        .iter()
        .map(|(uid, n)| format!("{uid} ({n} instances)"))
        .collect();
    parts.join(", ")
}

/// The transfer syntaxes (PS3.5 A.4 and A.5) whose pixel data this build decodes, for
/// messages: dicom-pixeldata's `native` codecs plus the pure-Rust `openjp2` JPEG 2000 one.
pub const SUPPORTED_TRANSFER_SYNTAXES: &str = "Implicit and Explicit VR Little Endian, \
     Deflated Explicit VR Little Endian, JPEG Baseline and Extended (8 bit), JPEG Lossless \
     (processes 14 and SV1), JPEG 2000 (lossless and lossy), RLE Lossless";

/// Look a Transfer Syntax UID up in the dicom-rs registry, refusing one whose data set
/// (or, with `need_pixels`, whose pixel data) this build cannot decode.
pub(crate) fn check_transfer_syntax(
    file: &str,
    uid: &str,
    need_pixels: bool,
) -> Result<(), DicomError> {
    use dicom_encoding::TransferSyntaxIndex;
    let refuse = |name: &'static str, reason: &'static str| DicomError::UnsupportedTransferSyntax {
        file: file.to_owned(),
        uid: sanitize_uid(uid),
        name,
        reason,
    };
    let uid = uid.trim_end_matches(['\0', ' ']);
    let Some(ts) = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(uid) else {
        return Err(refuse("unknown", "it is not a known transfer syntax"));
    };
    if !ts.can_decode_dataset() {
        return Err(refuse(ts.name(), "its data set encoding cannot be read"));
    }
    if need_pixels && !ts.can_decode_all() {
        return Err(refuse(
            ts.name(),
            "no pixel data decoder for it is built in",
        ));
    }
    Ok(())
}

/// The identifying UIDs of one instance (PS3.3 C.12.1 SOP Common, C.7.2.1, C.7.3.1), read
/// for routing a pushed instance; each sanitised to UID characters.
#[derive(Debug, Clone, Default)]
pub struct InstanceIdentity {
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    /// For a segmentation: the SeriesInstanceUID of the first ReferencedSeriesSequence item
    /// (PS3.3 C.12.2 Common Instance Reference); for an RT Structure Set without one, of the
    /// first RT Referenced Series of the first RT Referenced Study of the first Referenced
    /// Frame of Reference (PS3.3 C.8.8.5 Structure Set Module).
    pub referenced_series_uid: Option<String>,
}

/// Parse one file (with the structural pre-check) and read its identifying UIDs.
///
/// # Errors
/// The [`DicomError`] of a file that is not DICOM, malformed, or in an unknown transfer
/// syntax.
pub fn identify(name: &str, bytes: &[u8]) -> Result<InstanceIdentity, DicomError> {
    use dicom_dictionary_std::tags;
    let obj = parse_file(name, bytes)?;
    let uid = |tag: Tag, keyword: &'static str| -> Result<Option<String>, DicomError> {
        Ok(opt_str(&obj, name, (tag, keyword))?.map(|u| sanitize_uid(&u)))
    };
    let referenced = opt_first_item(
        &obj,
        name,
        (tags::REFERENCED_SERIES_SEQUENCE, "ReferencedSeriesSequence"),
    )?
    .and_then(|item| {
        opt_str(item, name, (tags::SERIES_INSTANCE_UID, "SeriesInstanceUID"))
            .ok()
            .flatten()
    })
    .or_else(|| rt_referenced_series(&obj, name))
    .map(|u| sanitize_uid(&u));
    Ok(InstanceIdentity {
        sop_class_uid: uid(tags::SOP_CLASS_UID, "SOPClassUID")?,
        sop_instance_uid: uid(tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
        study_instance_uid: uid(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series_instance_uid: uid(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        referenced_series_uid: referenced,
    })
}

/// The series an RT Structure Set's ROIs lie on: Referenced Frame of Reference Sequence
/// (3006,0010) > RT Referenced Study Sequence (3006,0012) > RT Referenced Series Sequence
/// (3006,0014) > SeriesInstanceUID, first items (PS3.3 C.8.8.5); `None` when absent.
fn rt_referenced_series(obj: &InMemDicomObject, name: &str) -> Option<String> {
    use dicom_dictionary_std::tags;
    let frame = opt_first_item(
        obj,
        name,
        (
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            "ReferencedFrameOfReferenceSequence",
        ),
    )
    .ok()??;
    let study = opt_first_item(
        frame,
        name,
        (
            tags::RT_REFERENCED_STUDY_SEQUENCE,
            "RTReferencedStudySequence",
        ),
    )
    .ok()??;
    let series = opt_first_item(
        study,
        name,
        (
            tags::RT_REFERENCED_SERIES_SEQUENCE,
            "RTReferencedSeriesSequence",
        ),
    )
    .ok()??;
    opt_str(
        series,
        name,
        (tags::SERIES_INSTANCE_UID, "SeriesInstanceUID"),
    )
    .ok()
    .flatten()
}

/// A data element reference for messages: tag and its PS3.6 keyword.
pub(crate) type Attr = (Tag, &'static str);

/// Keep only the characters a UID may contain (PS3.5 9.1), so a malformed value can never
/// carry free text into a message; at most 64 characters.
pub(crate) fn sanitize_uid(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .take(64)
        .collect()
}

/// The element `attr`, or `MissingTag`.
fn element<'a>(
    obj: &'a InMemDicomObject,
    file: &str,
    attr: Attr,
) -> Result<&'a dicom_object::mem::InMemElement, DicomError> {
    match obj.element_opt(attr.0) {
        Ok(Some(e)) => Ok(e),
        _ => Err(DicomError::MissingTag {
            file: file.to_owned(),
            tag: attr.1,
        }),
    }
}

/// A required string attribute (trailing padding trimmed), non-empty.
pub(crate) fn req_str(
    obj: &InMemDicomObject,
    file: &str,
    attr: Attr,
) -> Result<String, DicomError> {
    opt_str(obj, file, attr)?.ok_or(DicomError::MissingTag {
        file: file.to_owned(),
        tag: attr.1,
    })
}

/// An optional string attribute; absent or empty gives `None`.
pub(crate) fn opt_str(
    obj: &InMemDicomObject,
    file: &str,
    attr: Attr,
) -> Result<Option<String>, DicomError> {
    let Ok(Some(e)) = obj.element_opt(attr.0) else {
        return Ok(None);
    };
    let s = e.to_str().map_err(|_| bad(file, attr, "a text value"))?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

/// A required numeric attribute with exactly `n` finite values (DS, FL, FD, IS, US, …).
pub(crate) fn req_f64s(
    obj: &InMemDicomObject,
    file: &str,
    attr: Attr,
    n: usize,
    expected: &'static str,
) -> Result<Vec<f64>, DicomError> {
    let v = element_f64s(element(obj, file, attr)?, file, attr, expected)?;
    if v.len() != n || v.iter().any(|x| !x.is_finite()) {
        return Err(bad(file, attr, expected));
    }
    Ok(v)
}

/// A required numeric attribute with any number of values, all finite (e.g. ContourData).
pub(crate) fn req_f64s_any(
    obj: &InMemDicomObject,
    file: &str,
    attr: Attr,
    expected: &'static str,
) -> Result<Vec<f64>, DicomError> {
    let v = element_f64s(element(obj, file, attr)?, file, attr, expected)?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(bad(file, attr, expected));
    }
    Ok(v)
}

/// The numbers of an element. An element written with VR UN (PS3.5 6.2.2: an explicit-VR
/// writer that did not know the attribute) holds its bytes as the dictionary VR encodes
/// them: for the text VRs DS and IS, backslash-separated decimal strings, which are parsed
/// as such rather than read as one number per byte. Binary numbers under UN are refused by
/// name.
fn element_f64s(
    e: &dicom_object::mem::InMemElement,
    file: &str,
    attr: Attr,
    expected: &'static str,
) -> Result<Vec<f64>, DicomError> {
    use dicom_core::VR;
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    let dictionary_vr = dicom_dictionary_std::StandardDataDictionary
        .by_tag(attr.0)
        .and_then(|entry| entry.vr().exact());
    if e.vr() != VR::UN {
        // A decimal-text attribute written with a binary or other VR (e.g. US) would be
        // read as numbers by the value conversion: six bytes of a US ImagePositionPatient
        // become three small integers and the fault surfaces as a bogus slice gap. DS and
        // IS are both decimal text and are accepted for each other.
        let text_numeric = |vr: VR| matches!(vr, VR::DS | VR::IS);
        if let Some(want) = dictionary_vr
            && e.vr() != want
            && !(text_numeric(e.vr()) && text_numeric(want))
        {
            return Err(DicomError::WrongVr {
                file: file.to_owned(),
                tag: attr.1,
                found: e.vr().to_string(),
                expected: vr_description(want),
            });
        }
        return e.to_multi_float64().map_err(|_| bad(file, attr, expected));
    }
    let un = |reason: String| DicomError::UnknownVr {
        file: file.to_owned(),
        tag: attr.1,
        reason,
    };
    if !matches!(dictionary_vr, Some(VR::DS | VR::IS)) {
        return Err(un(format!(
            "its dictionary VR is {}, whose binary value radscore does not read from UN",
            dictionary_vr.map_or("unknown", |vr| vr.to_string())
        )));
    }
    let bytes = e
        .to_bytes()
        .map_err(|_| un("its value is not a byte string".into()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| un("its bytes are not the decimal text of a DS/IS value".into()))?;
    text.trim_end_matches(['\0', ' '])
        .split('\\')
        .enumerate()
        .map(|(i, t)| {
            t.trim().parse::<f64>().map_err(|_| {
                un(format!(
                    "value {} of its bytes is not a decimal number (DS text)",
                    i + 1
                ))
            })
        })
        .collect()
}

/// The dictionary VR of a numeric attribute, as the `expected` of a `WrongVr` problem.
fn vr_description(vr: dicom_core::VR) -> &'static str {
    use dicom_core::VR;
    match vr {
        VR::DS => "DS (decimal text, PS3.6)",
        VR::IS => "IS (integer text, PS3.6)",
        VR::FD => "FD (binary 64-bit float, PS3.6)",
        VR::FL => "FL (binary 32-bit float, PS3.6)",
        VR::US => "US (a binary unsigned 16-bit integer, PS3.6)",
        VR::UL => "UL (a binary unsigned 32-bit integer, PS3.6)",
        VR::SS => "SS (a binary signed 16-bit integer, PS3.6)",
        VR::SL => "SL (a binary signed 32-bit integer, PS3.6)",
        other => other.to_string(),
    }
}

/// A required non-negative integer attribute (US, UL, IS).
pub(crate) fn req_u32(
    obj: &InMemDicomObject,
    file: &str,
    attr: Attr,
    expected: &'static str,
) -> Result<u32, DicomError> {
    element(obj, file, attr)?
        .to_int::<u32>()
        .map_err(|_| bad(file, attr, expected))
}

/// An optional non-negative integer attribute.
pub(crate) fn opt_u32(
    obj: &InMemDicomObject,
    file: &str,
    attr: Attr,
    expected: &'static str,
) -> Result<Option<u32>, DicomError> {
    match obj.element_opt(attr.0) {
        Ok(Some(e)) if e.header().len.0 != 0 => e
            .to_int::<u32>()
            .map(Some)
            .map_err(|_| bad(file, attr, expected)),
        _ => Ok(None),
    }
}

/// The items of a sequence attribute; absent gives `None`, a non-sequence is an error.
pub(crate) fn opt_items<'a>(
    obj: &'a InMemDicomObject,
    file: &str,
    attr: Attr,
) -> Result<Option<&'a [InMemDicomObject]>, DicomError> {
    match obj.element_opt(attr.0) {
        Ok(Some(e)) => e
            .items()
            .map(Some)
            .ok_or_else(|| bad(file, attr, "a sequence")),
        _ => Ok(None),
    }
}

/// The first item of an optional sequence attribute.
pub(crate) fn opt_first_item<'a>(
    obj: &'a InMemDicomObject,
    file: &str,
    attr: Attr,
) -> Result<Option<&'a InMemDicomObject>, DicomError> {
    Ok(opt_items(obj, file, attr)?.and_then(|items| items.first()))
}

/// `BadValue` for `attr` in `file`.
pub(crate) fn bad(file: &str, attr: Attr, expected: &'static str) -> DicomError {
    DicomError::BadValue {
        file: file.to_owned(),
        tag: attr.1,
        expected,
    }
}

/// Parse one DICOM Part 10 stream held in memory (with or without the 128-byte preamble).
pub(crate) fn parse_file(
    name: &str,
    bytes: &[u8],
) -> Result<dicom_object::DefaultDicomObject, DicomError> {
    if let Some(transfer_syntax) = precheck::check(name, bytes)? {
        check_transfer_syntax(name, &transfer_syntax, false)?;
    }
    dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Auto)
        .from_reader(std::io::Cursor::new(bytes))
        .map_err(|_| DicomError::NotDicom {
            file: name.to_owned(),
        })
}

/// Row and column direction cosines from ImageOrientationPatient, checked to be unit
/// length and orthogonal within [`GEOMETRY_TOLERANCE_FRACTION`](crate::image::GEOMETRY_TOLERANCE_FRACTION).
pub(crate) fn orientation(
    iop: &[f64],
    file: &str,
    attr: Attr,
) -> Result<([f64; 3], [f64; 3]), DicomError> {
    use crate::image::GEOMETRY_TOLERANCE_FRACTION as TOL;
    use crate::image::grid::dot;
    let [r0, r1, r2, c0, c1, c2] = iop else {
        return Err(bad(file, attr, "6 direction cosines"));
    };
    let (row, col) = ([*r0, *r1, *r2], [*c0, *c1, *c2]);
    let unit = |v: [f64; 3]| (dot(v, v).sqrt() - 1.0).abs() <= TOL;
    if !unit(row) || !unit(col) || dot(row, col).abs() > TOL {
        return Err(bad(file, attr, "two orthogonal unit vectors"));
    }
    // Remove the small non-orthogonality the tolerance admits, so grids stay orthonormal
    // (Grid::world_to_index relies on it).
    let row = normalize(row);
    let along = dot(col, row);
    let col = normalize([0, 1, 2].map(|i| col[i] - along * row[i]));
    Ok((row, col))
}

/// `v / |v|`.
pub(crate) fn normalize(v: [f64; 3]) -> [f64; 3] {
    let n = crate::image::grid::dot(v, v).sqrt();
    if n > 0.0 {
        [v[0] / n, v[1] / n, v[2] / n]
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_syntaxes_without_a_decoder_are_named() {
        let err = check_transfer_syntax("a.dcm", "1.2.3.4\0", false).unwrap_err();
        assert!(err.to_string().contains("1.2.3.4 (unknown)"), "{err}");
        // JPEG-LS: the data set reads, the pixel data has no decoder in this build.
        let jpeg_ls = "1.2.840.10008.1.2.4.80";
        assert!(check_transfer_syntax("b.dcm", jpeg_ls, false).is_ok());
        let err = check_transfer_syntax("b.dcm", jpeg_ls, true).unwrap_err();
        assert!(err.to_string().contains("'b.dcm'"), "{err}");
        for supported in [
            "1.2.840.10008.1.2",
            "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.5",
        ] {
            assert!(
                check_transfer_syntax("c.dcm", supported, true).is_ok(),
                "{supported}"
            );
        }
    }
}
