//! radscore's image filters against PyRadiomics itself: PyRadiomics (pinned in
//! `training/requirements.txt`, run with `$RADSCORE_PYTHON` through
//! `tests/support/pyradiomics_filters.py`) and `radscore extract --params` extract the same
//! parameter file from PyRadiomics' own test cases in `shared/data/pyradiomics/`, and every
//! first-order and GLCM feature of every filtered image is compared.
//!
//! Tolerance: [`REL_TOL`], relative to `max(|PyRadiomics value|, FLOOR)`. radscore stores
//! filtered intensities as `f32` (PyRadiomics as `f64`), a relative rounding of 6e-8 per
//! voxel that moments of nearly symmetric distributions (skewness ≈ 0) amplify to ~1e-6;
//! ITK's recursive Gaussian keeps each LoG pass in `f32` too, and radscore filters the
//! lesion window plus 10 σ instead of the whole image. Measured worst cases: 3e-6
//! (logarithm skewness), LoG 2e-7, wavelets 1e-6.
//!
//! Whole-image normalisation (PyRadiomics `normalize`) is checked the same way.
//!
//! Not tested here, and different: a Haar wavelet on integer images puts many values
//! exactly on ties and bin edges, where PyRadiomics' `f64` rounding noise (1e-14) decides
//! the bin and radscore's `f32` values land elsewhere (up to 30 % on single texture
//! features); see the LIMITATION in `src/image/filters/wavelet.rs`.
//!
//! The data directory is `$RADSCORE_SHARED_DATA`, else `<CARGO_MANIFEST_DIR>/../shared/data`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Relative tolerance for every filtered feature (see the module docs).
const REL_TOL: f64 = 1e-5;
/// Values are compared relative to at least this magnitude, so features that are 0 up to
/// rounding (e.g. the skewness of a symmetric band) do not divide by ~0.
const FLOOR: f64 = 1e-6;

/// GLCM's maximal correlation coefficient, which radscore does not compute
/// (`docs/feature-names.md`).
const UNAVAILABLE_SUFFIX: &str = "_glcm_MCC";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_data() -> PathBuf {
    std::env::var_os("RADSCORE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../shared/data"))
}

fn python() -> PathBuf {
    std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join(".venv/bin/python"))
}

/// Run a command and fail the test with its stderr when it fails.
fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PyRadiomics' and radscore's features for one case and parameter file.
fn both(case: &str, params: &str, dir: &Path) -> (serde_json::Map<String, Value>, Value) {
    let images = shared_data().join("pyradiomics/images");
    let image = images.join(format!("{case}_image.nrrd"));
    let mask = images.join(format!("{case}_label.nrrd"));
    let params_path = dir.join(format!("{case}.json"));
    std::fs::write(&params_path, params).unwrap();

    let reference = dir.join(format!("{case}-pyradiomics.json"));
    run(
        Command::new(python())
            .arg(crate_dir().join("tests/support/pyradiomics_filters.py"))
            .args([&image, &mask, &params_path, &reference]),
        "PyRadiomics (set RADSCORE_PYTHON)",
    );
    let ours = dir.join(format!("{case}-radscore.json"));
    run(
        Command::new(env!("CARGO_BIN_EXE_radscore"))
            .arg("extract")
            .arg("--series")
            .arg(&image)
            .arg("--mask")
            .arg(&mask)
            .arg("--params")
            .arg(&params_path)
            .arg("--out")
            .arg(&ours)
            .arg("--quiet"),
        "radscore extract",
    );
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
    let ours: Value = serde_json::from_str(&std::fs::read_to_string(ours).unwrap()).unwrap();
    let features = ours["lesions"][0]["features"].clone();
    assert!(
        features.is_object(),
        "radscore computed no features: {}",
        ours["lesions"][0]
    );
    (reference.as_object().unwrap().clone(), features)
}

/// Compare every PyRadiomics feature (but [`UNAVAILABLE_SUFFIX`]) with radscore's;
/// returns how many were compared.
fn compare(case: &str, reference: &serde_json::Map<String, Value>, ours: &Value) -> usize {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, want) in reference {
        if name.ends_with(UNAVAILABLE_SUFFIX) {
            continue;
        }
        let want = want.as_f64().unwrap();
        let Some(got) = ours.get(name).and_then(Value::as_f64) else {
            failures.push(format!("{name}: missing from radscore's output"));
            continue;
        };
        let tol = REL_TOL;
        let rel = (got - want).abs() / want.abs().max(FLOOR);
        if rel > tol {
            failures.push(format!(
                "{name}: radscore {got} vs PyRadiomics {want} (relative {rel:.2e} > {tol:e})"
            ));
        }
        compared += 1;
    }
    assert!(
        failures.is_empty(),
        "{case}: {} of {} features differ:\n{}",
        failures.len(),
        reference.len(),
        failures.join("\n")
    );
    compared
}

/// Every filter on the whole image (no resampling, no preCrop), brain1: LoG at two σ with
/// its own bin width, the 8 coif1 wavelet bands, the four intensity maps and the gradient.
#[test]
fn filters_on_the_whole_image_match_pyradiomics() {
    let dir = tempfile::tempdir().unwrap();
    let params = r#"{
        "setting": {"binWidth": 25, "voxelArrayShift": 0, "label": 1},
        "imageType": {"LoG": {"sigma": [1.0, 3.0], "binWidth": 5}, "Wavelet": {},
                      "Square": {}, "SquareRoot": {}, "Logarithm": {}, "Exponential": {},
                      "Gradient": {}},
        "featureClass": {"firstorder": null, "glcm": null}}"#;
    let (reference, ours) = both("brain1", params, dir.path());
    let compared = compare("brain1", &reference, &ours);
    // (2 LoG + 8 wavelet + 5) images × (18 first-order + 23 GLCM) features.
    assert_eq!(compared, 15 * 41, "compared {compared}");
}

/// With `preCrop`, the filters see the lesion's bounding box padded by `padDistance`
/// voxels (breast1, padDistance 3): LoG, a two-level db2 wavelet from start level 1, the
/// square map (scaled by the crop's maximum) and the gradient at the crop's border.
#[test]
fn filters_on_the_padded_crop_match_pyradiomics() {
    let dir = tempfile::tempdir().unwrap();
    let params = r#"{
        "setting": {"binWidth": 10, "voxelArrayShift": 0, "label": 1, "preCrop": true,
                    "padDistance": 3},
        "imageType": {"LoG": {"sigma": [2.0]},
                      "Wavelet": {"wavelet": "db2", "start_level": 1, "level": 2},
                      "Square": {}, "Gradient": {}},
        "featureClass": {"firstorder": null, "glcm": null}}"#;
    let (reference, ours) = both("breast1", params, dir.path());
    let compared = compare("breast1", &reference, &ours);
    // (1 LoG + 15 wavelet + 2) images × 41 features.
    assert_eq!(compared, 18 * 41, "compared {compared}");
}

/// PyRadiomics' whole-image normalisation (`normalize`, `normalizeScale` 100,
/// `removeOutliers` 3), on the original image and under LoG and the square map (brain1).
#[test]
fn normalisation_matches_pyradiomics() {
    let dir = tempfile::tempdir().unwrap();
    let params = r#"{
        "setting": {"binWidth": 5, "voxelArrayShift": 300, "label": 1, "normalize": true,
                    "normalizeScale": 100, "removeOutliers": 3},
        "imageType": {"Original": {}, "LoG": {"sigma": [2.0]}, "Square": {}},
        "featureClass": {"firstorder": null, "glcm": null}}"#;
    let (reference, ours) = both("brain1", params, dir.path());
    let compared = compare("brain1", &reference, &ours);
    assert_eq!(compared, 3 * 41, "compared {compared}");
}

/// PyRadiomics names a LoG image from σ as written: `sigma: [2, 3.0]` gives
/// `log-sigma-2-mm-3D` and `log-sigma-3-0-mm-3D`; radscore writes the same names (and the
/// same values) for both (brain1, first-order mean and GLCM contrast).
#[test]
fn log_image_names_follow_sigma_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let params = r#"{
        "setting": {"binWidth": 25, "voxelArrayShift": 0, "label": 1},
        "imageType": {"LoG": {"sigma": [2, 3.0]}},
        "featureClass": {"firstorder": ["Mean"], "glcm": ["Contrast"]}}"#;
    let (reference, ours) = both("brain1", params, dir.path());
    for name in [
        "log-sigma-2-mm-3D_firstorder_Mean",
        "log-sigma-3-0-mm-3D_glcm_Contrast",
    ] {
        assert!(
            reference.contains_key(name),
            "PyRadiomics wrote {reference:?}"
        );
    }
    let compared = compare("brain1", &reference, &ours);
    assert_eq!(compared, 2 * 2, "compared {compared}");
}
