//! Fuzz smoke test on stable Rust, run by every `cargo test`: deterministic mutations of
//! the seed corpus in `fuzz/corpus/` fed to every parser entry point that sees untrusted
//! uploads (zip archives, DICOM series, DICOM SEG and RTSTRUCT, NIfTI and NRRD label maps
//! and volumes,
//! and the format sniffer in `pipeline::read_segmentation`).
//!
//! A panic fails the test (the input is written to `target/fuzz_smoke/` first); so does
//! one input taking longer than [`PER_INPUT_LIMIT`] or the process peak RSS passing
//! [`PEAK_RSS_LIMIT_BYTES`], the signs of a hang or of an allocation sized from a
//! declared field. The coverage-guided campaigns live in `fuzz/` (see docs/fuzzing.md).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use radscore::api::related::{RelatedLimits, read_parts_from_bytes};
use radscore::dicom::{
    ArchiveLimits, InputFile, assemble_series, files_from_zip, read_rtstruct, read_seg,
};
use radscore::image::Grid;
use radscore::image::labelmap::{read_nifti_labelmap, read_nifti_volume};
use radscore::image::nrrd::{read_nrrd_labelmap, read_nrrd_volume};
use radscore::pipeline::read_segmentation;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mutated inputs per entry point: a few thousand, sized so that the whole test takes
/// about 10 s in the dev profile on the 2-core CI machine.
const ITERATIONS: usize = 2_000;

/// Generous wall-clock bound for one input; the seeds parse in well under 10 ms.
const PER_INPUT_LIMIT: Duration = Duration::from_secs(3);

/// Peak resident memory of the whole test process (Linux `VmHWM`); the seeds need a few MB.
const PEAK_RSS_LIMIT_BYTES: u64 = 1 << 30;

/// Joins several files in one `series` seed (same as `fuzz/src/lib.rs`).
const FILE_SEPARATOR: &[u8] = b"RADSCORE-FUZZ-NEXT-FILE";

/// Archive limits for mutated zips (same as `fuzz/src/lib.rs`).
const LIMITS: ArchiveLimits = ArchiveLimits {
    max_entries: 256,
    max_total_bytes: 16 << 20,
};

/// Byte, 16-bit and 32-bit values that sit on boundaries parsers get wrong.
/// Content-Type and limits of `stow` inputs (same as `fuzz/src/lib.rs` and the target).
const STOW_CONTENT_TYPE: &str =
    "multipart/related; type=\"application/dicom\"; boundary=radscore-fuzz";
const STOW_LIMITS: RelatedLimits = RelatedLimits {
    max_body_bytes: 16 << 20,
    max_parts: 64,
};

const INTERESTING_U8: [u8; 7] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x20];
const INTERESTING_U16: [u16; 6] = [0x0000, 0x0001, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING_U32: [u32; 7] = [
    0,
    1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x0001_0000,
];

/// Explicit VR little-endian headers of US elements that size pixel buffers (PS3.5 7.1.2):
/// Rows (0028,0010), Columns (0028,0011), BitsAllocated (0028,0100), SamplesPerPixel
/// (0028,0002). Their 2-byte value follows the pattern.
const SIZE_TAGS: [[u8; 8]; 4] = [
    [0x28, 0x00, 0x10, 0x00, b'U', b'S', 2, 0],
    [0x28, 0x00, 0x11, 0x00, b'U', b'S', 2, 0],
    [0x28, 0x00, 0x00, 0x01, b'U', b'S', 2, 0],
    [0x28, 0x00, 0x02, 0x00, b'U', b'S', 2, 0],
];

/// NIfTI-1 header fields worth hitting (byte offset, width): dim[0..8], datatype, bitpix,
/// vox_offset, scl_slope, qform_code/sform_code, pixdim[0..4], srow_x[0].
const NIFTI_FIELDS: [(usize, usize); 15] = [
    (40, 2),
    (42, 2),
    (44, 2),
    (46, 2),
    (48, 2),
    (70, 2),
    (72, 2),
    (108, 4),
    (112, 4),
    (252, 2),
    (254, 2),
    (76, 4),
    (80, 4),
    (88, 4),
    (280, 4),
];

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The seeds of one fuzz target, sorted by name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} unreadable: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let seeds: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("seed readable"))
        })
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Series grids the seeds were made for (same as `fuzz/src/lib.rs`).
fn grids() -> [Grid; 3] {
    let axial = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]];
    [
        Grid {
            shape_vox: [4, 16, 16],
            spacing_mm: [2.5, 0.8, 0.8],
            origin_mm: [-22.8, 8.4, 3.75],
            direction: axial,
        },
        Grid {
            shape_vox: [32, 96, 96],
            spacing_mm: [2.5, 0.8, 0.8],
            origin_mm: [-38.0, -38.0, -38.75],
            direction: axial,
        },
        Grid {
            shape_vox: [4, 4, 5],
            spacing_mm: [2.0, 2.0, 2.0],
            origin_mm: [0.0, 0.0, 0.0],
            direction: axial,
        },
    ]
}

/// Deterministic byte-level mutator; `log` records what was done, for failure messages.
struct Mutator {
    rng: ChaCha8Rng,
    log: Vec<String>,
}

impl Mutator {
    fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            log: Vec::new(),
        }
    }

    /// One to four stacked mutations of `data`.
    fn mutate(&mut self, data: &mut Vec<u8>) {
        let rounds = self.rng.random_range(1..=4);
        for _ in 0..rounds {
            self.mutate_once(data);
        }
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>) {
        if data.is_empty() {
            data.push(self.rng.random());
            self.log.push("push byte into empty input".into());
            return;
        }
        match self.rng.random_range(0..9) {
            0 => self.flip_bits(data),
            1 => self.overwrite_u8(data),
            2 => self.overwrite_wide(data),
            3 => self.truncate(data),
            4 => self.inflate_length(data),
            5 => self.insert(data),
            6 => self.hit_size_tag(data),
            7 => self.hit_nifti_field(data),
            _ => self.duplicate_chunk(data),
        }
    }

    fn pos(&mut self, data: &[u8]) -> usize {
        self.rng.random_range(0..data.len())
    }

    fn flip_bits(&mut self, data: &mut [u8]) {
        for _ in 0..self.rng.random_range(1..=8) {
            let at = self.pos(data);
            data[at] ^= 1 << self.rng.random_range(0..8);
            self.log.push(format!("flip bit at {at}"));
        }
    }

    fn overwrite_u8(&mut self, data: &mut [u8]) {
        let at = self.pos(data);
        data[at] = INTERESTING_U8[self.rng.random_range(0..INTERESTING_U8.len())];
        self.log.push(format!("byte {at} = {:#x}", data[at]));
    }

    /// A 16- or 32-bit interesting value, either byte order.
    fn overwrite_wide(&mut self, data: &mut [u8]) {
        let bytes = self.interesting_wide();
        let at = self.pos(data);
        let end = (at + bytes.len()).min(data.len());
        data[at..end].copy_from_slice(&bytes[..end - at]);
        self.log.push(format!("bytes {at}.. = {bytes:02x?}"));
    }

    fn interesting_wide(&mut self) -> Vec<u8> {
        let big = self.rng.random_bool(0.5);
        if self.rng.random_bool(0.5) {
            let v = INTERESTING_U16[self.rng.random_range(0..INTERESTING_U16.len())];
            (if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
            .to_vec()
        } else {
            let v = INTERESTING_U32[self.rng.random_range(0..INTERESTING_U32.len())];
            (if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
            .to_vec()
        }
    }

    fn truncate(&mut self, data: &mut Vec<u8>) {
        let at = self.pos(data);
        data.truncate(at);
        self.log.push(format!("truncate to {at}"));
    }

    /// Find a little-endian u16/u32 that could be a length (non-zero, at most the input
    /// size) and make it much larger than the data behind it.
    fn inflate_length(&mut self, data: &mut [u8]) {
        let start = self.pos(data);
        let wide = self.rng.random_bool(0.5);
        let width = if wide { 4 } else { 2 };
        let limit = data.len() as u64;
        let found = (start..data.len().saturating_sub(width)).find(|&i| {
            let v = read_le(&data[i..i + width]);
            v > 0 && v <= limit
        });
        let Some(at) = found else { return };
        let old = read_le(&data[at..at + width]);
        let new = match self.rng.random_range(0..3) {
            0 => old.saturating_mul(16),
            1 => limit + 1,
            _ => u64::MAX,
        };
        let new = new.min(if wide { u64::from(u32::MAX) } else { 0xffff });
        data[at..at + width].copy_from_slice(&new.to_le_bytes()[..width]);
        self.log.push(format!("length at {at}: {old} -> {new}"));
    }

    fn insert(&mut self, data: &mut Vec<u8>) {
        let at = self.pos(data);
        let len = self.rng.random_range(1..=64);
        let fill: Vec<u8> = if self.rng.random_bool(0.5) {
            (0..len).map(|_| self.rng.random()).collect()
        } else {
            vec![INTERESTING_U8[self.rng.random_range(0..INTERESTING_U8.len())]; len]
        };
        data.splice(at..at, fill);
        self.log.push(format!("insert {len} bytes at {at}"));
    }

    fn duplicate_chunk(&mut self, data: &mut Vec<u8>) {
        let from = self.pos(data);
        let len = self.rng.random_range(1..=256).min(data.len() - from);
        let chunk = data[from..from + len].to_vec();
        let at = self.pos(data);
        data.splice(at..at, chunk);
        self.log
            .push(format!("copy {len} bytes from {from} to {at}"));
    }

    /// Give a DICOM size attribute (Rows, Columns, BitsAllocated, SamplesPerPixel) an
    /// interesting value.
    fn hit_size_tag(&mut self, data: &mut [u8]) {
        let tag = SIZE_TAGS[self.rng.random_range(0..SIZE_TAGS.len())];
        let Some(at) = data.windows(tag.len()).position(|w| w == tag) else {
            return self.overwrite_wide(data);
        };
        let value = INTERESTING_U16[self.rng.random_range(0..INTERESTING_U16.len())];
        let value_at = at + tag.len();
        if let Some(dst) = data.get_mut(value_at..value_at + 2) {
            dst.copy_from_slice(&value.to_le_bytes());
            self.log.push(format!("DICOM size tag at {at} = {value}"));
        }
    }

    /// Give a NIfTI-1 header field an interesting value (in the file's own byte order).
    fn hit_nifti_field(&mut self, data: &mut [u8]) {
        let (offset, width) = NIFTI_FIELDS[self.rng.random_range(0..NIFTI_FIELDS.len())];
        let big = data.get(..4) == Some(&348i32.to_be_bytes()[..]);
        let mut bytes = self.interesting_wide();
        bytes.resize(width, 0);
        if big {
            bytes.reverse();
        }
        if let Some(dst) = data.get_mut(offset..offset + width) {
            dst.copy_from_slice(&bytes);
            self.log
                .push(format!("NIfTI field at {offset} = {bytes:02x?}"));
        }
    }
}

fn read_le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

/// Header values that NRRD readers get wrong: zero, negative, huge, non-numeric, wrong
/// vector arity, `none`, empty.
const NRRD_VALUES: [&str; 12] = [
    "0",
    "-1",
    "18446744073709551615",
    "65535 65535 65535",
    "nan",
    "(1,0)",
    "(0,0,0) (0,0,0) (0,0,0)",
    "none none none",
    "",
    "big",
    "gzip",
    "block",
];

/// Replace the value of one NRRD header line with one of [`NRRD_VALUES`].
fn mutate_nrrd_header(m: &mut Mutator, seed: &[u8]) -> Option<Vec<u8>> {
    let header_end = seed.windows(2).position(|w| w == b"\n\n")?;
    let header = std::str::from_utf8(&seed[..header_end]).ok()?;
    let mut lines: Vec<String> = header.lines().map(String::from).collect();
    let victim = m.rng.random_range(1..lines.len().max(2));
    let line = lines.get_mut(victim)?;
    let (field, _) = line.split_once(": ")?;
    let value = NRRD_VALUES[m.rng.random_range(0..NRRD_VALUES.len())];
    m.log.push(format!("NRRD field '{field}' = '{value}'"));
    *line = format!("{field}: {value}");
    let mut out = lines.join("\n").into_bytes();
    out.extend_from_slice(&seed[header_end..]);
    Some(out)
}

/// Mutate the inflated content of a gzip stream, then compress it again, so that the
/// parser behind the gzip layer sees the mutation.
fn mutate_inside_gzip(m: &mut Mutator, data: &[u8]) -> Option<Vec<u8>> {
    let mut inner = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut inner)
        .ok()?;
    m.log.push("inside gzip:".into());
    m.mutate(&mut inner);
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    out.write_all(&inner).ok()?;
    out.finish().ok()
}

/// Mutate one entry of a zip archive (or drop or repeat it) and write the archive again.
fn mutate_inside_zip(m: &mut Mutator, data: &[u8]) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data)).ok()?;
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut e = archive.by_index(i).ok()?;
        let mut content = Vec::new();
        e.read_to_end(&mut content).ok()?;
        entries.push((e.name().to_owned(), content));
    }
    let victim = m.rng.random_range(0..entries.len().max(1));
    match m.rng.random_range(0..6) {
        0 if !entries.is_empty() => {
            entries.remove(victim);
            m.log.push(format!("zip: drop entry {victim}"));
        }
        1 if !entries.is_empty() => {
            let copy = entries[victim].clone();
            entries.push((format!("{}-copy", copy.0), copy.1));
            m.log.push(format!("zip: repeat entry {victim}"));
        }
        _ => {
            if let Some((name, content)) = entries.get_mut(victim) {
                m.log.push(format!("zip: inside entry {name}:"));
                m.mutate(content);
            }
        }
    }
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        out.start_file(name, options).ok()?;
        out.write_all(&content).ok()?;
    }
    Some(out.finish().ok()?.into_inner())
}

/// Split a `series` seed into its files.
fn split_files(data: &[u8]) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    let mut rest = data;
    while let Some(at) = rest
        .windows(FILE_SEPARATOR.len())
        .position(|w| w == FILE_SEPARATOR)
    {
        files.push(rest[..at].to_vec());
        rest = &rest[at + FILE_SEPARATOR.len()..];
    }
    files.push(rest.to_vec());
    files
}

fn input_files(files: Vec<Vec<u8>>) -> Vec<InputFile> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| InputFile {
            name: format!("file-{i}.dcm"),
            bytes: Bytes::from(bytes),
        })
        .collect()
}

/// While alive, a panic (failed run) reports the seed and mutations and saves the input.
struct FailureReport<'a> {
    target: &'a str,
    seed_name: &'a str,
    iteration: usize,
    log: &'a [String],
    input: &'a [u8],
}

impl FailureReport<'_> {
    fn save(&self) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz_smoke");
        let path = dir.join(format!("{}-{}.bin", self.target, self.iteration));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(&path, self.input);
        path
    }

    fn describe(&self) -> String {
        format!(
            "fuzz smoke '{}' iteration {} (seed {}): mutations {:?}; input saved to {}",
            self.target,
            self.iteration,
            self.seed_name,
            self.log,
            self.save().display()
        )
    }
}

impl Drop for FailureReport<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
    }
}

/// Run `iterations` mutated inputs built by `make` from the seeds of `target` through `run`.
fn campaign(
    target: &str,
    rng_seed: u64,
    make: impl Fn(&mut Mutator, &[u8]) -> Vec<u8>,
    run: fn(&[u8]),
) {
    let seeds = seeds(target);
    let mut m = Mutator::new(rng_seed);
    for iteration in 0..ITERATIONS {
        let (seed_name, seed) = &seeds[iteration % seeds.len()];
        m.log.clear();
        // Every seed also runs once unmutated.
        let input = if iteration < seeds.len() {
            seed.clone()
        } else {
            make(&mut m, seed)
        };
        let report = FailureReport {
            target,
            seed_name,
            iteration,
            log: &m.log,
            input: &input,
        };
        let started = Instant::now();
        run(&input);
        let took = started.elapsed();
        assert!(
            took <= PER_INPUT_LIMIT,
            "took {took:?} (limit {PER_INPUT_LIMIT:?}): {}",
            report.describe()
        );
    }
    check_peak_rss();
}

/// Plain byte mutations, or (half the time) mutations behind a gzip layer.
fn mutate_bytes(m: &mut Mutator, seed: &[u8]) -> Vec<u8> {
    if seed.starts_with(&[0x1f, 0x8b])
        && m.rng.random_bool(0.5)
        && let Some(out) = mutate_inside_gzip(m, seed)
    {
        return out;
    }
    let mut data = seed.to_vec();
    m.mutate(&mut data);
    data
}

/// Fail when the peak resident set of this process passed [`PEAK_RSS_LIMIT_BYTES`].
fn check_peak_rss() {
    let Ok(status) = std::fs::read_to_string(Path::new("/proc/self/status")) else {
        return; // Not Linux: the per-input time bound still applies.
    };
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    if let Some(kib) = peak_kib {
        assert!(
            kib * 1024 <= PEAK_RSS_LIMIT_BYTES,
            "peak RSS {kib} KiB passed {PEAK_RSS_LIMIT_BYTES} bytes: an input allocated \
             from a declared size"
        );
    }
}

/// What each fuzz target runs on one input; the same calls as `fuzz/fuzz_targets/*.rs`.
fn runner(target: &str) -> fn(&[u8]) {
    match target {
        "zip" => |data| {
            if let Ok(files) = files_from_zip(Bytes::copy_from_slice(data), &LIMITS) {
                let _ = assemble_series(&files);
            }
        },
        "series" => |data| {
            let _ = assemble_series(&input_files(split_files(data)));
        },
        "seg" => |data| {
            for grid in grids() {
                let _ = read_seg(data, "smoke.dcm", &grid, None);
                let _ = read_segmentation(data, Some("smoke.dcm"), &grid, None);
            }
        },
        "nifti_labelmap" => |data| {
            for grid in grids() {
                let _ = read_nifti_labelmap(data, "smoke.nii", &grid);
                let _ = read_segmentation(data, None, &grid, None);
            }
        },
        "nifti_volume" => |data| {
            let _ = read_nifti_volume(data, "smoke.nii");
        },
        "rtstruct" => |data| {
            for grid in grids() {
                let _ = read_rtstruct(data, "smoke.dcm", &grid, None);
                let _ = read_segmentation(data, Some("smoke.dcm"), &grid, None);
            }
        },
        "nrrd" => |data| {
            let _ = read_nrrd_volume(data, "smoke.nrrd");
            for grid in grids() {
                let _ = read_nrrd_labelmap(data, "smoke.nrrd", &grid);
                let _ = read_segmentation(data, Some("smoke.nrrd"), &grid, None);
            }
        },
        "stow" => |data| {
            let body = Bytes::copy_from_slice(data);
            if let Ok(parts) = read_parts_from_bytes(STOW_CONTENT_TYPE, body, STOW_LIMITS) {
                for part in parts {
                    let _ = radscore::dicom::identify("part", &part.bytes);
                }
            }
        },
        other => panic!("unknown fuzz target '{other}'"),
    }
}

/// Zip uploads: raw archive mutations and mutations of the entries inside.
#[test]
// dicom-parser 0.10 allocates declared value lengths; `dicom::precheck` refuses such
// inputs before it runs, which is what these smoke tests guard.
fn zip_archives_never_panic() {
    let make = |m: &mut Mutator, seed: &[u8]| {
        if m.rng.random_bool(0.5)
            && let Some(out) = mutate_inside_zip(m, seed)
        {
            return out;
        }
        mutate_bytes(m, seed)
    };
    campaign("zip", 1, make, runner("zip"));
}

/// Series assembly from one file and from several files, one of them mutated (or one
/// dropped or repeated).
#[test]
// dicom-parser 0.10 allocates declared value lengths; `dicom::precheck` refuses such
// inputs before it runs, which is what these smoke tests guard.
fn series_assembly_never_panics() {
    let make = |m: &mut Mutator, seed: &[u8]| {
        let mut files = split_files(seed);
        let victim = m.rng.random_range(0..files.len());
        match m.rng.random_range(0..8) {
            0 if files.len() > 1 => {
                files.remove(victim);
                m.log.push(format!("drop file {victim}"));
            }
            1 => {
                files.push(files[victim].clone());
                m.log.push(format!("repeat file {victim}"));
            }
            _ => {
                m.log.push(format!("in file {victim}:"));
                m.mutate(&mut files[victim]);
            }
        }
        files.join(FILE_SEPARATOR)
    };
    campaign("series", 2, make, runner("series"));
}

/// DICOM SEG onto each grid, directly and through the format sniffer.
#[test]
// dicom-parser 0.10 allocates declared value lengths; `dicom::precheck` refuses such
// inputs before it runs, which is what these smoke tests guard.
fn seg_decoding_never_panics() {
    campaign("seg", 3, mutate_bytes, runner("seg"));
}

/// NIfTI label maps onto each grid, directly and through the format sniffer.
#[test]
fn nifti_labelmaps_never_panic() {
    campaign("nifti_labelmap", 4, mutate_bytes, runner("nifti_labelmap"));
}

/// NIfTI image volumes.
#[test]
fn nifti_volumes_never_panic() {
    campaign("nifti_volume", 5, mutate_bytes, runner("nifti_volume"));
}

/// NRRD label maps and volumes: header values set to boundary cases, and byte mutations.
#[test]
fn nrrd_files_never_panic() {
    let make = |m: &mut Mutator, seed: &[u8]| {
        if m.rng.random_bool(0.5)
            && let Some(out) = mutate_nrrd_header(m, seed)
        {
            return out;
        }
        mutate_bytes(m, seed)
    };
    campaign("nrrd", 6, make, runner("nrrd"));
}

/// RT Structure Sets onto each grid, directly and through the format sniffer.
#[test]
fn rtstruct_decoding_never_panics() {
    campaign("rtstruct", 7, mutate_bytes, runner("rtstruct"));
}

/// STOW-RS multipart/related bodies, then the identification of every part.
#[test]
fn stow_bodies_never_panic() {
    campaign("stow", 8, mutate_bytes, runner("stow"));
}

/// Replay saved inputs (a smoke failure or a libFuzzer crash file), with timings:
/// `FUZZ_REPLAY=<target>:<file>[,<file>…] cargo test --test fuzz_smoke replay -- --ignored --nocapture`.
#[test]
#[ignore = "replays the files named in FUZZ_REPLAY"]
fn replay() {
    let spec = std::env::var("FUZZ_REPLAY").expect("FUZZ_REPLAY=<target>:<file>[,<file>...]");
    let (target, files) = spec.split_once(':').expect("FUZZ_REPLAY=<target>:<files>");
    let run = runner(target);
    for file in files.split(',') {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let started = Instant::now();
        run(&data);
        println!("{file}: {:?}", started.elapsed());
    }
}
