//! Series encodings: the IBSI CT phantom re-encoded by independent tools and assembled by
//! radscore.
//!
//! * Transfer syntaxes: a slab re-encoded by pydicom / pylibjpeg / imagecodecs
//!   (`tests/support/transcode.py`), compared with pydicom's own decode of the same files
//!   and with the uncompressed series.
//! * Enhanced CT: the series converted by highdicom into a Legacy Converted Enhanced CT
//!   (`tests/support/make_enhanced_ct.py`), compared with the classic series.
//!
//! Data: `$RADSCORE_SHARED_DATA` (the CT phantom DICOM series); Python: `$RADSCORE_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use radscore::dicom::{AssembledSeries, DicomError, assemble_series, files_from_dir};

/// Slices of the phantom re-encoded per case (contiguous: file order runs along z).
const SLAB_SLICES: &str = "8";

/// Lossless encodings must give pydicom's HU exactly.
const LOSSLESS: [&str; 7] = [
    "implicit",
    "explicit",
    "deflated",
    "rle",
    "j2k-lossless",
    "jpeg-lossless-sv1",
    "jpeg-lossless",
];

/// Two conforming decoders of the same lossy codestream may round an inverse transform
/// differently: allow one stored value (JPEG 2000: slope 1, so 1 HU; 8-bit JPEG: slope 16).
const J2K_DECODER_TOLERANCE_HU: f32 = 1.0;
const JPEG_8BIT_DECODER_TOLERANCE_HU: f32 = 16.0;

/// Mean absolute error of the lossy encodings against the uncompressed series, HU. Measured
/// with pydicom's decoders: JPEG 2000 at ratio 10 gives 12.8 HU, JPEG Baseline at quality
/// 90 on the 8-bit (16 HU per level) series gives 15.1 HU; the bounds leave some margin.
const J2K_LOSSY_MEAN_ERROR_HU: f64 = 20.0;
const JPEG_BASELINE_MEAN_ERROR_HU: f64 = 24.0;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn series_dir() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../shared/data"))
        .join("ibsi1/ct_phantom/dicom/image")
}

fn python() -> PathBuf {
    std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join(".venv/bin/python"))
}

/// One re-encoded slab: radscore's assembly (or its error) and pydicom's HU.
struct Case {
    _dir: tempfile::TempDir,
    assembled: Result<AssembledSeries, DicomError>,
    reference_hu: Vec<f32>,
}

/// Run a `tests/support` script with `args`, failing the test with its stderr.
fn run_support(script: &str, args: &[&str]) {
    let out = Command::new(python())
        .arg(crate_dir().join("tests/support").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn transcode(syntax: &str) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let (series, out) = (series_dir(), dir.path().to_owned());
    let args = [
        "--series",
        utf8(&series),
        "--out",
        utf8(&out),
        "--syntax",
        syntax,
        "--limit",
        SLAB_SLICES,
    ];
    run_support("transcode.py", &args);
    let raw = std::fs::read(dir.path().join("reference.f32")).unwrap();
    let reference_hu = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    std::fs::remove_file(dir.path().join("reference.f32")).unwrap();
    let files = files_from_dir(dir.path()).unwrap();
    Case {
        assembled: assemble_series(&files),
        reference_hu,
        _dir: dir,
    }
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn hu(case: &Case, syntax: &str) -> Vec<f32> {
    match &case.assembled {
        Ok(s) => s.volume.hu.iter().collect(),
        Err(e) => panic!("{syntax}: {e}"),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "volumes differ in size");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn mean_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "volumes differ in size");
    let sum: f64 = a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).sum();
    sum / a.len() as f64
}

/// Every lossless encoding decodes to exactly pydicom's HU, and to the same volume and
/// grid as the uncompressed series.
#[test]
fn lossless_syntaxes_decode_to_the_uncompressed_volume() {
    let explicit = transcode("explicit");
    let baseline = hu(&explicit, "explicit");
    let grid = &explicit.assembled.as_ref().unwrap().volume.grid;
    for syntax in LOSSLESS {
        let case = transcode(syntax);
        let values = hu(&case, syntax);
        assert_eq!(
            max_abs_diff(&values, &case.reference_hu),
            0.0,
            "{syntax}: differs from pydicom's decode"
        );
        assert_eq!(max_abs_diff(&values, &baseline), 0.0, "{syntax}");
        assert_eq!(&case.assembled.as_ref().unwrap().volume.grid, grid);
    }
}

/// Lossy JPEG 2000 and JPEG Baseline agree with pydicom's decoders within one stored value
/// and with the uncompressed series within the stated mean error.
#[test]
fn lossy_syntaxes_decode_within_tolerance() {
    let cases = [
        (
            "j2k-lossy",
            "explicit",
            J2K_DECODER_TOLERANCE_HU,
            J2K_LOSSY_MEAN_ERROR_HU,
        ),
        (
            "jpeg-baseline-8bit",
            "explicit-8bit",
            JPEG_8BIT_DECODER_TOLERANCE_HU,
            JPEG_BASELINE_MEAN_ERROR_HU,
        ),
    ];
    for (syntax, original, decoder_tolerance, mean_error) in cases {
        let case = transcode(syntax);
        let values = hu(&case, syntax);
        let to_pydicom = max_abs_diff(&values, &case.reference_hu);
        assert!(
            to_pydicom <= decoder_tolerance,
            "{syntax}: {to_pydicom} HU from pydicom's decode (tolerance {decoder_tolerance})"
        );
        let uncompressed = hu(&transcode(original), original);
        let error = mean_abs_diff(&values, &uncompressed);
        assert!(
            error <= mean_error,
            "{syntax}: mean error {error:.2} HU against {original} (bound {mean_error})"
        );
        assert!(error > 0.0, "{syntax} should be lossy");
    }
}

/// A syntax without a built-in decoder (JPEG-LS) is refused naming the UID and the file.
#[test]
fn unsupported_syntax_names_the_uid_and_file() {
    let case = transcode("jpeg-ls");
    let err = case
        .assembled
        .expect_err("JPEG-LS has no decoder in this build");
    let msg = err.to_string();
    assert!(
        matches!(&err, DicomError::UnsupportedTransferSyntax { uid, .. } if uid == "1.2.840.10008.1.2.4.80"),
        "{msg}"
    );
    assert!(
        msg.contains("DCM_IMG_0000") && msg.contains("JPEG-LS"),
        "{msg}"
    );
}

/// Build an enhanced CT of the whole phantom with `extra` options; assemble it.
fn enhanced(extra: &[&str]) -> Result<AssembledSeries, DicomError> {
    let dir = tempfile::tempdir().unwrap();
    let (series, out) = (series_dir(), dir.path().join("enhanced.dcm"));
    let mut args = vec!["--series", utf8(&series), "--out", utf8(&out)];
    args.extend_from_slice(extra);
    run_support("make_enhanced_ct.py", &args);
    assemble_series(&files_from_dir(dir.path()).unwrap())
}

fn classic() -> AssembledSeries {
    assemble_series(&files_from_dir(&series_dir()).unwrap()).expect("phantom assembles")
}

/// A highdicom Legacy Converted Enhanced CT (frames in shuffled order, one frame with its
/// own per-frame rescale) gives the classic series' volume and grid exactly.
#[test]
fn enhanced_ct_equals_the_classic_series() {
    let classic = classic();
    let multi = enhanced(&["--shuffle", "7", "--rescale-frame", "4"]).unwrap();
    assert_eq!(multi.volume.grid, classic.volume.grid);
    assert!(multi.volume.hu == classic.volume.hu, "HU differ");
    assert_eq!(multi.series_uid, classic.series_uid);
    assert_eq!(multi.instance_count, 1);
    assert!((multi.measured_slice_spacing_mm - classic.measured_slice_spacing_mm).abs() < 1e-9);
}

/// A frame without its Plane Position is refused naming the file, the frame and the group.
#[test]
fn enhanced_ct_frame_without_position_is_named() {
    let err = enhanced(&["--limit", "6", "--drop-position", "2"]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DicomError::MissingTag { .. }), "{msg}");
    assert!(
        msg.contains("enhanced.dcm frame 3") && msg.contains("PlanePositionSequence"),
        "{msg}"
    );
}
