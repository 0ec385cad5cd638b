//! Shared helpers for radscore's fuzz targets: the series grids seeds are made for, and
//! the multi-file input format of the `series` target.
//!
//! The constants mirror `fuzz/make_seeds.py` and `tests/fuzz_smoke.rs`; change them
//! together.

use bytes::Bytes;
use radscore::dicom::{ArchiveLimits, InputFile};
use radscore::image::Grid;

/// Joins several DICOM files in one `series` input (and in its seeds).
pub const FILE_SEPARATOR: &[u8] = b"RADSCORE-FUZZ-NEXT-FILE";

/// Content-Type of every `stow` input: the seeds use this boundary.
pub const STOW_CONTENT_TYPE: &str =
    "multipart/related; type=\"application/dicom\"; boundary=radscore-fuzz";

/// Most files one `series` input is split into: more only slows the fuzzer down.
pub const MAX_FILES: usize = 64;

/// Archive limits for fuzzing: small enough that an accepted zip bomb stays far below
/// libFuzzer's RSS limit, so only a limit that is not enforced shows up as a crash.
pub const LIMITS: ArchiveLimits = ArchiveLimits {
    max_entries: 256,
    max_total_bytes: 16 << 20,
};

/// Axial LPS directions `[z, y, x]` of every seed grid.
const AXIAL: [[f64; 3]; 3] = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]];

/// Grids segmentations are mapped onto: the cropped demo series (most seeds), the whole
/// `demo-data --seed 1` series and the IBSI 1 digital phantom.
pub fn grids() -> [Grid; 3] {
    [
        Grid {
            shape_vox: [4, 16, 16],
            spacing_mm: [2.5, 0.8, 0.8],
            origin_mm: [-22.8, 8.4, 3.75],
            direction: AXIAL,
        },
        Grid {
            shape_vox: [32, 96, 96],
            spacing_mm: [2.5, 0.8, 0.8],
            origin_mm: [-38.0, -38.0, -38.75],
            direction: AXIAL,
        },
        Grid {
            shape_vox: [4, 4, 5],
            spacing_mm: [2.0, 2.0, 2.0],
            origin_mm: [0.0, 0.0, 0.0],
            direction: AXIAL,
        },
    ]
}

/// Split a `series` input into files at [`FILE_SEPARATOR`], at most [`MAX_FILES`].
pub fn split_files(data: &[u8]) -> Vec<InputFile> {
    let mut files = Vec::new();
    let mut rest = data;
    while files.len() + 1 < MAX_FILES {
        let Some(at) = rest
            .windows(FILE_SEPARATOR.len())
            .position(|w| w == FILE_SEPARATOR)
        else {
            break;
        };
        files.push(input_file(files.len(), &rest[..at]));
        rest = &rest[at + FILE_SEPARATOR.len()..];
    }
    files.push(input_file(files.len(), rest));
    files
}

fn input_file(index: usize, bytes: &[u8]) -> InputFile {
    InputFile {
        name: format!("file-{index}.dcm"),
        bytes: Bytes::copy_from_slice(bytes),
    }
}
