//! SR content items (PS3.3 C.17.3, Table C.17-5 Document Content Macro) as dicom-rs data
//! sets: one constructor per value type radscore emits.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::codes::{Code, OwnedCode};

/// Longest Code Value (SH, PS3.5 6.2); longer values go to Long Code Value (UC).
pub const MAX_CODE_VALUE_CHARS: usize = 16;

/// Relationship Type (PS3.3 C.17.3.2.4).
#[derive(Debug, Clone, Copy)]
pub enum Rel {
    Contains,
    HasConceptMod,
    HasObsContext,
}

impl Rel {
    fn as_str(self) -> &'static str {
        match self {
            Rel::Contains => "CONTAINS",
            Rel::HasConceptMod => "HAS CONCEPT MOD",
            Rel::HasObsContext => "HAS OBS CONTEXT",
        }
    }
}

/// Put a primitive element.
pub fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// Put a sequence of `items`.
pub fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// One Code Sequence item (PS3.3 Table 8.8-1).
pub fn code_item(code: &OwnedCode) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    if code.value.chars().count() > MAX_CODE_VALUE_CHARS {
        put(
            &mut item,
            tags::LONG_CODE_VALUE,
            VR::UC,
            code.value.as_str(),
        );
    } else {
        put(&mut item, tags::CODE_VALUE, VR::SH, code.value.as_str());
    }
    put(
        &mut item,
        tags::CODING_SCHEME_DESIGNATOR,
        VR::SH,
        code.scheme.as_str(),
    );
    put(&mut item, tags::CODE_MEANING, VR::LO, code.meaning.as_str());
    item
}

/// A content item of `value_type` named `name`.
fn item(rel: Rel, value_type: &str, name: Code) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::RELATIONSHIP_TYPE, VR::CS, rel.as_str());
    put(&mut obj, tags::VALUE_TYPE, VR::CS, value_type);
    put_seq(
        &mut obj,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code_item(&OwnedCode::from(name))],
    );
    obj
}

/// CONTAINER with separate content (PS3.3 C.18.8) holding `children`.
pub fn container(rel: Rel, name: Code, children: Vec<InMemDicomObject>) -> InMemDicomObject {
    let mut obj = item(rel, "CONTAINER", name);
    put(&mut obj, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put_seq(&mut obj, tags::CONTENT_SEQUENCE, children);
    obj
}

/// CODE item (PS3.3 C.18.2).
pub fn code(rel: Rel, name: Code, value: &OwnedCode) -> InMemDicomObject {
    let mut obj = item(rel, "CODE", name);
    put_seq(
        &mut obj,
        tags::CONCEPT_CODE_SEQUENCE,
        vec![code_item(value)],
    );
    obj
}

/// TEXT item (PS3.3 C.17.3.2.1).
pub fn text(rel: Rel, name: Code, value: &str) -> InMemDicomObject {
    let mut obj = item(rel, "TEXT", name);
    put(&mut obj, tags::TEXT_VALUE, VR::UT, value);
    obj
}

/// UIDREF item.
pub fn uidref(rel: Rel, name: Code, uid: &str) -> InMemDicomObject {
    let mut obj = item(rel, "UIDREF", name);
    put(&mut obj, tags::UID, VR::UI, uid);
    obj
}

/// NUM item (PS3.3 C.18.1, Numeric Measurement Macro): the value as Numeric Value (DS,
/// at most 16 characters) and, because DS cannot hold every double, also as Floating
/// Point Value (FD, C.18.1.1: "the value with full precision"). `modifiers` become the
/// item's own content (HAS CONCEPT MOD children).
pub fn num(
    rel: Rel,
    name: &OwnedCode,
    value: f64,
    unit: &OwnedCode,
    modifiers: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::RELATIONSHIP_TYPE, VR::CS, rel.as_str());
    put(&mut obj, tags::VALUE_TYPE, VR::CS, "NUM");
    put_seq(
        &mut obj,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code_item(name)],
    );
    let mut measured = InMemDicomObject::new_empty();
    put(
        &mut measured,
        tags::NUMERIC_VALUE,
        VR::DS,
        decimal_string(value),
    );
    put(&mut measured, tags::FLOATING_POINT_VALUE, VR::FD, value);
    put_seq(
        &mut measured,
        tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
        vec![code_item(unit)],
    );
    put_seq(&mut obj, tags::MEASURED_VALUE_SEQUENCE, vec![measured]);
    if !modifiers.is_empty() {
        put_seq(&mut obj, tags::CONTENT_SEQUENCE, modifiers);
    }
    obj
}

/// A reference to one SOP instance (PS3.3 Table 10-11 SOP Instance Reference Macro).
pub fn sop_reference(sop_class: &str, sop_instance: &str) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::REFERENCED_SOP_CLASS_UID, VR::UI, sop_class);
    put(
        &mut obj,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        sop_instance,
    );
    obj
}

/// IMAGE item (PS3.3 C.18.4) referencing `reference` (a [`sop_reference`], possibly with
/// Referenced Segment Number), named `name` or unnamed (Image Library entries).
pub fn image(rel: Rel, name: Option<Code>, reference: InMemDicomObject) -> InMemDicomObject {
    let mut obj = match name {
        Some(name) => item(rel, "IMAGE", name),
        None => {
            let mut obj = InMemDicomObject::new_empty();
            put(&mut obj, tags::RELATIONSHIP_TYPE, VR::CS, rel.as_str());
            put(&mut obj, tags::VALUE_TYPE, VR::CS, "IMAGE");
            obj
        }
    };
    put_seq(&mut obj, tags::REFERENCED_SOP_SEQUENCE, vec![reference]);
    obj
}

/// COMPOSITE item (PS3.3 C.18.3) referencing one instance.
pub fn composite(rel: Rel, name: Code, reference: InMemDicomObject) -> InMemDicomObject {
    let mut obj = item(rel, "COMPOSITE", name);
    put_seq(&mut obj, tags::REFERENCED_SOP_SEQUENCE, vec![reference]);
    obj
}

/// A Decimal String (PS3.5 6.2: at most 16 characters) closest to `v`: the shortest
/// round-trip text if it fits, else fewer significant digits in scientific notation.
pub fn decimal_string(v: f64) -> String {
    let exact = format!("{v}");
    if exact.len() <= 16 {
        return exact;
    }
    // Sign, digit, point, `e-308`: 9 characters besides the fraction digits.
    (0..=15)
        .rev()
        .map(|digits| format!("{v:.digits$e}"))
        .find(|s| s.len() <= 16)
        .unwrap_or_else(|| "0".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        for v in [
            0.123_456_789_012_345_68,
            -123456.789012345,
            1e-300,
            -2.5e307,
            0.5,
            12.0,
        ] {
            let s = decimal_string(v);
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= v.abs() * 1e-9, "{v} -> {s}");
        }
        assert_eq!(decimal_string(0.5), "0.5");
    }
}
