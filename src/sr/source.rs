//! What the report needs from the stored inputs: the source series' instances, the study
//! and patient attributes a PACS files the report by, and the identity of a DICOM
//! segmentation (SEG or RTSTRUCT).
//!
//! PRIVACY: the copied Patient module values are put into the report and nowhere else;
//! errors name the attribute and the file index, never a value.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::SrError;

/// Patient module (PS3.3 C.7.1.1) and General Study module (C.7.2.1) attributes copied
/// from the source so that the report files next to the images. Type 2 attributes are
/// written empty when the source lacks them; the others are left out then.
/// (tag, VR, type 2?)
pub const COPIED_STUDY_ATTRIBUTES: &[(Tag, VR, bool)] = &[
    (tags::PATIENT_NAME, VR::PN, true),
    (tags::PATIENT_ID, VR::LO, true),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, false),
    (tags::PATIENT_BIRTH_DATE, VR::DA, true),
    (tags::PATIENT_SEX, VR::CS, true),
    (tags::STUDY_DATE, VR::DA, true),
    (tags::STUDY_TIME, VR::TM, true),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN, true),
    (tags::STUDY_ID, VR::SH, true),
    (tags::ACCESSION_NUMBER, VR::SH, true),
];

/// One referenced instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRef {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

/// The source CT series as the report references it.
#[derive(Debug, Clone)]
pub struct SourceSeries {
    pub study_uid: String,
    pub series_uid: String,
    /// Every instance, in stored order.
    pub instances: Vec<InstanceRef>,
    /// The [`COPIED_STUDY_ATTRIBUTES`] present in the first instance, as elements.
    pub study_attributes: InMemDicomObject,
}

/// Which kind of DICOM segmentation the lesions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentationKind {
    /// DICOM SEG: a lesion label is its Segment Number.
    Seg,
    /// RT Structure Set: a lesion label is its ROI Number.
    RtStruct,
}

/// A DICOM segmentation the report points to.
#[derive(Debug, Clone)]
pub struct SegmentationRef {
    pub kind: SegmentationKind,
    pub study_uid: String,
    pub series_uid: String,
    pub instance: InstanceRef,
}

/// Read the header of one stored file (up to Pixel Data).
fn header(bytes: &[u8], index: usize) -> Result<InMemDicomObject, SrError> {
    let file = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Auto)
        .read_until(tags::PIXEL_DATA)
        .from_reader(std::io::Cursor::new(bytes))
        .map_err(|_| SrError::Source(format!("stored file {index} is not readable DICOM")))?;
    Ok(file.into_inner())
}

fn uid(obj: &InMemDicomObject, tag: Tag, keyword: &str, index: usize) -> Result<String, SrError> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| crate::dicom::sanitize_uid(&s))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SrError::Source(format!("stored file {index} has no {keyword}")))
}

fn instance_ref(obj: &InMemDicomObject, index: usize) -> Result<InstanceRef, SrError> {
    Ok(InstanceRef {
        sop_class_uid: uid(obj, tags::SOP_CLASS_UID, "SOPClassUID", index)?,
        sop_instance_uid: uid(obj, tags::SOP_INSTANCE_UID, "SOPInstanceUID", index)?,
    })
}

/// The source series from its stored instance files (in stored order).
pub fn read_source_series(files: &[&[u8]]) -> Result<SourceSeries, SrError> {
    let mut instances = Vec::with_capacity(files.len());
    let mut first = None;
    for (index, bytes) in files.iter().enumerate() {
        let obj = header(bytes, index)?;
        instances.push(instance_ref(&obj, index)?);
        if first.is_none() {
            first = Some(obj);
        }
    }
    let first = first.ok_or_else(|| SrError::Source("the series has no stored file".into()))?;
    let mut study_attributes = InMemDicomObject::new_empty();
    for (tag, _, _) in COPIED_STUDY_ATTRIBUTES {
        if let Ok(Some(e)) = first.element_opt(*tag) {
            study_attributes.put(e.clone());
        }
    }
    Ok(SourceSeries {
        study_uid: uid(&first, tags::STUDY_INSTANCE_UID, "StudyInstanceUID", 0)?,
        series_uid: uid(&first, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID", 0)?,
        instances,
        study_attributes,
    })
}

/// The identity of a stored DICOM segmentation of `kind`.
pub fn read_segmentation_ref(
    bytes: &[u8],
    kind: SegmentationKind,
) -> Result<SegmentationRef, SrError> {
    let obj = header(bytes, 0)?;
    Ok(SegmentationRef {
        kind,
        study_uid: uid(&obj, tags::STUDY_INSTANCE_UID, "StudyInstanceUID", 0)?,
        series_uid: uid(&obj, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID", 0)?,
        instance: instance_ref(&obj, 0)?,
    })
}
