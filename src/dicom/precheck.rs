//! A structural pre-check of a DICOM Part 10 stream, run before dicom-rs parses it.
//!
//! dicom-rs reads nested sequences recursively and allocates element values from their
//! declared lengths. A hostile file can therefore exhaust the stack with thousands of
//! nested sequences, or ask for gigabytes with one oversized length. This walker visits
//! every element header iteratively (no recursion), with no allocation proportional to a
//! declared length, and refuses:
//!
//! * nesting deeper than [`MAX_SEQUENCE_DEPTH`] sequences;
//! * a declared value length that runs past the end of its container or of the file;
//! * a header cut off by the end of the file.
//!
//! Encodings (DICOM PS3.5 section 7): the file meta group is always Explicit VR Little
//! Endian; the data set follows the Transfer Syntax UID. Implicit VR elements take their VR
//! from the standard dictionary, so sequences of defined length are found there too. A
//! deflated data set (PS3.5 A.5) is inflated here with a cap of
//! [`MAX_INFLATED_DATA_SET_BYTES`] (a deflate bomb stops at the cap) and then walked as
//! Explicit VR Little Endian.

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use super::DicomError;

/// Deepest sequence nesting accepted. Real objects nest a few levels (a SEG's per-frame
/// functional groups reach about 4); 32 leaves a wide margin and keeps dicom-rs's
/// recursive reader far from the stack limit.
pub const MAX_SEQUENCE_DEPTH: usize = 32;

/// PS3.10 7.1: a 128-byte preamble followed by the magic `DICM`.
const PREAMBLE_BYTES: usize = 128;
const MAGIC: &[u8; 4] = b"DICM";
/// PS3.5 7.1.2: value length "undefined" (the value ends with a delimitation item).
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;
/// PS3.5 7.5: item, item delimitation and sequence delimitation tags (group FFFE).
const ITEM_GROUP: u16 = 0xFFFE;
const ITEM: u16 = 0xE000;
const ITEM_DELIMITATION: u16 = 0xE00D;
const SEQUENCE_DELIMITATION: u16 = 0xE0DD;
/// PS3.6: (7FE0,0010) Pixel Data; undefined length means encapsulated fragments.
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
/// PS3.6: (0002,0010) Transfer Syntax UID.
const TRANSFER_SYNTAX: Tag = Tag(0x0002, 0x0010);
/// PS3.5 A.1: Implicit VR Little Endian.
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// PS3.5 A.5: Deflated Explicit VR Little Endian (raw RFC 1951 deflate after the meta group).
const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
/// PS3.5 A.3 (retired): Explicit VR Big Endian, which this walker does not read.
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// Largest inflated size of a deflated data set, bytes. A CT instance is well below it (an
/// enhanced CT of 1,000 frames of 512 × 512 × 16 bit is 500 MiB); a deflate bomb is cut off
/// here instead of in dicom-rs, which would inflate without bound.
pub const MAX_INFLATED_DATA_SET_BYTES: u64 = 1 << 30;

/// What a nesting level holds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A sequence value: items and a sequence delimitation.
    Sequence,
    /// An item value: data elements.
    Item,
    /// Encapsulated pixel data: fragment items.
    Fragments,
}

#[derive(Clone, Copy)]
struct Level {
    kind: Kind,
    /// End offset for a defined length, `None` for an undefined length.
    end: Option<usize>,
}

/// Bytes that decide whether a stream opens as DICOM Part 10: the preamble and the magic.
pub const PART10_HEAD_BYTES: usize = PREAMBLE_BYTES + MAGIC.len();

/// Where the file meta group of a Part 10 stream starts: after `DICM` following the
/// 128-byte preamble, or at the start (a stream written without the preamble, which
/// dicom-rs also reads); `None` when `bytes` (at least its first [`PART10_HEAD_BYTES`])
/// is not Part 10.
pub fn part10_meta_start(bytes: &[u8]) -> Option<usize> {
    if bytes.get(PREAMBLE_BYTES..PART10_HEAD_BYTES) == Some(MAGIC) {
        Some(PART10_HEAD_BYTES)
    } else if bytes.get(..MAGIC.len()) == Some(MAGIC) {
        Some(MAGIC.len())
    } else {
        None
    }
}

/// Check the structure of one file; `Ok` when dicom-rs may parse it safely. The value is
/// the Transfer Syntax UID of the file meta group (padding trimmed), when there is one.
///
/// Streams without the Part 10 header are passed through unchecked: dicom-rs refuses or
/// handles them on its own. Explicit VR Big Endian (retired in 2004, PS3.5 A.3) is refused:
/// this walker does not read it, and unchecked, a 6 KB big-endian file declaring a 2.7 GB
/// element made the decoder allocate that much (found by the `seg` fuzz target).
pub fn check(file: &str, bytes: &[u8]) -> Result<Option<String>, DicomError> {
    let Some(start) = part10_meta_start(bytes) else {
        return Ok(None);
    };
    let mut walker = Walker {
        file,
        bytes,
        pos: start,
        explicit: true,
        levels: Vec::new(),
    };
    let transfer_syntax = walker.meta_group()?;
    let ts = transfer_syntax.trim_end_matches(['\0', ' ']).to_owned();
    if ts == EXPLICIT_VR_BE {
        return Err(DicomError::UnsupportedTransferSyntax {
            file: file.to_owned(),
            uid: ts,
            name: "Explicit VR Big Endian (retired)",
            reason: "this retired encoding is refused; send the file in Explicit VR Little Endian",
        });
    }
    if ts == DEFLATED_EXPLICIT_VR_LE {
        let deflated = &bytes[walker.pos..];
        let inflated = inflate_capped(file, deflated, walker.pos, MAX_INFLATED_DATA_SET_BYTES)?;
        let mut inner = Walker {
            file,
            bytes: &inflated,
            pos: 0,
            explicit: true,
            levels: Vec::new(),
        };
        inner.data_set()?;
        return Ok(Some(ts));
    }
    walker.explicit = ts != IMPLICIT_VR_LE;
    walker.data_set()?;
    Ok(Some(ts))
}

/// Inflate a deflated data set, refusing one that inflates beyond `cap` bytes or is not a
/// valid deflate stream.
fn inflate_capped(
    file: &str,
    deflated: &[u8],
    offset: usize,
    cap: u64,
) -> Result<Vec<u8>, DicomError> {
    let malformed = |reason: String| DicomError::Malformed {
        file: file.to_owned(),
        offset,
        reason,
    };
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(cap.saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(|_| malformed("the deflated data set is not a valid deflate stream".into()))?;
    if inflated.len() as u64 > cap {
        return Err(malformed(format!(
            "the deflated data set inflates beyond {cap} bytes"
        )));
    }
    Ok(inflated)
}

struct Walker<'a> {
    file: &'a str,
    bytes: &'a [u8],
    pos: usize,
    explicit: bool,
    levels: Vec<Level>,
}

impl Walker<'_> {
    fn malformed(&self, reason: String) -> DicomError {
        DicomError::Malformed {
            file: self.file.to_owned(),
            offset: self.pos,
            reason,
        }
    }

    fn u16_at(&self, at: usize) -> Result<u16, DicomError> {
        let b = self.bytes.get(at..at + 2).ok_or_else(|| self.truncated())?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32_at(&self, at: usize) -> Result<u32, DicomError> {
        let b = self.bytes.get(at..at + 4).ok_or_else(|| self.truncated())?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn truncated(&self) -> DicomError {
        self.malformed("the file ends inside an element header".into())
    }

    /// Walk the file meta group (always explicit VR LE); returns the transfer syntax UID.
    fn meta_group(&mut self) -> Result<String, DicomError> {
        let mut transfer_syntax = String::new();
        while self.bytes.len() >= self.pos + 4 && self.u16_at(self.pos)? == 0x0002 {
            let tag = Tag(0x0002, self.u16_at(self.pos + 2)?);
            let (vr, len, header) = self.explicit_header()?;
            let value_at = self.pos + header;
            if vr == Some(VR::SQ) || len == UNDEFINED_LENGTH {
                return Err(self.malformed("the file meta group holds a sequence".into()));
            }
            let end = self.value_end(value_at, len, self.bytes.len(), tag)?;
            if tag == TRANSFER_SYNTAX {
                transfer_syntax = String::from_utf8_lossy(&self.bytes[value_at..end]).into_owned();
            }
            self.pos = end;
        }
        Ok(transfer_syntax)
    }

    /// Explicit VR header at `pos`: (VR if known, value length, header size).
    fn explicit_header(&self) -> Result<(Option<VR>, u32, usize), DicomError> {
        let code = self
            .bytes
            .get(self.pos + 4..self.pos + 6)
            .ok_or_else(|| self.truncated())?;
        let vr = VR::from_binary([code[0], code[1]]);
        if vr.is_none() {
            // An unknown VR code leaves the length field's size ambiguous; readers disagree
            // on it, so a file that relies on either reading is refused.
            return Err(self.malformed(format!(
                "unknown value representation code {:02X}{:02X}",
                code[0], code[1]
            )));
        }
        // PS3.5 7.1.2: these VRs have 2 reserved bytes and a 32-bit length.
        let long = matches!(
            vr,
            Some(VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::SQ | VR::SV)
                | Some(VR::UC | VR::UN | VR::UR | VR::UT | VR::UV)
        );
        if long {
            Ok((vr, self.u32_at(self.pos + 8)?, 12))
        } else {
            Ok((vr, u32::from(self.u16_at(self.pos + 6)?), 8))
        }
    }

    /// End offset of a value of defined length, checked against its container.
    fn value_end(&self, at: usize, len: u32, limit: usize, tag: Tag) -> Result<usize, DicomError> {
        let end = at.checked_add(len as usize).filter(|&e| e <= limit);
        end.ok_or_else(|| {
            self.malformed(format!(
                "element ({:04X},{:04X}) declares {len} bytes but only {} remain",
                tag.0,
                tag.1,
                limit.saturating_sub(at)
            ))
        })
    }

    /// The end of the innermost container of defined length, else the file end.
    fn limit(&self) -> usize {
        self.levels
            .iter()
            .rev()
            .find_map(|l| l.end)
            .unwrap_or(self.bytes.len())
    }

    fn push(&mut self, kind: Kind, end: Option<usize>) -> Result<(), DicomError> {
        let sequences = self
            .levels
            .iter()
            .filter(|l| l.kind == Kind::Sequence)
            .count();
        if kind == Kind::Sequence && sequences >= MAX_SEQUENCE_DEPTH {
            return Err(self.malformed(format!(
                "sequences are nested deeper than {MAX_SEQUENCE_DEPTH} levels"
            )));
        }
        self.levels.push(Level { kind, end });
        Ok(())
    }

    /// Walk the data set to its end without recursion.
    fn data_set(&mut self) -> Result<(), DicomError> {
        loop {
            // Close containers of defined length that end here.
            while let Some(level) = self.levels.last() {
                match level.end {
                    Some(end) if self.pos >= end => {
                        self.levels.pop();
                    }
                    _ => break,
                }
            }
            if self.pos >= self.bytes.len() {
                return Ok(()); // dicom-rs reports unterminated undefined-length values itself
            }
            let group = self.u16_at(self.pos)?;
            let element = self.u16_at(self.pos + 2)?;
            if group == ITEM_GROUP {
                self.item_tag(element)?;
            } else if self.levels.last().is_some_and(|l| l.kind != Kind::Item) {
                return Err(self.malformed(format!(
                    "element ({group:04X},{element:04X}) where an item was expected"
                )));
            } else {
                self.element(Tag(group, element))?;
            }
        }
    }

    fn item_tag(&mut self, element: u16) -> Result<(), DicomError> {
        let len = self.u32_at(self.pos + 4)?;
        self.pos += 8;
        let parent = self.levels.last().map(|l| l.kind);
        match element {
            ITEM if parent == Some(Kind::Fragments) => {
                self.pos = self.value_end(self.pos, len, self.limit(), Tag(ITEM_GROUP, ITEM))?;
            }
            ITEM if parent == Some(Kind::Sequence) => {
                let end = if len == UNDEFINED_LENGTH {
                    None
                } else {
                    Some(self.value_end(self.pos, len, self.limit(), Tag(ITEM_GROUP, ITEM))?)
                };
                self.push(Kind::Item, end)?;
            }
            ITEM_DELIMITATION if parent == Some(Kind::Item) => {
                self.levels.pop();
            }
            SEQUENCE_DELIMITATION if matches!(parent, Some(Kind::Sequence | Kind::Fragments)) => {
                self.levels.pop();
            }
            _ => {
                return Err(self.malformed(format!(
                    "unexpected item tag (FFFE,{element:04X}) at this nesting level"
                )));
            }
        }
        Ok(())
    }

    fn element(&mut self, tag: Tag) -> Result<(), DicomError> {
        let (vr, len, header) = if self.explicit {
            self.explicit_header()?
        } else {
            let vr = StandardDataDictionary
                .by_tag(tag)
                .and_then(|e| match e.vr() {
                    VirtualVr::Exact(vr) => Some(vr),
                    _ => None,
                });
            (vr, self.u32_at(self.pos + 4)?, 8)
        };
        self.pos += header;
        let undefined = len == UNDEFINED_LENGTH;
        if tag == PIXEL_DATA && undefined {
            return self.push(Kind::Fragments, None);
        }
        // An undefined length outside pixel data is a sequence (PS3.5 7.5; UN per 6.2.2).
        if vr == Some(VR::SQ) || undefined {
            let end = if undefined {
                None
            } else {
                Some(self.value_end(self.pos, len, self.limit(), tag)?)
            };
            return self.push(Kind::Sequence, end);
        }
        self.pos = self.value_end(self.pos, len, self.limit(), tag)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal Part 10 stream: preamble, meta group with the transfer syntax, data set.
    fn part10(ts: &str, data_set: &[u8]) -> Vec<u8> {
        let mut ts_bytes = ts.as_bytes().to_vec();
        if ts_bytes.len() % 2 == 1 {
            ts_bytes.push(0);
        }
        let mut out = vec![0u8; PREAMBLE_BYTES];
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        out.extend_from_slice(&(ts_bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&ts_bytes);
        out.extend_from_slice(data_set);
        out
    }

    fn nested_sequences(depth: usize) -> Vec<u8> {
        let open = [
            0x09, 0x00, 0x10, 0x10, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        let item = [0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
        let item_end = [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0];
        let seq_end = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        let mut ds = Vec::new();
        for _ in 0..depth {
            ds.extend_from_slice(&open);
            ds.extend_from_slice(&item);
        }
        for _ in 0..depth {
            ds.extend_from_slice(&item_end);
            ds.extend_from_slice(&seq_end);
        }
        ds
    }

    #[test]
    fn shallow_nesting_passes_and_deep_nesting_is_refused() {
        let ok = part10("1.2.840.10008.1.2.1", &nested_sequences(4));
        assert!(check("a.dcm", &ok).is_ok());
        let deep = part10("1.2.840.10008.1.2.1", &nested_sequences(5000));
        let err = check("b.dcm", &deep).unwrap_err().to_string();
        assert!(err.contains("nested deeper than 32"), "{err}");
        assert!(err.contains("b.dcm"));
    }

    #[test]
    fn oversized_declared_length_is_refused() {
        // (7FE0,0010) OW with a 4 GB length in a 20-byte file.
        let ds = [
            0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF, 1, 2,
        ];
        let err = check("c.dcm", &part10("1.2.840.10008.1.2.1", &ds))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(7FE0,0010) declares 4294967280 bytes"),
            "{err}"
        );
    }

    #[test]
    fn implicit_vr_uses_the_dictionary_for_defined_length_sequences() {
        // (0008,1140) ReferencedImageSequence, implicit VR, defined length 8, one empty item.
        let ds = [
            0x08, 0x00, 0x40, 0x11, 8, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0,
        ];
        assert!(check("d.dcm", &part10(IMPLICIT_VR_LE, &ds)).is_ok());
        let bad = [
            0x08, 0x00, 0x40, 0x11, 8, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 9, 0, 0, 0,
        ];
        assert!(check("e.dcm", &part10(IMPLICIT_VR_LE, &bad)).is_err());
    }

    #[test]
    fn deflated_data_sets_are_walked_and_bombs_stop_at_the_cap() {
        use std::io::Write;
        let deflate = |data: &[u8]| {
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        };
        let nested = deflate(&nested_sequences(4));
        let ts = check("g.dcm", &part10(DEFLATED_EXPLICIT_VR_LE, &nested)).unwrap();
        assert_eq!(ts.as_deref(), Some(DEFLATED_EXPLICIT_VR_LE));
        let deep = deflate(&nested_sequences(5000));
        assert!(check("h.dcm", &part10(DEFLATED_EXPLICIT_VR_LE, &deep)).is_err());

        let bomb = deflate(&vec![0u8; 1 << 20]);
        let err = inflate_capped("i.dcm", &bomb, 0, 1 << 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("inflates beyond 65536 bytes"), "{err}");
        let err = inflate_capped("j.dcm", b"not deflate \xff\xff", 0, 1 << 16).unwrap_err();
        assert!(
            err.to_string().contains("not a valid deflate stream"),
            "{err}"
        );
    }

    #[test]
    fn big_endian_data_sets_are_refused() {
        let ds = [0x08, 0x00, 0x60, 0x00, b'C', b'S', 0x00, 0x02, b'C', b'T'];
        let err = check("be.dcm", &part10(EXPLICIT_VR_BE, &ds)).unwrap_err();
        assert!(
            matches!(err, DicomError::UnsupportedTransferSyntax { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Big Endian"), "{err}");
        // The fuzz finding itself (fuzz/regressions/): refused before dicom-rs reads it.
        let found = include_bytes!("../../fuzz/regressions/seg-big-endian-declared-length.dcm");
        assert!(check("found.dcm", found).is_err());
    }

    #[test]
    fn truncated_header_is_refused() {
        let ds = [0x08, 0x00, 0x60];
        assert!(check("f.dcm", &part10("1.2.840.10008.1.2.1", &ds)).is_err());
    }
}
