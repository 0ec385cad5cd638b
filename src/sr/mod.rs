//! A job result as a DICOM Structured Report: the Measurement Report template (TID 1500,
//! PS3.16) in a Comprehensive 3D SR instance (PS3.3 A.35.13), built with dicom-rs.
//!
//! # Layout
//! - Same Study Instance UID as the source series, a new SR series and instance whose UIDs
//!   are derived from the job id (the same job always gives the same UIDs, so a re-push
//!   replaces rather than duplicates). Patient and study attributes are copied from the
//!   source ([`source::COPIED_STUDY_ATTRIBUTES`]) so a PACS files the report with its
//!   images; they are never logged.
//! - Current Requested Procedure Evidence Sequence: every source CT instance and, when the
//!   job's segmentation is DICOM, the SEG or RTSTRUCT instance.
//! - Root: language (TID 1204), observer context device (TID 1001/1004), procedure
//!   reported, Image Library (TID 1600) of the source instances, and Imaging Measurements
//!   with one Measurement Group (TID 1411) per lesion.
//! - Each group: Tracking Identifier (`lesion <label>` and its name), Tracking Unique
//!   Identifier, Finding = Neoplasm, Finding Site = the location (table below),
//!   Referenced Segment (SEG, with the lesion's segment number) or Region in Space
//!   (RTSTRUCT), Source series for segmentation, then NUM measurements: the response
//!   probability and every feature, each with Algorithm Name/Version (TID 4019).
//!
//! # Codes
//! | concept | code | scheme | why |
//! |---|---|---|---|
//! | finding site pleura | 3120008 | SCT | Pleural membrane structure |
//! | finding site lymph node | 59441001 | SCT | Structure of lymph node |
//! | finding site peritoneum | 15425007 | SCT | Peritoneum (serous membrane) structure |
//! | finding site soft tissue | 87784001 | SCT | Soft tissues |
//! | location `other` | — | — | no finding site (names no structure) |
//! | finding | 108369006 | SCT | Neoplasm |
//! | response probability | RESPPROB | 99RADSCORE | no public code; unit `1` (UCUM) |
//! | texture / morphology features | IBSI id, e.g. RNU0 | IBSI | as registered in PS3.16 |
//! | aggregation of a texture feature | tag suffix, e.g. `3D_avg` | 99RADSCORE | as Derivation (121401, DCM) |
//! | intensity statistics and unlisted features | the tag stem | 99RADSCORE | PS3.16 has no IBSI code for them |
//!
//! Values: every NUM carries Numeric Value (DS, 16 characters) and Floating Point Value
//! (FD) with the exact double, so readers get the value bit for bit.

pub mod codes;
pub mod content;
pub mod source;

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use sha2::{Digest, Sha256};

use crate::jobs::{JobResult, LesionResult};
use codes::OwnedCode;
use content::{Rel, put, put_seq};
pub use source::{SegmentationKind, SegmentationRef, SourceSeries};

/// Comprehensive 3D SR Storage (PS3.4 B.5), the SOP class highdicom and TID 1500 readers
/// expect.
pub const COMPREHENSIVE_3D_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.34";
/// Template Identifier of the root (PS3.16 TID 1500), with mapping resource DCMR.
pub const MEASUREMENT_REPORT_TEMPLATE: &str = "1500";
/// Series Number of the report series (a fixed high number keeps it after the images).
pub const REPORT_SERIES_NUMBER: &str = "9901";
/// Series Description of the report series.
pub const REPORT_SERIES_DESCRIPTION: &str = "radscore response prediction";
/// Manufacturer (General Equipment module) and device observer name.
pub const MANUFACTURER: &str = "radscore";
/// The media type of a DICOM file (PS3.18 8.7.3.5.1).
pub const DICOM_MEDIA_TYPE: &str = "application/dicom";

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SrError {
    /// A stored input lacks what the report references (never names a patient value).
    #[error("the stored input cannot be referenced: {0}")]
    Source(String),
    /// dicom-rs could not encode the report.
    #[error("the report could not be encoded: {0}")]
    Encode(String),
}

/// Everything a report is built from.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub result: &'a JobResult,
    pub source: &'a SourceSeries,
    /// The job's segmentation when it is DICOM SEG or RTSTRUCT.
    pub segmentation: Option<&'a SegmentationRef>,
    /// When the job finished (Content Date/Time), Unix milliseconds.
    pub finished_at_ms: i64,
}

/// A UID under the UUID arc 2.25 (PS3.5 B.2) derived from `parts`: the first 16 bytes of
/// SHA-256 as a version-8 UUID, so the same job always gets the same report UIDs.
pub fn derived_uid(parts: &[&str]) -> String {
    /// Namespace of report UIDs; changing it changes every report UID.
    const UID_NAMESPACE: &str = "radscore/sr/v1";
    let digest = Sha256::digest(format!("{UID_NAMESPACE}/{}", parts.join("/")));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format!(
        "2.25.{}",
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .as_u128()
    )
}

/// The report's series and instance UIDs for a job.
pub fn report_uids(job_id: &str) -> (String, String) {
    (
        derived_uid(&[job_id, "series"]),
        derived_uid(&[job_id, "instance"]),
    )
}

/// Build the report as a DICOM file (Part 10, explicit VR little endian).
pub fn build_report(input: &ReportInput) -> Result<Vec<u8>, SrError> {
    let (series_uid, instance_uid) = report_uids(&input.result.job_id);
    let mut obj = InMemDicomObject::new_empty();
    put_header(&mut obj, input, &series_uid, &instance_uid);
    put_evidence(&mut obj, input);
    put_document_content(&mut obj, input);

    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| SrError::Encode(e.to_string()))?;
    let mut out = Vec::new();
    file.write_all(&mut out)
        .map_err(|e| SrError::Encode(e.to_string()))?;
    Ok(out)
}

/// SOP Common, Patient, General Study, SR Document Series, General Equipment and SR
/// Document General modules (PS3.3 A.35.13).
fn put_header(obj: &mut InMemDicomObject, input: &ReportInput, series_uid: &str, uid: &str) {
    let (date, time) = dicom_date_time(input.finished_at_ms);
    // UTF-8, so copied names in any character set survive (PS3.3 C.12.1.1.2).
    put(obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(
        obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        COMPREHENSIVE_3D_SR_STORAGE,
    );
    put(obj, tags::SOP_INSTANCE_UID, VR::UI, uid);
    put(obj, tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str());
    put(obj, tags::INSTANCE_CREATION_TIME, VR::TM, time.as_str());
    put(obj, tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000");

    for (tag, vr, type2) in source::COPIED_STUDY_ATTRIBUTES {
        match input.source.study_attributes.element_opt(*tag) {
            Ok(Some(e)) => {
                obj.put(e.clone());
            }
            _ if *type2 => put(obj, *tag, *vr, ""),
            _ => {}
        }
    }
    put(
        obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        input.source.study_uid.as_str(),
    );

    put(obj, tags::MODALITY, VR::CS, "SR");
    put(obj, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put(obj, tags::SERIES_NUMBER, VR::IS, REPORT_SERIES_NUMBER);
    put(
        obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        REPORT_SERIES_DESCRIPTION,
    );
    put_seq(
        obj,
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    );
    put(obj, tags::MANUFACTURER, VR::LO, MANUFACTURER);
    put(
        obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );

    put(obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(obj, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put(obj, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    put(obj, tags::CONTENT_DATE, VR::DA, date.as_str());
    put(obj, tags::CONTENT_TIME, VR::TM, time.as_str());
    put_seq(obj, tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]);
    put_private_scheme(obj);
}

/// Coding Scheme Identification Sequence (PS3.3 C.12.1.1.5) naming the private scheme.
fn put_private_scheme(obj: &mut InMemDicomObject) {
    let mut item = InMemDicomObject::new_empty();
    put(
        &mut item,
        tags::CODING_SCHEME_DESIGNATOR,
        VR::SH,
        codes::PRIVATE_SCHEME,
    );
    put(
        &mut item,
        tags::CODING_SCHEME_NAME,
        VR::ST,
        codes::PRIVATE_SCHEME_NAME,
    );
    put(
        &mut item,
        tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
        VR::ST,
        MANUFACTURER,
    );
    put_seq(obj, tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE, vec![item]);
}

/// Current Requested Procedure Evidence Sequence (PS3.3 C.17.2.3): the source series and
/// the segmentation, grouped by study and series.
fn put_evidence(obj: &mut InMemDicomObject, input: &ReportInput) {
    let mut series = vec![(
        input.source.study_uid.clone(),
        input.source.series_uid.clone(),
        input.source.instances.clone(),
    )];
    if let Some(seg) = input.segmentation {
        series.push((
            seg.study_uid.clone(),
            seg.series_uid.clone(),
            vec![seg.instance.clone()],
        ));
    }
    let mut studies: Vec<(String, Vec<InMemDicomObject>)> = Vec::new();
    for (study_uid, series_uid, instances) in series {
        let mut item = InMemDicomObject::new_empty();
        put(
            &mut item,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            series_uid.as_str(),
        );
        let refs = instances
            .iter()
            .map(|i| content::sop_reference(&i.sop_class_uid, &i.sop_instance_uid))
            .collect();
        put_seq(&mut item, tags::REFERENCED_SOP_SEQUENCE, refs);
        match studies.iter_mut().find(|(s, _)| *s == study_uid) {
            Some((_, items)) => items.push(item),
            None => studies.push((study_uid, vec![item])),
        }
    }
    let items = studies
        .into_iter()
        .map(|(study_uid, series_items)| {
            let mut item = InMemDicomObject::new_empty();
            put(
                &mut item,
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                study_uid.as_str(),
            );
            put_seq(&mut item, tags::REFERENCED_SERIES_SEQUENCE, series_items);
            item
        })
        .collect();
    put_seq(
        obj,
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        items,
    );
}

/// The root content item of TID 1500 and its children.
fn put_document_content(obj: &mut InMemDicomObject, input: &ReportInput) {
    put(obj, tags::VALUE_TYPE, VR::CS, "CONTAINER");
    put_seq(
        obj,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![content::code_item(&OwnedCode::from(
            codes::IMAGING_MEASUREMENT_REPORT,
        ))],
    );
    put(obj, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    let mut template = InMemDicomObject::new_empty();
    put(&mut template, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
    put(
        &mut template,
        tags::TEMPLATE_IDENTIFIER,
        VR::CS,
        MEASUREMENT_REPORT_TEMPLATE,
    );
    put_seq(obj, tags::CONTENT_TEMPLATE_SEQUENCE, vec![template]);

    let mut children = vec![
        content::code(
            Rel::HasConceptMod,
            codes::LANGUAGE_OF_CONTENT,
            &codes::ENGLISH_US.into(),
        ),
        content::code(
            Rel::HasObsContext,
            codes::OBSERVER_TYPE,
            &codes::DEVICE.into(),
        ),
        content::uidref(
            Rel::HasObsContext,
            codes::DEVICE_OBSERVER_UID,
            &derived_uid(&["device", MANUFACTURER]),
        ),
        content::text(
            Rel::HasObsContext,
            codes::DEVICE_OBSERVER_NAME,
            MANUFACTURER,
        ),
        content::text(
            Rel::HasObsContext,
            codes::DEVICE_OBSERVER_MANUFACTURER,
            MANUFACTURER,
        ),
        content::code(
            Rel::HasConceptMod,
            codes::PROCEDURE_REPORTED,
            &codes::COMPUTED_TOMOGRAPHY.into(),
        ),
    ];
    children.push(image_library(input.source));
    let groups = input
        .result
        .lesions
        .iter()
        .map(|lesion| measurement_group(input, lesion))
        .collect();
    children.push(content::container(
        Rel::Contains,
        codes::IMAGING_MEASUREMENTS,
        groups,
    ));
    put_seq(obj, tags::CONTENT_SEQUENCE, children);
}

/// Image Library (TID 1600) with one group listing the source instances.
fn image_library(source: &SourceSeries) -> InMemDicomObject {
    let images = source
        .instances
        .iter()
        .map(|i| {
            content::image(
                Rel::Contains,
                None,
                content::sop_reference(&i.sop_class_uid, &i.sop_instance_uid),
            )
        })
        .collect();
    let group = content::container(Rel::Contains, codes::IMAGE_LIBRARY_GROUP, images);
    content::container(Rel::Contains, codes::IMAGE_LIBRARY, vec![group])
}

/// Measurement Group (TID 1411) of one lesion.
fn measurement_group(input: &ReportInput, lesion: &LesionResult) -> InMemDicomObject {
    let tracking = match &lesion.name {
        Some(name) => format!("lesion {} {name}", lesion.label),
        None => format!("lesion {}", lesion.label),
    };
    let label = lesion.label.to_string();
    let mut items = vec![
        content::text(Rel::HasObsContext, codes::TRACKING_IDENTIFIER, &tracking),
        content::uidref(
            Rel::HasObsContext,
            codes::TRACKING_UNIQUE_IDENTIFIER,
            &derived_uid(&[&input.result.job_id, "lesion", &label]),
        ),
        content::code(Rel::Contains, codes::FINDING, &codes::NEOPLASM.into()),
    ];
    if let Some(site) = codes::finding_site(lesion.location) {
        items.push(content::code(
            Rel::HasConceptMod,
            codes::FINDING_SITE,
            &site.into(),
        ));
    }
    items.extend(segmentation_reference(input, lesion.label));
    items.extend(measurements(input.result, lesion));
    content::container(Rel::Contains, codes::MEASUREMENT_GROUP, items)
}

/// Referenced Segment (SEG) or Region in Space (RTSTRUCT), then Source series for
/// segmentation; nothing for a NIfTI or NRRD label map, which DICOM cannot reference.
fn segmentation_reference(input: &ReportInput, label: u32) -> Vec<InMemDicomObject> {
    let Some(seg) = input.segmentation else {
        return Vec::new();
    };
    let mut reference =
        content::sop_reference(&seg.instance.sop_class_uid, &seg.instance.sop_instance_uid);
    let referenced = match seg.kind {
        SegmentationKind::Seg => {
            let number = u16::try_from(label).unwrap_or(u16::MAX);
            put(
                &mut reference,
                tags::REFERENCED_SEGMENT_NUMBER,
                VR::US,
                number,
            );
            content::image(Rel::Contains, Some(codes::REFERENCED_SEGMENT), reference)
        }
        // LIMITATION: TID 1411 has no standard pointer to one ROI of an RTSTRUCT; the
        // structure set is referenced and the ROI number is in the Tracking Identifier.
        SegmentationKind::RtStruct => {
            content::composite(Rel::Contains, codes::REGION_IN_SPACE, reference)
        }
    };
    vec![
        referenced,
        content::uidref(
            Rel::Contains,
            codes::SOURCE_SERIES_FOR_SEGMENTATION,
            &input.source.series_uid,
        ),
    ]
}

/// Algorithm Identification (TID 4019) as modifiers of a measurement.
fn algorithm(name: &str, version: &str, parameters: Option<&str>) -> Vec<InMemDicomObject> {
    let mut items = vec![
        content::text(Rel::HasConceptMod, codes::ALGORITHM_NAME, name),
        content::text(Rel::HasConceptMod, codes::ALGORITHM_VERSION, version),
    ];
    if let Some(p) = parameters {
        items.push(content::text(
            Rel::HasConceptMod,
            codes::ALGORITHM_PARAMETERS,
            p,
        ));
    }
    items
}

/// The probability (by the job's model) and every feature (by radscore's extractor).
fn measurements(result: &JobResult, lesion: &LesionResult) -> Vec<InMemDicomObject> {
    let mut items = Vec::with_capacity(lesion.features.len() + 1);
    if let Some(p) = lesion.response_probability {
        items.push(content::num(
            Rel::Contains,
            &codes::RESPONSE_PROBABILITY.into(),
            p,
            &codes::NO_UNITS.into(),
            algorithm(&result.model.name, &result.model.version, None),
        ));
    }
    let settings = format!("settings {} {}", result.settings_name, result.settings_hash);
    for (tag, value) in &lesion.features {
        let Some(v) = value.as_f64() else { continue };
        let concept = codes::feature_concept(tag);
        let mut modifiers = Vec::new();
        if let Some(d) = &concept.derivation {
            modifiers.push(content::code(Rel::HasConceptMod, codes::DERIVATION, d));
        }
        modifiers.extend(algorithm(
            MANUFACTURER,
            env!("CARGO_PKG_VERSION"),
            Some(&settings),
        ));
        items.push(content::num(
            Rel::Contains,
            &concept.name,
            v,
            &OwnedCode::from(concept.unit),
            modifiers,
        ));
    }
    items
}

/// DA and TM (UTC) of Unix milliseconds.
fn dicom_date_time(ms: i64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (
        format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day()),
        format!("{:02}{:02}{:02}", t.hour(), t.minute(), t.second()),
    )
}
