//! One uploaded CT instance → the image planes it contributes to a series.
//!
//! * A classic CT Image (PS3.3 A.3) is one plane: geometry from the Image Plane module
//!   (C.7.6.2), rescale from the CT Image module (C.8.2.1).
//! * An Enhanced CT Image or Legacy Converted Enhanced CT Image (PS3.3 A.38, A.70) holds
//!   NumberOfFrames planes. Each frame's geometry and rescale live in functional groups
//!   (C.7.6.16): Pixel Measures (C.7.6.16.2.1: PixelSpacing, SliceThickness), Plane
//!   Position (C.7.6.16.2.3: ImagePositionPatient), Plane Orientation (C.7.6.16.2.4:
//!   ImageOrientationPatient) and Pixel Value Transformation (C.7.6.16.2.9: RescaleSlope,
//!   RescaleIntercept), each taken from the frame's Per-frame Functional Groups item, else
//!   from the Shared Functional Groups item.
//!
//! Every plane keeps a label for messages: the file name, plus `frame N` (1-based, as
//! PS3.3 numbers frames) for a multi-frame instance.

use std::sync::Arc;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};

use super::{
    Attr, DicomError, InputFile, bad, check_transfer_syntax, opt_items, opt_str, opt_u32,
    orientation, parse_file, req_f64s, req_str, req_u32, sanitize_uid,
};

pub(super) const SERIES_INSTANCE_UID: Attr = (tags::SERIES_INSTANCE_UID, "SeriesInstanceUID");
const SOP_INSTANCE_UID: Attr = (tags::SOP_INSTANCE_UID, "SOPInstanceUID");
const MODALITY: Attr = (tags::MODALITY, "Modality (0008,0060)");
/// The one modality radscore reads (PS3.3 C.7.3.1.1.1 defined term for computed
/// tomography): the HU scale its settings and models assume.
const CT_MODALITY: &str = "CT";
const FRAME_OF_REFERENCE_UID: Attr = (tags::FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID");
pub(super) const ROWS: Attr = (tags::ROWS, "Rows");
pub(super) const COLUMNS: Attr = (tags::COLUMNS, "Columns");
pub(super) const PIXEL_SPACING: Attr = (tags::PIXEL_SPACING, "PixelSpacing");
pub(super) const IMAGE_ORIENTATION: Attr =
    (tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient");
const IMAGE_POSITION: Attr = (tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient");
const NUMBER_OF_FRAMES: Attr = (tags::NUMBER_OF_FRAMES, "NumberOfFrames");
pub(super) const SLICE_THICKNESS: Attr = (tags::SLICE_THICKNESS, "SliceThickness");
const SPACING_BETWEEN_SLICES: Attr = (tags::SPACING_BETWEEN_SLICES, "SpacingBetweenSlices");
pub(super) const PIXEL_DATA: Attr = (tags::PIXEL_DATA, "PixelData");
pub(super) const BITS_ALLOCATED: Attr = (tags::BITS_ALLOCATED, "BitsAllocated");
const BITS_STORED: Attr = (tags::BITS_STORED, "BitsStored");
pub(super) const SAMPLES_PER_PIXEL: Attr = (tags::SAMPLES_PER_PIXEL, "SamplesPerPixel");
const PIXEL_REPRESENTATION: Attr = (tags::PIXEL_REPRESENTATION, "PixelRepresentation");
/// The attributes that must be the same in every instance of a series: one patient
/// (PS3.3 C.7.1.1 Patient module) and one study (C.7.2.1 General Study module).
pub(super) const PATIENT_ID: Attr = (tags::PATIENT_ID, "PatientID (0010,0020)");
pub(super) const PATIENT_NAME: Attr = (tags::PATIENT_NAME, "PatientName (0010,0010)");
pub(super) const STUDY_INSTANCE_UID: Attr =
    (tags::STUDY_INSTANCE_UID, "StudyInstanceUID (0020,000D)");
const RESCALE_SLOPE: Attr = (tags::RESCALE_SLOPE, "RescaleSlope");
const RESCALE_INTERCEPT: Attr = (tags::RESCALE_INTERCEPT, "RescaleIntercept");
const PER_FRAME_GROUPS: Attr = (
    tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
    "PerFrameFunctionalGroupsSequence",
);
const SHARED_GROUPS: Attr = (
    tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
    "SharedFunctionalGroupsSequence",
);
const PIXEL_MEASURES: Attr = (tags::PIXEL_MEASURES_SEQUENCE, "PixelMeasuresSequence");
const PLANE_POSITION: Attr = (tags::PLANE_POSITION_SEQUENCE, "PlanePositionSequence");
const PLANE_ORIENTATION: Attr = (tags::PLANE_ORIENTATION_SEQUENCE, "PlaneOrientationSequence");
const PIXEL_VALUE_TRANSFORMATION: Attr = (
    tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
    "PixelValueTransformationSequence",
);

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

/// Image Pixel module attributes whose VR is US (PS3.6, PS3.3 C.7.6.3): the decoder reads
/// them as 16-bit binary integers, so one stored as text (e.g. VR LO) is refused by name
/// rather than left to fail as undecodable pixel data.
const US_PIXEL_ATTRIBUTES: [Attr; 6] = [
    ROWS,
    COLUMNS,
    BITS_ALLOCATED,
    BITS_STORED,
    SAMPLES_PER_PIXEL,
    PIXEL_REPRESENTATION,
];

/// SamplesPerPixel of a CT image: one (greyscale; PS3.3 C.8.2.1 CT Image module).
const CT_SAMPLES_PER_PIXEL: u32 = 1;

/// The patient and study an instance belongs to, compared across a series and never shown:
/// the values identify the patient. No `Debug`, so they cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct PatientStudy {
    /// PatientID, PatientName, StudyInstanceUID as stored (trimmed); `None` when absent or
    /// empty.
    pub values: [Option<String>; 3],
}

impl PatientStudy {
    /// The attributes of `values`, in order.
    pub const ATTRIBUTES: [Attr; 3] = [PATIENT_ID, PATIENT_NAME, STUDY_INSTANCE_UID];
}

/// One parsed instance and the planes it holds.
#[derive(Clone)]
pub(super) struct Instance {
    pub file: String,
    pub sop_uid: String,
    pub series_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub patient_study: PatientStudy,
    pub planes: Vec<Slice>,
}

/// One image plane of the stack: a classic instance, or one frame of a multi-frame one.
#[derive(Clone)]
pub(super) struct Slice {
    /// File name, with ` frame N` for a frame of a multi-frame instance (messages only).
    pub file: String,
    /// 0-based frame number within the instance.
    pub frame: u32,
    pub rows: u32,
    pub columns: u32,
    /// PixelSpacing: between rows, between columns (mm).
    pub pixel_spacing: [f64; 2],
    pub iop: [f64; 6],
    pub ipp: [f64; 3],
    /// SpacingBetweenSlices, else SliceThickness (mm): the spacing of a one-plane stack.
    pub thickness_mm: Option<f64>,
    /// Modality LUT of this plane (PS3.3 C.11.1.1.2): HU = stored × slope + intercept.
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// The parsed instance, shared by its planes, until the header pass of
    /// `series::read_headers` releases it (the pixels are decoded later from `source`).
    pub obj: Option<Arc<DefaultDicomObject>>,
    /// Index of the instance's file in the upload (`series::InstanceSource`).
    pub source: usize,
}

/// Parse one file and read the planes it contributes.
pub(super) fn read_instance(file: &InputFile) -> Result<Instance, DicomError> {
    let obj = parse_file(&file.name, &file.bytes)?;
    let name = file.name.as_str();
    check_transfer_syntax(name, obj.meta().transfer_syntax(), true)?;
    check_pixel_module(&obj, name)?;
    // An instance of another modality in a CT upload (an MR slice, a scout from another
    // device) is refused by name; writers that omit Modality are not refused for that.
    if let Some(modality) = opt_str(&obj, name, MODALITY)?
        && modality.trim() != CT_MODALITY
    {
        return Err(bad(name, MODALITY, "CT (radscore reads CT series only)"));
    }
    if obj.element_opt(PIXEL_DATA.0).ok().flatten().is_none() {
        return Err(missing(name, PIXEL_DATA));
    }
    let rows = positive(req_u32(&obj, name, ROWS, "a positive integer")?, name, ROWS)?;
    let columns = positive(
        req_u32(&obj, name, COLUMNS, "a positive integer")?,
        name,
        COLUMNS,
    )?;
    let sop_uid = valid_uid(
        &req_str(&obj, name, SOP_INSTANCE_UID)?,
        name,
        SOP_INSTANCE_UID,
    )?;
    let series_uid = valid_uid(
        &req_str(&obj, name, SERIES_INSTANCE_UID)?,
        name,
        SERIES_INSTANCE_UID,
    )?;
    let frame_of_reference_uid =
        opt_str(&obj, name, FRAME_OF_REFERENCE_UID)?.map(|u| sanitize_uid(&u));
    let patient_study = PatientStudy {
        values: [
            opt_str(&obj, name, PATIENT_ID)?,
            opt_str(&obj, name, PATIENT_NAME)?,
            opt_str(&obj, name, STUDY_INSTANCE_UID)?,
        ],
    };

    let obj = Arc::new(obj);
    let multi_frame = is_multi_frame(&obj, name)?;
    let top_rescale = rescale(&obj, name)?;
    let mut planes = Vec::new();
    for (frame, groups) in frame_groups(&obj, name)?.into_iter().enumerate() {
        let label = if multi_frame {
            format!("{name} frame {}", frame + 1)
        } else {
            name.to_owned()
        };
        let geometry = plane_geometry(&groups, &label)?;
        let (rescale_slope, rescale_intercept) = match groups.transformation {
            Some(item) => rescale(item, &label)?,
            None => top_rescale,
        };
        planes.push(Slice {
            file: label,
            frame: u32::try_from(frame).unwrap_or(u32::MAX),
            rows,
            columns,
            pixel_spacing: geometry.pixel_spacing,
            iop: geometry.iop,
            ipp: geometry.ipp,
            thickness_mm: geometry.thickness_mm,
            rescale_slope,
            rescale_intercept,
            obj: Some(Arc::clone(&obj)),
            source: 0,
        });
    }
    Ok(Instance {
        file: file.name.clone(),
        sop_uid,
        series_uid,
        frame_of_reference_uid,
        patient_study,
        planes,
    })
}

/// Whether the instance is a multi-frame (enhanced) image: it has functional groups or more
/// than one frame.
fn is_multi_frame(obj: &InMemDicomObject, file: &str) -> Result<bool, DicomError> {
    let frames = opt_u32(obj, file, NUMBER_OF_FRAMES, "a positive integer")?.unwrap_or(1);
    let has_groups = [PER_FRAME_GROUPS, SHARED_GROUPS]
        .iter()
        .any(|a| obj.element_opt(a.0).ok().flatten().is_some());
    Ok(frames > 1 || has_groups)
}

/// Where one frame's plane attributes live: the data set itself (classic), or the
/// functional group items of the frame.
struct FrameGroups<'a> {
    measures: &'a InMemDicomObject,
    position: &'a InMemDicomObject,
    orientation: &'a InMemDicomObject,
    transformation: Option<&'a InMemDicomObject>,
}

/// The attribute sources of every frame, in frame order.
fn frame_groups<'a>(
    obj: &'a InMemDicomObject,
    file: &str,
) -> Result<Vec<FrameGroups<'a>>, DicomError> {
    if !is_multi_frame(obj, file)? {
        return Ok(vec![FrameGroups {
            measures: obj,
            position: obj,
            orientation: obj,
            transformation: None,
        }]);
    }
    let frames = opt_u32(obj, file, NUMBER_OF_FRAMES, "a positive integer")?.unwrap_or(1);
    let frames = positive(frames, file, NUMBER_OF_FRAMES)? as usize;
    let shared = opt_items(obj, file, SHARED_GROUPS)?.and_then(|items| items.first());
    // Per-frame items bound the frame count by what the file really holds, so a huge
    // NumberOfFrames never sizes an allocation.
    let per_frame = opt_items(obj, file, PER_FRAME_GROUPS)?.unwrap_or(&[]);
    if per_frame.len() != frames && !(frames == 1 && per_frame.is_empty()) {
        return Err(bad(
            file,
            PER_FRAME_GROUPS,
            "one item per frame (NumberOfFrames)",
        ));
    }

    let mut out = Vec::with_capacity(frames);
    for k in 0..frames {
        let item = per_frame.get(k);
        let group = |attr: Attr| -> Result<Option<&'a InMemDicomObject>, DicomError> {
            if let Some(found) = item
                .map(|i| first_item(i, file, attr))
                .transpose()?
                .flatten()
            {
                return Ok(Some(found));
            }
            Ok(shared
                .map(|s| first_item(s, file, attr))
                .transpose()?
                .flatten())
        };
        let label = format!("{file} frame {}", k + 1);
        let required = |attr: Attr| group(attr)?.ok_or_else(|| missing(&label, attr));
        out.push(FrameGroups {
            measures: required(PIXEL_MEASURES)?,
            position: required(PLANE_POSITION)?,
            orientation: required(PLANE_ORIENTATION)?,
            transformation: group(PIXEL_VALUE_TRANSFORMATION)?,
        });
    }
    Ok(out)
}

/// The first item of a sequence attribute of `parent`, if any.
fn first_item<'a>(
    parent: &'a InMemDicomObject,
    file: &str,
    attr: Attr,
) -> Result<Option<&'a InMemDicomObject>, DicomError> {
    Ok(opt_items(parent, file, attr)?.and_then(|items| items.first()))
}

/// The checked plane attributes of one frame.
struct PlaneGeometry {
    pixel_spacing: [f64; 2],
    iop: [f64; 6],
    ipp: [f64; 3],
    thickness_mm: Option<f64>,
}

fn plane_geometry(groups: &FrameGroups<'_>, label: &str) -> Result<PlaneGeometry, DicomError> {
    const SPACING_EXPECTED: &str = "2 positive numbers of at most 100 mm";
    let ps = req_f64s(groups.measures, label, PIXEL_SPACING, 2, SPACING_EXPECTED)?;
    if ps.iter().any(|&v| v <= 0.0 || v > MAX_PIXEL_SPACING_MM) {
        return Err(bad(label, PIXEL_SPACING, SPACING_EXPECTED));
    }
    let iop = req_f64s(
        groups.orientation,
        label,
        IMAGE_ORIENTATION,
        6,
        "6 direction cosines",
    )?;
    orientation(&iop, label, IMAGE_ORIENTATION)?;
    const POSITION_EXPECTED: &str = "3 coordinates (mm) within ±10 m";
    let ipp = req_f64s(groups.position, label, IMAGE_POSITION, 3, POSITION_EXPECTED)?;
    if ipp.iter().any(|v| v.abs() > MAX_POSITION_MM) {
        return Err(bad(label, IMAGE_POSITION, POSITION_EXPECTED));
    }
    let thickness_mm = [SPACING_BETWEEN_SLICES, SLICE_THICKNESS]
        .into_iter()
        .find_map(|attr| {
            req_f64s(groups.measures, label, attr, 1, "a positive number (mm)")
                .ok()
                .filter(|v| v[0] > 0.0)
                .map(|v| v[0])
        });
    Ok(PlaneGeometry {
        pixel_spacing: [ps[0], ps[1]],
        iop: [iop[0], iop[1], iop[2], iop[3], iop[4], iop[5]],
        ipp: [ipp[0], ipp[1], ipp[2]],
        thickness_mm,
    })
}

/// RescaleSlope and RescaleIntercept of `item` (defaults 1 and 0), within plausible bounds
/// so corrupt values are a 422, not an overflow.
fn rescale(item: &InMemDicomObject, file: &str) -> Result<(f64, f64), DicomError> {
    let decimal = |attr: Attr, max: f64, expected: &'static str| match opt_str(item, file, attr)? {
        None => Ok(None),
        Some(text) => match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v.abs() <= max => Ok(Some(v)),
            _ => Err(bad(file, attr, expected)),
        },
    };
    const SLOPE_EXPECTED: &str = "a finite non-zero number within ±1e4";
    let slope = decimal(RESCALE_SLOPE, MAX_ABS_RESCALE_SLOPE, SLOPE_EXPECTED)?.unwrap_or(1.0);
    if slope == 0.0 {
        return Err(bad(file, RESCALE_SLOPE, SLOPE_EXPECTED));
    }
    let intercept = decimal(
        RESCALE_INTERCEPT,
        MAX_ABS_RESCALE_INTERCEPT,
        "a finite number within ±1e6",
    )?
    .unwrap_or(0.0);
    Ok((slope, intercept))
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

/// Bits Allocated / Bits Stored (PS3.3 C.7.6.3) that the decoder trusts, the VR of every
/// binary Image Pixel attribute and one sample per pixel: checked here so corrupt values
/// are a 422 naming the attribute, not a decoder panic or an "undecodable" message.
fn check_pixel_module(obj: &InMemDicomObject, file: &str) -> Result<(), DicomError> {
    for attr in US_PIXEL_ATTRIBUTES {
        if let Ok(Some(e)) = obj.element_opt(attr.0)
            && e.vr() != dicom_core::VR::US
        {
            return Err(DicomError::WrongVr {
                file: file.to_owned(),
                tag: attr.1,
                found: e.vr().to_string(),
                expected: "US (a binary unsigned 16-bit integer, PS3.6)",
            });
        }
    }
    if let Some(samples) = opt_u32(obj, file, SAMPLES_PER_PIXEL, "a positive integer")?
        && samples != CT_SAMPLES_PER_PIXEL
    {
        return Err(DicomError::NotGreyscale {
            file: file.to_owned(),
            samples,
        });
    }
    let allocated = req_u32(obj, file, BITS_ALLOCATED, "8, 16 or 32")?;
    if !SUPPORTED_BITS_ALLOCATED.contains(&allocated) {
        return Err(bad(file, BITS_ALLOCATED, "8, 16 or 32"));
    }
    let stored = req_u32(obj, file, BITS_STORED, "1 to BitsAllocated")?;
    if stored == 0 || stored > allocated {
        return Err(bad(file, BITS_STORED, "1 to BitsAllocated"));
    }
    Ok(())
}

fn positive(v: u32, file: &str, attr: Attr) -> Result<u32, DicomError> {
    if v == 0 {
        Err(bad(file, attr, "a positive integer"))
    } else {
        Ok(v)
    }
}

fn missing(file: &str, attr: Attr) -> DicomError {
    DicomError::MissingTag {
        file: file.to_owned(),
        tag: attr.1,
    }
}
