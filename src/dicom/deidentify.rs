//! De-identification of stored instances on request (`?deidentify=true`): the DICOM
//! Basic Application Level Confidentiality Profile (PS3.15 E.1, Table E.1-1) with the
//! Retain UIDs Option (PS3.15 E.3.2).
//!
//! * Attributes the profile replaces with a zero-length value (action Z) keep their tag
//!   with an empty value, those it removes (X) are removed, and every private attribute is
//!   removed (PS3.15 E.3.10 is not offered), at the top level and inside the items of
//!   every sequence kept. Type 1 attributes the profile dummies (D)
//!   are not among those below: CT geometry, pixel data and rescale are untouched.
//! * UIDs are retained (the Retain UIDs Option), so a segmentation uploaded later still
//!   references the series and its frame of reference.
//! * PatientIdentityRemoved (0012,0062) is set to `YES` and DeidentificationMethod
//!   (0012,0063) names the profile and option.
//!
//! The file is rewritten in place in its own transfer syntax (pixel data bytes as read).

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;

use dicom_object::InMemDicomObject;

use super::{DicomError, parse_file};

/// PS3.15 Table E.1-1, action Z (zero-length value; type 2 in the CT IODs).
const ZERO: [Tag; 9] = [
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::ACCESSION_NUMBER,
    tags::STUDY_ID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
];

/// PS3.15 Table E.1-1, action X (removed). Retired attributes are listed too: old files
/// still carry them, and the profile removes them.
#[allow(deprecated)]
const REMOVE: [Tag; 69] = [
    tags::PATIENT_AGE,
    tags::PATIENT_BIRTH_TIME,
    tags::OTHER_PATIENT_I_DS,
    tags::OTHER_PATIENT_NAMES,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::PATIENT_ADDRESS,
    tags::PATIENT_MOTHER_BIRTH_NAME,
    tags::PATIENT_TELEPHONE_NUMBERS,
    tags::MILITARY_RANK,
    tags::ETHNIC_GROUP,
    tags::PATIENT_COMMENTS,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
    tags::MEDICAL_RECORD_LOCATOR,
    tags::ADDITIONAL_PATIENT_HISTORY,
    tags::OCCUPATION,
    tags::PATIENT_RELIGIOUS_PREFERENCE,
    tags::RESPONSIBLE_PERSON,
    tags::PATIENT_BIRTH_NAME,
    tags::COUNTRY_OF_RESIDENCE,
    tags::REGION_OF_RESIDENCE,
    tags::BRANCH_OF_SERVICE,
    tags::PATIENT_STATE,
    tags::PREGNANCY_STATUS,
    tags::SMOKING_STATUS,
    tags::ALLERGIES,
    tags::MEDICAL_ALERTS,
    tags::ISSUER_OF_PATIENT_ID,
    tags::PATIENT_INSURANCE_PLAN_CODE_SEQUENCE,
    tags::SERIES_DATE,
    tags::SERIES_TIME,
    tags::ACQUISITION_DATE,
    tags::ACQUISITION_TIME,
    tags::ACQUISITION_DATE_TIME,
    tags::CONTENT_DATE,
    tags::CONTENT_TIME,
    tags::INSTANCE_CREATION_DATE,
    tags::INSTANCE_CREATION_TIME,
    tags::INSTITUTION_NAME,
    tags::INSTITUTION_ADDRESS,
    tags::INSTITUTION_CODE_SEQUENCE,
    tags::INSTITUTIONAL_DEPARTMENT_NAME,
    tags::STATION_NAME,
    tags::REFERRING_PHYSICIAN_ADDRESS,
    tags::REFERRING_PHYSICIAN_TELEPHONE_NUMBERS,
    tags::PHYSICIANS_OF_RECORD,
    tags::PERFORMING_PHYSICIAN_NAME,
    tags::NAME_OF_PHYSICIANS_READING_STUDY,
    tags::OPERATORS_NAME,
    tags::REQUESTING_PHYSICIAN,
    tags::SCHEDULED_PERFORMING_PHYSICIAN_NAME,
    tags::PERSON_NAME,
    tags::STUDY_DESCRIPTION,
    tags::SERIES_DESCRIPTION,
    tags::STUDY_COMMENTS,
    tags::DEVICE_SERIAL_NUMBER,
    tags::PROTOCOL_NAME,
    tags::REQUEST_ATTRIBUTES_SEQUENCE,
    tags::REFERENCED_PATIENT_SEQUENCE,
    tags::REFERENCED_STUDY_SEQUENCE,
    tags::ADMITTING_DIAGNOSES_DESCRIPTION,
    tags::DERIVATION_DESCRIPTION,
    tags::IMAGE_COMMENTS,
    tags::FRAME_COMMENTS,
    tags::PERFORMED_PROCEDURE_STEP_ID,
    tags::PERFORMED_PROCEDURE_STEP_START_DATE,
    tags::PERFORMED_PROCEDURE_STEP_DESCRIPTION,
    tags::REQUESTED_PROCEDURE_ID,
    tags::SCHEDULED_PROCEDURE_STEP_ID,
];

/// Deepest sequence nesting scrubbed: the parser refuses deeper data sets before this
/// ([`super::precheck::MAX_SEQUENCE_DEPTH`]), so it only bounds the recursion.
const MAX_SCRUB_DEPTH: usize = 2 * super::precheck::MAX_SEQUENCE_DEPTH;

/// Apply the profile's actions to `obj` and, recursively, to every item of every sequence
/// it keeps (PS3.15 E.1: the actions apply wherever the attribute occurs, e.g. inside a
/// functional group or a referenced-image item): listed attributes removed or emptied,
/// private attributes removed.
fn scrub(obj: &mut InMemDicomObject, depth: usize) {
    for tag in REMOVE {
        obj.remove_element(tag);
    }
    for tag in ZERO {
        if let Ok(e) = obj.element(tag) {
            let vr = e.vr();
            obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
        }
    }
    let private: Vec<Tag> = obj
        .iter()
        .map(|e| e.header().tag)
        .filter(|t| t.group() % 2 == 1)
        .collect();
    for tag in private {
        obj.remove_element(tag);
    }
    if depth >= MAX_SCRUB_DEPTH {
        return;
    }
    let sequences: Vec<Tag> = obj
        .iter()
        .filter(|e| e.vr() == VR::SQ)
        .map(|e| e.header().tag)
        .collect();
    for tag in sequences {
        obj.update_value(tag, |value| {
            if let Some(items) = value.items_mut() {
                for item in items.iter_mut() {
                    scrub(item, depth + 1);
                }
            }
        });
    }
}

/// DeidentificationMethod (0012,0063): the profile and option applied.
pub const METHOD: &str = "PS3.15 E.1 Basic Profile; Retain UIDs Option (radscore)";

/// De-identify the instance file at `path` in place.
///
/// # Errors
/// The [`DicomError`] of a file that does not parse, or [`DicomError::Unsupported`] when
/// it cannot be written back.
pub fn deidentify_file(name: &str, path: &Path) -> Result<(), DicomError> {
    let bytes = std::fs::read(path).map_err(|source| DicomError::Io {
        path: name.to_owned(),
        source,
    })?;
    let mut obj = parse_file(name, &bytes)?;
    drop(bytes);
    scrub(&mut obj, 0);
    obj.put(DataElement::new(
        tags::PATIENT_IDENTITY_REMOVED,
        VR::CS,
        PrimitiveValue::from("YES"),
    ));
    obj.put(DataElement::new(
        tags::DEIDENTIFICATION_METHOD,
        VR::LO,
        PrimitiveValue::from(METHOD),
    ));
    obj.write_to_file(path)
        .map_err(|_| DicomError::Unsupported {
            file: name.to_owned(),
            what: "the de-identified instance cannot be written back in its transfer syntax",
        })
}
