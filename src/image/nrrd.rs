//! NRRD images and label maps (teem "Nearly Raw Raster Data", format versions
//! `NRRD0001`…`NRRD0005`), as written by 3D Slicer, ITK/SimpleITK, pynrrd and the
//! PyRadiomics test data.
//!
//! A NRRD file is a text header (a magic line, then `field: value` lines and
//! `key:=value` pairs, ended by an empty line) followed by the voxels. Read here:
//!
//! * **types**: every scalar type (8…64-bit signed and unsigned integers, `float`,
//!   `double`), under any of the spellings the format defines; `block` is refused;
//! * **encodings**: `raw`, `gzip`/`gz`, `bzip2`/`bz2`, `ascii`/`text`/`txt` and `hex`;
//!   `endian` (little or big) applies to `raw`, `gzip`, `bzip2` and `hex`; compressed data
//!   is inflated keeping only the bytes the header declares (the rest is counted);
//! * **`line skip`** and **`byte skip`** (including `-1`, "the data ends the file", for
//!   raw data); byte skip applies after decompression, as in teem;
//! * **geometry**: `space` (`left-posterior-superior`/`LPS`,
//!   `right-anterior-superior`/`RAS`, `left-anterior-superior`/`LAS`), `space directions`
//!   and `space origin`, converted to DICOM LPS (see [`crate::image`]); a file without
//!   `space directions` but with `spacings` gets identity directions and `axis mins` (or
//!   0) as origin, read as LPS, which is what ITK does;
//! * 3D Slicer segmentation metadata: `SegmentN_LabelValue:=` / `SegmentN_Name:=` pairs
//!   name the lesions of a label map; a layered (4-D, first axis of kind `list`) Slicer
//!   segmentation, which Slicer writes when segments overlap, gives lesion N + 1 for
//!   segment N: the voxels of layer `SegmentN_Layer` holding `SegmentN_LabelValue`.
//!
//! Detached headers (`data file`), non-orthogonal axes, spaces without a patient
//! orientation (`scanner-xyz`, `3D-right-handed`, …) and units other than millimetres
//! are refused with [`LabelMapError::Unsupported`]. NRRD axis 0 is the fastest, so the
//! voxels are in `[z, y, x]` C order with `x` = axis 0.

use std::collections::BTreeMap;

use ndarray::Array3;

use super::grid::dot;
use super::labelmap::{LabelMapError, MAX_NIFTI_BYTES, MAX_VOLUME_VOXELS, map_labels};
use super::voxels::{InflateError, StoredType, bunzip2_bounded, gunzip_bounded};
use super::{GEOMETRY_TOLERANCE_FRACTION, Grid, Segmentation, Volume};

/// The first seven bytes of every NRRD file; the eighth is the format version digit.
pub const NRRD_MAGIC: &[u8; 7] = b"NRRD000";

/// Largest decoded voxel payload accepted (the NIfTI limit, 2 GiB).
pub const MAX_NRRD_BYTES: u64 = MAX_NIFTI_BYTES;

/// Largest header accepted. Slicer segmentations carry a few key/value pairs per segment;
/// 1 MiB leaves room for thousands.
pub const MAX_NRRD_HEADER_BYTES: usize = 1 << 20;

/// Longest segment name kept from Slicer metadata, in characters.
const MAX_SEGMENT_NAME_CHARS: usize = 64;

/// Format versions this reader knows (teem's `NRRD0001` to `NRRD0005`).
const KNOWN_VERSIONS: std::ops::RangeInclusive<u8> = b'1'..=b'5';

/// Read a NRRD label map and map it onto `series`, as
/// [`read_nifti_labelmap`](super::labelmap::read_nifti_labelmap) does for NIfTI.
///
/// # Errors
/// [`LabelMapError::GridMismatch`] names the first difference from the series grid;
/// other variants describe an unreadable or unsupported file.
pub fn read_nrrd_labelmap(
    bytes: &[u8],
    file_name: &str,
    series: &Grid,
) -> Result<Segmentation, LabelMapError> {
    let nrrd = Nrrd::parse(bytes, file_name)?;
    if nrrd.header.layers > 1 {
        return read_layered(&nrrd, file_name, series);
    }
    let mut seg = map_labels(
        &nrrd.grid,
        nrrd.values().enumerate().filter(|(_, v)| *v != 0.0),
        file_name,
        series,
    )?;
    for lesion in &mut seg.lesions {
        lesion.name = nrrd.header.segment_names.get(&lesion.label).cloned();
    }
    Ok(seg)
}

/// A layered 3D Slicer segmentation: segment N is the voxels of its layer holding its label
/// value, and becomes lesion N + 1 (segments of different layers may share a label value,
/// and may overlap). A non-zero value no segment names is refused.
fn read_layered(nrrd: &Nrrd, file: &str, series: &Grid) -> Result<Segmentation, LabelMapError> {
    let layers = nrrd.header.layers;
    let mut labelled = Vec::new();
    for (n, v) in nrrd.values().enumerate().filter(|(_, v)| *v != 0.0) {
        let layer = n % layers;
        let found = (v.fract() == 0.0 && v > 0.0 && v <= f64::from(u32::MAX))
            .then(|| nrrd.header.layered_segments.get(&(layer, v as u32)))
            .flatten();
        let Some((label, _)) = found else {
            return Err(not_nrrd(
                file,
                format!(
                    "layer {layer} holds value {v}, which no SegmentN_Layer / \
                     SegmentN_LabelValue pair names"
                ),
            ));
        };
        labelled.push((n / layers, f64::from(*label)));
    }
    let mut seg = map_labels(&nrrd.grid, labelled.into_iter(), file, series)?;
    for lesion in &mut seg.lesions {
        lesion.name = nrrd
            .header
            .layered_segments
            .values()
            .find(|(label, _)| *label == lesion.label)
            .and_then(|(_, name)| name.clone());
    }
    Ok(seg)
}

/// Read a NRRD image as a [`Volume`] on its own grid (values as stored, no rescaling).
///
/// # Errors
/// A [`LabelMapError`] describing why the file cannot be read.
pub fn read_nrrd_volume(bytes: &[u8], file_name: &str) -> Result<Volume, LabelMapError> {
    let nrrd = Nrrd::parse(bytes, file_name)?;
    if nrrd.header.layers > 1 {
        return Err(unsupported(file_name, "a layered (4-D) image"));
    }
    let voxels = nrrd.grid.voxel_count();
    if voxels > MAX_VOLUME_VOXELS {
        return Err(LabelMapError::TooManyVoxels {
            file: file_name.into(),
            voxels,
            limit: MAX_VOLUME_VOXELS,
        });
    }
    // The payload was checked to hold every voxel, so the shape always matches.
    let values: Vec<f32> = nrrd.values().map(|v| v as f32).collect();
    let hu = Array3::from_shape_vec(nrrd.grid.shape_vox, values).map_err(|_| {
        not_nrrd(
            file_name,
            "the payload holds fewer values than 'sizes' declares",
        )
    })?;
    Ok(Volume {
        grid: nrrd.grid,
        hu: hu.into(),
    })
}

/// How the voxel payload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    Gzip,
    Bzip2,
    Ascii,
    Hex,
}

/// Where a `byte skip` puts the start of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteSkip {
    /// Skip this many bytes.
    Forward(usize),
    /// `-1`: the payload is the last bytes of the (raw) data.
    FromEnd,
}

/// The header fields radscore uses.
#[derive(Debug)]
struct Header {
    stored: StoredType,
    /// Values per voxel: 1, or the layers of a 4-D 3D Slicer segmentation (a `list` axis
    /// before the three spatial ones).
    layers: usize,
    sizes_xyz: [usize; 3],
    encoding: Encoding,
    little_endian: bool,
    line_skip: usize,
    byte_skip: ByteSkip,
    /// Sign of each world axis when converted to LPS (`+1` keeps, `-1` flips).
    to_lps: [f64; 3],
    /// World vector of each file axis, in the file's space.
    directions: [[f64; 3]; 3],
    origin: [f64; 3],
    segment_names: BTreeMap<u32, String>,
    /// Of a layered file: (layer, label value) → (lesion label, segment name).
    layered_segments: LayeredSegments,
}

/// A parsed file: its header, grid (LPS) and its payload.
struct Nrrd<'a> {
    header: Header,
    grid: Grid,
    payload: Payload<'a>,
}

/// The voxel payload after decoding the encoding and applying the skips.
enum Payload<'a> {
    /// Binary values (`raw`, inflated `gzip`, decoded `hex`), at least `count` of them.
    Binary(std::borrow::Cow<'a, [u8]>),
    /// Text already checked to hold at least `count` numbers.
    Ascii(&'a str),
}

impl<'a> Nrrd<'a> {
    fn parse(bytes: &'a [u8], file: &'a str) -> Result<Self, LabelMapError> {
        let (lines, body) = split_header(bytes, file)?;
        let header = Header::from_lines(&lines, file)?;
        let grid = header.grid(file)?;
        let payload = header.payload(body, file)?;
        Ok(Self {
            header,
            grid,
            payload,
        })
    }

    /// Every voxel as `f64` in file order (axis 0 fastest).
    fn values(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        let count = self.grid.voxel_count() * self.header.layers;
        match &self.payload {
            Payload::Binary(data) => {
                let values = self
                    .header
                    .stored
                    .decode_all(data, self.header.little_endian);
                Box::new(values.take(count))
            }
            Payload::Ascii(text) => {
                // Every token was parsed once in `Header::payload`; NaN cannot occur here.
                let values = text
                    .split_ascii_whitespace()
                    .map(|t| t.parse::<f64>().unwrap_or(f64::NAN));
                Box::new(values.take(count))
            }
        }
    }
}

impl Header {
    /// Decode the bytes after the header into the payload of `count` values.
    fn payload<'a>(&self, body: &'a [u8], file: &str) -> Result<Payload<'a>, LabelMapError> {
        let count = self.sizes_xyz.iter().product::<usize>() * self.layers;
        let body = skip_lines(body, self.line_skip)
            .ok_or_else(|| not_nrrd(file, "'line skip' passes the end of the file"))?;
        let needed = count.saturating_mul(self.stored.size());
        // Bytes after the data, counted but (gzip) not held: a small gzip stream of zeros
        // past the voxels is refused below without being inflated into memory.
        let mut surplus_total = None;
        let data = match self.encoding {
            Encoding::Raw => std::borrow::Cow::Borrowed(body),
            Encoding::Gzip | Encoding::Bzip2 => {
                let keep = match self.byte_skip {
                    ByteSkip::Forward(n) => n.saturating_add(needed) as u64,
                    ByteSkip::FromEnd => MAX_NRRD_BYTES,
                };
                let (kept, total) = inflate(self.encoding, body, keep, file)?;
                surplus_total = Some(usize::try_from(total).unwrap_or(usize::MAX));
                std::borrow::Cow::Owned(kept)
            }
            Encoding::Hex => std::borrow::Cow::Owned(decode_hex(body, file)?),
            Encoding::Ascii => return check_ascii(body, count, file).map(Payload::Ascii),
        };
        let start = match self.byte_skip {
            ByteSkip::Forward(n) => n,
            ByteSkip::FromEnd => data.len().saturating_sub(needed),
        };
        let end = start.saturating_add(needed);
        if data.len() < end {
            return Err(LabelMapError::Truncated {
                file: file.into(),
                expected_bytes: end,
                found_bytes: data.len(),
            });
        }
        // Data past the voxels means the header does not describe the payload; reading the
        // first `count` values of it would give a silently wrong label map.
        let found_bytes = surplus_total.unwrap_or(data.len());
        if found_bytes > end {
            return Err(LabelMapError::TrailingData {
                file: file.into(),
                expected_bytes: end,
                found_bytes,
            });
        }
        Ok(Payload::Binary(match data {
            std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(&b[start..end]),
            std::borrow::Cow::Owned(mut v) => {
                v.truncate(end);
                v.drain(..start);
                std::borrow::Cow::Owned(v)
            }
        }))
    }
}

/// Inflate gzip data keeping its first `keep` bytes; returns them and the inflated size.
fn inflate(
    encoding: Encoding,
    body: &[u8],
    keep: u64,
    file: &str,
) -> Result<(Vec<u8>, u64), LabelMapError> {
    let (inflated, damaged) = match encoding {
        Encoding::Bzip2 => (
            bunzip2_bounded(body, 0, |_| keep, MAX_NRRD_BYTES),
            "the bzip2 data is damaged",
        ),
        _ => (
            gunzip_bounded(body, 0, |_| keep, MAX_NRRD_BYTES),
            "the gzip data is damaged",
        ),
    };
    inflated.map_err(|e| match e {
        InflateError::Damaged => not_nrrd(file, damaged),
        InflateError::TooLarge => LabelMapError::TooLarge {
            file: file.into(),
            limit: MAX_NRRD_BYTES,
        },
    })
}

/// Bytes from hex digit pairs; whitespace between digits is allowed.
fn decode_hex(text: &[u8], file: &str) -> Result<Vec<u8>, LabelMapError> {
    let digits: Vec<u32> = text
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|&b| (b as char).to_digit(16))
        .collect::<Option<_>>()
        .ok_or_else(|| not_nrrd(file, "hex data holds a character that is not a hex digit"))?;
    Ok(digits
        .chunks_exact(2)
        .map(|pair| (pair[0] * 16 + pair[1]) as u8)
        .collect())
}

/// The text of an `ascii` payload, checked to start with `count` numbers.
fn check_ascii<'a>(body: &'a [u8], count: usize, file: &str) -> Result<&'a str, LabelMapError> {
    let text = std::str::from_utf8(body).map_err(|_| not_nrrd(file, "ascii data is not text"))?;
    let mut found = 0usize;
    for token in text.split_ascii_whitespace().take(count) {
        if token.parse::<f64>().is_err() {
            return Err(not_nrrd(
                file,
                format!("ascii value {} is not a number", found + 1),
            ));
        }
        found += 1;
    }
    if found < count {
        return Err(not_nrrd(
            file,
            format!("ascii data holds {found} values, {count} needed"),
        ));
    }
    if text.split_ascii_whitespace().nth(count).is_some() {
        return Err(not_nrrd(
            file,
            format!("ascii data holds more than the {count} values 'sizes' declares"),
        ));
    }
    Ok(text)
}

fn not_nrrd(file: &str, reason: impl Into<String>) -> LabelMapError {
    LabelMapError::NotNrrd {
        file: file.into(),
        reason: reason.into(),
    }
}

fn unsupported(file: &str, what: impl Into<String>) -> LabelMapError {
    LabelMapError::Unsupported {
        file: file.into(),
        what: what.into(),
    }
}

/// The header lines (after the magic line, without line ends) and the bytes after the
/// empty line that ends the header.
fn split_header<'a>(bytes: &'a [u8], file: &str) -> Result<(Vec<String>, &'a [u8]), LabelMapError> {
    let version = bytes.get(NRRD_MAGIC.len()).copied();
    if !bytes.starts_with(NRRD_MAGIC) || !version.is_some_and(|v| KNOWN_VERSIONS.contains(&v)) {
        return Err(not_nrrd(file, "the magic line is not NRRD0001…NRRD0005"));
    }
    let mut lines = Vec::new();
    let mut rest = bytes;
    let mut first = true;
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(not_nrrd(
                file,
                "no empty line ends the header, so no data follows it",
            ));
        };
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        rest = &rest[end + 1..];
        if bytes.len() - rest.len() > MAX_NRRD_HEADER_BYTES {
            return Err(not_nrrd(
                file,
                format!("the header is longer than {MAX_NRRD_HEADER_BYTES} bytes"),
            ));
        }
        if first {
            first = false;
            continue;
        }
        if line.is_empty() {
            return Ok((lines, rest));
        }
        lines.push(String::from_utf8_lossy(line).into_owned());
    }
}

/// `data` after its first `n` lines.
fn skip_lines(mut data: &[u8], n: usize) -> Option<&[u8]> {
    for _ in 0..n {
        let end = data.iter().position(|&b| b == b'\n')?;
        data = &data[end + 1..];
    }
    Some(data)
}

impl Header {
    fn from_lines(lines: &[String], file: &str) -> Result<Self, LabelMapError> {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        let mut pairs: BTreeMap<&str, &str> = BTreeMap::new();
        for line in lines {
            if line.starts_with('#') {
                continue;
            }
            if let Some((key, value)) = line.split_once(":=") {
                pairs.insert(key, value);
            } else if let Some((field, value)) = line.split_once(": ") {
                fields.insert(field, value.trim());
            } else {
                return Err(not_nrrd(
                    file,
                    format!(
                        "header line {} is neither 'field: value' nor 'key:=value'",
                        lines.iter().position(|l| l == line).unwrap_or(0) + 2
                    ),
                ));
            }
        }
        let field = |name: &'static str| {
            fields
                .get(name)
                .copied()
                .ok_or_else(|| not_nrrd(file, format!("required field '{name}' is missing")))
        };

        // LIMITATION: detached headers (.nhdr + data file) are refused: an upload is one file.
        if fields.contains_key("data file") || fields.contains_key("datafile") {
            return Err(unsupported(file, "a detached header ('data file')"));
        }
        let stored = stored_type(field("type")?, file)?;
        let dimension: usize = field("dimension")?
            .parse()
            .map_err(|_| not_nrrd(file, "field 'dimension' is not an integer"))?;
        let sizes = parse_sizes(field("sizes")?, file)?;
        if dimension != sizes.len() {
            return Err(LabelMapError::DimensionMismatch {
                file: file.into(),
                dimension,
                sizes,
            });
        }
        // 3D Slicer writes overlapping segments as layers: a 4-D file whose first axis is
        // of kind `list`, then the three spatial axes.
        let first_kind = fields
            .get("kinds")
            .and_then(|k| k.split_ascii_whitespace().next());
        let layers = match (dimension, first_kind) {
            (3, _) => 1,
            (4, Some("list")) => sizes[0],
            _ => {
                return Err(LabelMapError::NotThreeD {
                    file: file.into(),
                    dims: sizes,
                });
            }
        };
        let spatial = &sizes[sizes.len() - 3..];
        let sizes_xyz = [spatial[0], spatial[1], spatial[2]];
        let encoding = encoding(field("encoding")?, file)?;
        let little_endian = match fields.get("endian").copied() {
            Some("little") => true,
            Some("big") => false,
            Some(_) => return Err(not_nrrd(file, "field 'endian' is not 'little' or 'big'")),
            None if stored.size() == 1 || encoding == Encoding::Ascii => true,
            None => return Err(not_nrrd(file, "required field 'endian' is missing")),
        };
        let line_skip = match fields.get("line skip").or(fields.get("lineskip")) {
            None => 0,
            Some(v) => v
                .parse()
                .map_err(|_| not_nrrd(file, "field 'line skip' is not a non-negative integer"))?,
        };
        let byte_skip = match fields.get("byte skip").or(fields.get("byteskip")).copied() {
            None => ByteSkip::Forward(0),
            Some("-1") if encoding == Encoding::Raw => ByteSkip::FromEnd,
            Some("-1") => {
                return Err(unsupported(
                    file,
                    "'byte skip: -1' with compressed or text data",
                ));
            }
            Some(v) => ByteSkip::Forward(v.parse().map_err(|_| {
                not_nrrd(
                    file,
                    "field 'byte skip' is not -1 or a non-negative integer",
                )
            })?),
        };
        check_units(&fields, file)?;
        let SpaceGeometry {
            to_lps,
            directions,
            origin,
        } = geometry(&fields, file, layers > 1)?;
        let layered_segments = match layers {
            1 => BTreeMap::new(),
            _ => layered_segments(&pairs, layers, file)?,
        };
        Ok(Self {
            stored,
            layers,
            sizes_xyz,
            encoding,
            little_endian,
            line_skip,
            byte_skip,
            to_lps,
            directions,
            origin,
            segment_names: segment_names(&pairs),
            layered_segments,
        })
    }

    /// The grid in `[z, y, x]` order with LPS directions; axes must be orthogonal.
    fn grid(&self, file: &str) -> Result<Grid, LabelMapError> {
        let lps = |v: [f64; 3]| [0, 1, 2].map(|c| v[c] * self.to_lps[c]);
        let mut spacing_mm = [0.0; 3];
        let mut direction = [[0.0; 3]; 3];
        for (axis, file_axis) in [(0, 2), (1, 1), (2, 0)] {
            let v = lps(self.directions[file_axis]);
            let len = dot(v, v).sqrt();
            if !(len.is_finite() && len > 0.0) {
                return Err(LabelMapError::BadAffine { file: file.into() });
            }
            spacing_mm[axis] = len;
            direction[axis] = v.map(|c| c / len);
        }
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            if dot(direction[a], direction[b]).abs() > GEOMETRY_TOLERANCE_FRACTION {
                return Err(unsupported(
                    file,
                    "'space directions' that are not orthogonal",
                ));
            }
        }
        let origin_mm = lps(self.origin);
        if origin_mm.iter().any(|v| !v.is_finite()) {
            return Err(LabelMapError::BadAffine { file: file.into() });
        }
        let [nx, ny, nz] = self.sizes_xyz;
        Ok(Grid {
            shape_vox: [nz, ny, nx],
            spacing_mm,
            origin_mm,
            direction,
        })
    }
}

/// The stored type named by the `type` field (every spelling of the NRRD format spec).
fn stored_type(name: &str, file: &str) -> Result<StoredType, LabelMapError> {
    Ok(match name {
        "signed char" | "int8" | "int8_t" => StoredType::I8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => StoredType::U8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => {
            StoredType::I16
        }
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => {
            StoredType::U16
        }
        "int" | "signed int" | "int32" | "int32_t" => StoredType::I32,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => StoredType::U32,
        "longlong"
        | "long long"
        | "long long int"
        | "signed long long"
        | "signed long long int"
        | "int64"
        | "int64_t" => StoredType::I64,
        "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => {
            StoredType::U64
        }
        "float" => StoredType::F32,
        "double" => StoredType::F64,
        "block" => return Err(unsupported(file, "type 'block'")),
        _ => return Err(not_nrrd(file, "field 'type' names no NRRD scalar type")),
    })
}

fn encoding(name: &str, file: &str) -> Result<Encoding, LabelMapError> {
    Ok(match name {
        "raw" => Encoding::Raw,
        "gzip" | "gz" => Encoding::Gzip,
        "ascii" | "text" | "txt" => Encoding::Ascii,
        "hex" => Encoding::Hex,
        "bzip2" | "bz2" => Encoding::Bzip2,
        _ => return Err(not_nrrd(file, "field 'encoding' names no NRRD encoding")),
    })
}

/// `sizes`: positive integers, their product bounded so index arithmetic cannot overflow.
fn parse_sizes(value: &str, file: &str) -> Result<Vec<usize>, LabelMapError> {
    let bad = || not_nrrd(file, "field 'sizes' must hold positive integers");
    let sizes: Vec<usize> = value
        .split_ascii_whitespace()
        .map(|s| s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    let total = sizes.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
    if total.is_none_or(|t| t as u64 > MAX_NRRD_BYTES) {
        return Err(LabelMapError::TooLarge {
            file: file.into(),
            limit: MAX_NRRD_BYTES,
        });
    }
    Ok(sizes)
}

/// `space units` / `units`, when given, must all be millimetres.
fn check_units(fields: &BTreeMap<&str, &str>, file: &str) -> Result<(), LabelMapError> {
    if let Some(units) = fields.get("space units") {
        let ok = units.split_ascii_whitespace().all(|u| {
            matches!(
                u.trim_matches('"'),
                "mm" | "millimeters" | "millimetres" | ""
            )
        });
        if !ok {
            return Err(unsupported(file, "'space units' other than mm"));
        }
    }
    Ok(())
}

/// The geometry fields of a header, in the file's own space.
struct SpaceGeometry {
    /// Sign of each world axis when converted to LPS.
    to_lps: [f64; 3],
    /// World vector of each file axis.
    directions: [[f64; 3]; 3],
    origin: [f64; 3],
}

/// The geometry from the space fields, or from `spacings` (identity directions) when the
/// file has no `space directions`.
fn geometry(
    fields: &BTreeMap<&str, &str>,
    file: &str,
    layered: bool,
) -> Result<SpaceGeometry, LabelMapError> {
    let to_lps = match fields.get("space").copied() {
        Some("left-posterior-superior" | "LPS") | None => [1.0, 1.0, 1.0],
        Some("right-anterior-superior" | "RAS") => [-1.0, -1.0, 1.0],
        Some("left-anterior-superior" | "LAS") => [1.0, -1.0, 1.0],
        Some(_) => {
            return Err(unsupported(
                file,
                "a 'space' without patient orientation (only LPS, RAS and LAS are read)",
            ));
        }
    };
    if fields.contains_key("space dimension") && !fields.contains_key("space") {
        return Err(unsupported(
            file,
            "'space dimension' without a named patient 'space'",
        ));
    }

    if let Some(value) = fields.get("space directions") {
        let mut vectors = parse_vectors(value, file, "space directions")?;
        if layered {
            // The `list` axis has no direction.
            if vectors.first() != Some(&None) {
                return Err(not_nrrd(
                    file,
                    "field 'space directions' must give 'none' for the layer (list) axis",
                ));
            }
            vectors.remove(0);
        }
        let directions: Vec<[f64; 3]> = vectors
            .into_iter()
            .map(|v| {
                v.ok_or_else(|| {
                    not_nrrd(
                        file,
                        "field 'space directions' gives 'none' for a spatial axis",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let [x, y, z] = directions[..] else {
            return Err(not_nrrd(
                file,
                "field 'space directions' must hold 3 vectors",
            ));
        };
        let origin = match fields.get("space origin") {
            None => [0.0; 3],
            Some(v) => match parse_vectors(v, file, "space origin")?[..] {
                [Some(o)] => o,
                _ => return Err(not_nrrd(file, "field 'space origin' must hold one vector")),
            },
        };
        return Ok(SpaceGeometry {
            to_lps,
            directions: [x, y, z],
            origin,
        });
    }
    if fields.contains_key("space") {
        return Err(not_nrrd(
            file,
            "a 'space' is named but 'space directions' is missing",
        ));
    }
    let spacings = fields.get("spacings").ok_or_else(|| {
        not_nrrd(
            file,
            "neither 'space directions' nor 'spacings' is given, so the voxels have no position",
        )
    })?;
    let spacings = parse_numbers(spacings, 3, file, "spacings")?;
    let origin = match fields.get("axis mins") {
        None => [0.0; 3],
        Some(v) => parse_numbers(v, 3, file, "axis mins")?,
    };
    let mut directions = [[0.0; 3]; 3];
    for a in 0..3 {
        directions[a][a] = spacings[a];
    }
    Ok(SpaceGeometry {
        to_lps,
        directions,
        origin,
    })
}

/// `n` finite numbers separated by whitespace.
fn parse_numbers(
    value: &str,
    n: usize,
    file: &str,
    name: &'static str,
) -> Result<[f64; 3], LabelMapError> {
    let v: Vec<f64> = value
        .split_ascii_whitespace()
        .map(|s| s.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()
        .unwrap_or_default();
    match v[..] {
        [a, b, c] if n == 3 => Ok([a, b, c]),
        _ => Err(not_nrrd(
            file,
            format!("field '{name}' must hold {n} finite numbers"),
        )),
    }
}

/// Vectors `(a,b,c)` or `none`, separated by whitespace.
fn parse_vectors(
    value: &str,
    file: &str,
    name: &'static str,
) -> Result<Vec<Option<[f64; 3]>>, LabelMapError> {
    let bad = || {
        not_nrrd(
            file,
            format!("field '{name}' must hold vectors '(x,y,z)' or 'none'"),
        )
    };
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("none") {
            out.push(None);
            rest = after.trim_start();
            continue;
        }
        let inner = rest.strip_prefix('(').ok_or_else(bad)?;
        let close = inner.find(')').ok_or_else(bad)?;
        let numbers: Vec<f64> = inner[..close]
            .split(',')
            .map(|s| s.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let [a, b, c] = numbers[..] else {
            return Err(bad());
        };
        out.push(Some([a, b, c]));
        rest = inner[close + 1..].trim_start();
        // Three spatial axes, and a layered file's list axis.
        if out.len() > 4 {
            return Err(bad());
        }
    }
    Ok(out)
}

/// (layer, label value) → (lesion label, segment name) of a layered 3D Slicer file.
type LayeredSegments = BTreeMap<(usize, u32), (u32, Option<String>)>;

/// The segments of a layered 3D Slicer file: `SegmentN_Layer` and `SegmentN_LabelValue`
/// (each required) place segment N, which becomes lesion N + 1 named `SegmentN_Name`.
fn layered_segments(
    pairs: &BTreeMap<&str, &str>,
    layers: usize,
    file: &str,
) -> Result<LayeredSegments, LabelMapError> {
    let mut out = BTreeMap::new();
    for key in pairs.keys() {
        let Some(index) = key
            .strip_prefix("Segment")
            .and_then(|k| k.strip_suffix("_Layer"))
        else {
            continue;
        };
        let number = |suffix: &str| {
            pairs
                .get(format!("Segment{index}{suffix}").as_str())
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let bad = |what: &str| not_nrrd(file, format!("segment {index}: {what}"));
        let layer = number("_Layer")
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l < layers)
            .ok_or_else(|| bad("SegmentN_Layer is not a layer of the file"))?;
        let value = number("_LabelValue")
            .filter(|&v| v > 0)
            .ok_or_else(|| bad("SegmentN_LabelValue is missing or not a positive integer"))?;
        let label = index
            .parse::<u32>()
            .ok()
            .and_then(|i| i.checked_add(1))
            .ok_or_else(|| bad("the segment number is not an integer"))?;
        let name = pairs
            .get(format!("Segment{index}_Name").as_str())
            .map(|n| n.trim().chars().take(MAX_SEGMENT_NAME_CHARS).collect());
        if out.insert((layer, value), (label, name)).is_some() {
            return Err(bad("another segment has the same layer and label value"));
        }
    }
    if out.is_empty() {
        return Err(not_nrrd(
            file,
            "a layered (4-D) file without SegmentN_Layer / SegmentN_LabelValue pairs",
        ));
    }
    Ok(out)
}

/// Label value → segment name from 3D Slicer's `SegmentN_LabelValue` and `SegmentN_Name`
/// pairs (Slicer's default layer value is `N + 1` when no label value is given).
fn segment_names(pairs: &BTreeMap<&str, &str>) -> BTreeMap<u32, String> {
    let mut names = BTreeMap::new();
    for (key, name) in pairs {
        let Some(index) = key
            .strip_prefix("Segment")
            .and_then(|k| k.strip_suffix("_Name"))
        else {
            continue;
        };
        let label = pairs
            .get(format!("Segment{index}_LabelValue").as_str())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .or_else(|| index.parse::<u32>().ok().and_then(|i| i.checked_add(1)));
        if let Some(label) = label {
            let name: String = name.trim().chars().take(MAX_SEGMENT_NAME_CHARS).collect();
            names.insert(label, name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2×2×2 file with `fields` (each `name: value` line) and `data` after the header.
    fn file(fields: &[&str], data: &[u8]) -> Vec<u8> {
        let mut out = b"NRRD0004\n# a comment\n".to_vec();
        for f in fields {
            out.extend_from_slice(f.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(data);
        out
    }

    const LPS_BOX: [&str; 5] = [
        "dimension: 3",
        "sizes: 2 2 2",
        "space: left-posterior-superior",
        "space directions: (2,0,0) (0,-1,0) (0,0,3)",
        "space origin: (10,20,30)",
    ];

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        LPS_BOX
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    }

    #[test]
    fn raw_big_endian_shorts_and_lps_geometry() {
        let data: Vec<u8> = (0i16..8).flat_map(|v| (v - 4).to_be_bytes()).collect();
        let f = file(
            &with(&["type: short", "encoding: raw", "endian: big"]),
            &data,
        );
        let v = read_nrrd_volume(&f, "x.nrrd").unwrap();
        assert_eq!(
            v.hu.to_f32().as_slice().unwrap(),
            &[-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(v.grid.shape_vox, [2, 2, 2]);
        assert_eq!(v.grid.spacing_mm, [3.0, 1.0, 2.0]);
        assert_eq!(v.grid.origin_mm, [10.0, 20.0, 30.0]);
        assert_eq!(
            v.grid.direction,
            [[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]
        );
    }

    #[test]
    fn ras_space_flips_x_and_y() {
        let f = file(
            &[
                "type: uchar",
                "dimension: 3",
                "sizes: 2 2 2",
                "space: right-anterior-superior",
                "space directions: (1,0,0) (0,1,0) (0,0,1)",
                "space origin: (5,6,7)",
                "encoding: raw",
            ],
            &[0; 8],
        );
        let v = read_nrrd_volume(&f, "x.nrrd").unwrap();
        assert_eq!(v.grid.origin_mm, [-5.0, -6.0, 7.0]);
        assert_eq!(v.grid.direction[2], [-1.0, 0.0, 0.0]);
        assert_eq!(v.grid.direction[1], [0.0, -1.0, 0.0]);
    }

    #[test]
    fn ascii_hex_and_byte_skip_encodings() {
        let ascii = file(
            &with(&["type: float", "encoding: ascii"]),
            b"1 2.5 3\n4 5 6 7 -8\n",
        );
        let v = read_nrrd_volume(&ascii, "a.nrrd").unwrap();
        assert_eq!(v.hu.at([1, 1, 1]), -8.0);
        let hex = file(
            &with(&["type: uint16", "encoding: hex", "endian: little"]),
            b"0100 0200\n0300 0400 0500 0600 0700 ff00",
        );
        assert_eq!(
            read_nrrd_volume(&hex, "h.nrrd").unwrap().hu.at([1, 1, 1]),
            255.0
        );
        let skipped = file(
            &with(&["type: uchar", "encoding: raw", "byte skip: -1"]),
            &[9, 9, 1, 2, 3, 4, 5, 6, 7, 8],
        );
        assert_eq!(
            read_nrrd_volume(&skipped, "s.nrrd")
                .unwrap()
                .hu
                .at([0, 0, 0]),
            1.0
        );
    }

    #[test]
    fn slicer_segment_names_label_the_lesions() {
        let series = read_nrrd_volume(
            &file(&with(&["type: uchar", "encoding: raw"]), &[0; 8]),
            "g",
        )
        .unwrap()
        .grid;
        let f = file(
            &with(&["type: uchar", "encoding: raw"]),
            &[0, 3, 0, 0, 0, 0, 3, 0],
        );
        let mut f2 = f.clone();
        // Insert key/value pairs before the blank line ending the header.
        let at = f2.windows(2).position(|w| w == b"\n\n").unwrap() + 1;
        f2.splice(
            at..at,
            b"Segment0_Name:=GTV\nSegment0_LabelValue:=3\n"
                .iter()
                .copied(),
        );
        let seg = read_nrrd_labelmap(&f2, "l.seg.nrrd", &series).unwrap();
        assert_eq!(seg.lesions.len(), 1);
        assert_eq!(
            (seg.lesions[0].label, seg.lesions[0].name.as_deref()),
            (3, Some("GTV"))
        );
        assert_eq!(seg.lesions[0].voxel_count(), 2);
    }

    /// A layered Slicer segmentation: segment N is its layer's voxels holding its value and
    /// becomes lesion N + 1, also where two segments share a value or overlap; a layered
    /// image is not a volume.
    #[test]
    fn layered_slicer_segments_may_overlap() {
        let series = read_nrrd_volume(
            &file(&with(&["type: uchar", "encoding: raw"]), &[0; 8]),
            "g",
        )
        .unwrap()
        .grid;
        let fields = [
            "type: uchar",
            "encoding: raw",
            "dimension: 4",
            "sizes: 2 2 2 2",
            "kinds: list domain domain domain",
            "space: left-posterior-superior",
            "space directions: none (2,0,0) (0,-1,0) (0,0,3)",
            "space origin: (10,20,30)",
        ];
        // Voxel-major, layer fastest: voxels 0 and 1 in layer 0, voxels 1 to 3 in layer 1.
        let data = [1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut f = file(&fields, &data);
        let at = f.windows(2).position(|w| w == b"\n\n").unwrap() + 1;
        f.splice(
            at..at,
            b"Segment0_Layer:=0\nSegment0_LabelValue:=1\nSegment0_Name:=GTV\n\
              Segment1_Layer:=1\nSegment1_LabelValue:=1\n"
                .iter()
                .copied(),
        );
        let seg = read_nrrd_labelmap(&f, "l.seg.nrrd", &series).unwrap();
        let got: Vec<_> = seg
            .lesions
            .iter()
            .map(|l| (l.label, l.name.as_deref(), l.voxel_count()))
            .collect();
        assert_eq!(got, [(1, Some("GTV"), 2), (2, None, 3)]);
        assert!(
            read_nrrd_volume(&f, "l.seg.nrrd")
                .unwrap_err()
                .to_string()
                .contains("layered")
        );
        let unnamed = file(&fields, &[2; 16]);
        assert!(
            read_nrrd_labelmap(&unnamed, "u.seg.nrrd", &series)
                .unwrap_err()
                .to_string()
                .contains("without SegmentN_Layer")
        );
    }

    /// Gzip data past the voxels is refused with its true size, found by counting the
    /// inflated stream rather than holding it (a decompression bomb costs no memory).
    #[test]
    fn gzip_surplus_is_counted_not_held() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![0u8; 8 + (16 << 20)]).unwrap();
        let f = file(
            &with(&["type: uchar", "encoding: gzip"]),
            &gz.finish().unwrap(),
        );
        match read_nrrd_volume(&f, "bomb.nrrd") {
            Err(LabelMapError::TrailingData {
                expected_bytes,
                found_bytes,
                ..
            }) => assert_eq!((expected_bytes, found_bytes), (8, 8 + (16 << 20))),
            other => panic!("expected trailing data, got {other:?}"),
        }
    }

    /// `encoding: bzip2` gives the voxels a raw file gives, and bytes compressed after the
    /// declared voxels are counted (not held) and refused, as for gzip.
    #[test]
    fn bzip2_reads_like_raw_and_counts_its_surplus() {
        use std::io::Write;
        let voxels: Vec<u8> = (0..8).collect();
        let bz = |data: &[u8]| {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        };
        let raw = read_nrrd_volume(
            &file(&with(&["type: uchar", "encoding: raw"]), &voxels),
            "raw.nrrd",
        )
        .unwrap();
        let packed = read_nrrd_volume(
            &file(&with(&["type: uchar", "encoding: bzip2"]), &bz(&voxels)),
            "bz.nrrd",
        )
        .unwrap();
        assert_eq!(packed.hu.to_f32(), raw.hu.to_f32());
        let mut bomb = voxels.clone();
        bomb.resize(8 + (16 << 20), 0);
        match read_nrrd_volume(
            &file(&with(&["type: uchar", "encoding: bz2"]), &bz(&bomb)),
            "bomb.nrrd",
        ) {
            Err(LabelMapError::TrailingData {
                expected_bytes,
                found_bytes,
                ..
            }) => assert_eq!((expected_bytes, found_bytes), (8, 8 + (16 << 20))),
            other => panic!("expected trailing data, got {other:?}"),
        }
    }

    #[test]
    fn faults_are_named() {
        let msg = |bytes: &[u8]| read_nrrd_volume(bytes, "f.nrrd").unwrap_err().to_string();
        assert!(msg(b"NRRD0009\n\n").contains("magic"));
        assert!(msg(&file(&with(&["encoding: raw"]), &[])).contains("'type'"));
        assert!(
            msg(&file(
                &with(&["type: uchar", "encoding: bzip2"]),
                &[1, 2, 3]
            ))
            .contains("the bzip2 data is damaged")
        );
        assert!(
            msg(&file(&with(&["type: short", "encoding: raw"]), &[0; 16])).contains("'endian'")
        );
        assert!(msg(&file(&with(&["type: uchar", "encoding: raw"]), &[0; 7])).contains("8 needed"));
        assert!(msg(&file(&with(&["type: uchar", "encoding: gzip"]), &[1, 2, 3])).contains("gzip"));
        assert!(
            msg(&file(
                &with(&["type: uchar", "encoding: raw", "data file: x.raw"]),
                &[]
            ))
            .contains("detached")
        );
        let sheared = file(
            &[
                "type: uchar",
                "dimension: 3",
                "sizes: 2 2 2",
                "space: LPS",
                "space directions: (1,0,0) (1,1,0) (0,0,1)",
                "encoding: raw",
            ],
            &[0; 8],
        );
        assert!(msg(&sheared).contains("orthogonal"));
        let two_d = file(
            &["type: uchar", "dimension: 2", "sizes: 2 2", "encoding: raw"],
            &[0; 4],
        );
        assert!(msg(&two_d).contains("3-D"));
        assert!(msg(b"NRRD0004\ntype: uchar\n").contains("empty line"));
    }
}
