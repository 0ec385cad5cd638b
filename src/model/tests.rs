//! Unit tests of the model layer.
//!
//! Manifest checks run everywhere. Tests that score need the ONNX Runtime library
//! (`scripts/setup.sh ort`); without it they print `SKIPPED` to the terminal and return,
//! unless `RADSCORE_REQUIRE_ORT=1`, which turns a missing library into a failure (CI sets
//! it).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::features::{ExtractionSettings, Location};

/// Parameters of `testdata/logreg4.onnx`; keep in sync with
/// `training/make_test_fixture.py`, which wrote it.
const FIXTURE_COEF: [f64; 4] = [0.5, -1.25, 2.0, 0.0];
const FIXTURE_INTERCEPT: f64 = -0.75;
const FIXTURE_ONNX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/model/testdata/logreg4.onnx"
);

/// The graph computes in `f32`; the reference in `f64`. A few ulps of `f32` near 1.
const F32_TOLERANCE: f64 = 1e-6;

/// Initialise ONNX Runtime, or report the skip (or fail under `RADSCORE_REQUIRE_ORT=1`).
fn runtime_or_skip(test: &str) -> bool {
    match init_runtime(None) {
        Ok(()) => true,
        Err(e) => {
            if std::env::var("RADSCORE_REQUIRE_ORT").as_deref() == Ok("1") {
                panic!("RADSCORE_REQUIRE_ORT=1 but ONNX Runtime is unavailable: {e}");
            }
            // Written past the test harness's capture so the skip is visible.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {e}");
            false
        }
    }
}

fn fixture_names() -> Vec<String> {
    ["f_a", "f_b", "f_c", "f_d"].map(String::from).to_vec()
}

fn manifest_for(names: Vec<String>, settings: &ExtractionSettings) -> Manifest {
    Manifest {
        manifest_version: MANIFEST_SCHEMA_VERSION,
        name: "unit-test-logreg".into(),
        version: "0.0.1".into(),
        synthetic_demo: true,
        intended_use: "unit tests only".into(),
        feature_names: names,
        extraction_settings: serde_json::to_value(settings).unwrap(),
        settings_hash: settings.hash(),
        input: InputSpec {
            name: "input".into(),
            dtype: "float32".into(),
        },
        output: OutputSpec {
            name: "probabilities".into(),
            probability_column: 1,
            semantics: "P(class 1)".into(),
        },
        training_data: TrainingData {
            description: "none".into(),
            n_patients: 0,
            n_lesions: 0,
            n_positive: 0,
            fingerprint: "sha256:0".into(),
        },
        metrics: Metrics {
            validation: "none".into(),
            cv_auc_mean: 0.5,
            cv_auc_std: 0.0,
            cv_auc_folds: vec![],
            extra: Default::default(),
        },
        training_ranges: Default::default(),
        explanation: None,
        robustness: Default::default(),
        acquisition: None,
    }
}

/// A model directory with the fixture graph and `manifest`.
fn model_dir(manifest: &Manifest) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::copy(FIXTURE_ONNX, dir.join(MODEL_FILE)).unwrap();
    write_manifest(&dir, manifest);
    (tmp, dir)
}

fn write_manifest(dir: &Path, manifest: &Manifest) {
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec_pretty(manifest).unwrap(),
    )
    .unwrap();
}

fn sigmoid_reference(row: &[f64]) -> f64 {
    let z: f64 = row
        .iter()
        .zip(FIXTURE_COEF)
        .map(|(x, w)| x * w)
        .sum::<f64>()
        + FIXTURE_INTERCEPT;
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn predict_matches_the_logistic_formula() {
    if !runtime_or_skip("predict_matches_the_logistic_formula") {
        return;
    }
    let settings = ExtractionSettings::bundled();
    let (_tmp, dir) = model_dir(&manifest_for(fixture_names(), &settings));
    let model = Model::load(&dir).unwrap();

    let rows = vec![
        vec![1.0, 2.0, 3.0, 4.0],
        vec![0.0, 0.0, 0.0, 0.0],
        vec![-3.5, 1.25, -0.5, 100.0],
    ];
    let p = model.predict(&rows).unwrap();
    assert_eq!(p.len(), rows.len());
    for (row, got) in rows.iter().zip(&p) {
        let want = sigmoid_reference(row);
        assert!(
            (got - want).abs() < F32_TOLERANCE,
            "row {row:?}: got {got}, want {want}"
        );
    }
    assert!(model.predict(&[]).unwrap().is_empty());
}

#[test]
fn predict_refuses_non_finite_and_wrong_width() {
    if !runtime_or_skip("predict_refuses_non_finite_and_wrong_width") {
        return;
    }
    let (_tmp, dir) = model_dir(&manifest_for(
        fixture_names(),
        &ExtractionSettings::bundled(),
    ));
    let model = Model::load(&dir).unwrap();

    for bad in [f64::NAN, f64::INFINITY, 1e300] {
        let err = model
            .predict(&[vec![0.0; 4], vec![0.0, bad, 0.0, 0.0]])
            .unwrap_err();
        assert!(
            matches!(err, ModelError::InvalidInput { row: 1, .. }),
            "{bad}: {err}"
        );
    }
    let err = model.predict(&[vec![0.0; 3]]).unwrap_err();
    assert!(
        matches!(err, ModelError::InvalidInput { row: 0, .. }),
        "{err}"
    );
}

#[test]
fn info_reports_the_digest_of_model_onnx() {
    if !runtime_or_skip("info_reports_the_digest_of_model_onnx") {
        return;
    }
    use sha2::{Digest, Sha256};
    let (_tmp, dir) = model_dir(&manifest_for(
        fixture_names(),
        &ExtractionSettings::bundled(),
    ));
    let model = Model::load(&dir).unwrap();
    let bytes = std::fs::read(FIXTURE_ONNX).unwrap();
    let info = model.info();
    assert_eq!(
        info.sha256,
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    );
    assert_eq!(info.name, "unit-test-logreg");
    assert!(info.synthetic_demo);
}

#[test]
fn load_refuses_a_manifest_that_does_not_match_the_graph() {
    if !runtime_or_skip("load_refuses_a_manifest_that_does_not_match_the_graph") {
        return;
    }
    let settings = ExtractionSettings::bundled();

    let mut five = fixture_names();
    five.push("f_e".into());
    let (_tmp, dir) = model_dir(&manifest_for(five, &settings));
    let err = Model::load(&dir).unwrap_err();
    assert!(matches!(err, ModelError::Signature(_)), "{err}");
    assert!(err.to_string().contains("5 feature names"), "{err}");

    let mut wrong_output = manifest_for(fixture_names(), &settings);
    wrong_output.output.name = "probability".into();
    write_manifest(&dir, &wrong_output);
    std::fs::copy(FIXTURE_ONNX, dir.join(MODEL_FILE)).unwrap();
    let err = Model::load(&dir).unwrap_err();
    assert!(
        err.to_string().contains("no output named 'probability'"),
        "{err}"
    );

    let mut wrong_column = manifest_for(fixture_names(), &settings);
    wrong_column.output.probability_column = 2;
    write_manifest(&dir, &wrong_column);
    assert!(matches!(
        Model::load(&dir).unwrap_err(),
        ModelError::Signature(_)
    ));
}

#[test]
fn load_refuses_a_graph_that_is_not_onnx() {
    if !runtime_or_skip("load_refuses_a_graph_that_is_not_onnx") {
        return;
    }
    let (_tmp, dir) = model_dir(&manifest_for(
        fixture_names(),
        &ExtractionSettings::bundled(),
    ));
    std::fs::write(dir.join(MODEL_FILE), b"not an onnx graph").unwrap();
    assert!(matches!(
        Model::load(&dir).unwrap_err(),
        ModelError::Session { .. }
    ));
}

#[test]
fn manifest_with_edited_settings_is_refused() {
    let settings = ExtractionSettings::bundled();
    let mut manifest = manifest_for(fixture_names(), &settings);
    manifest.extraction_settings["profiles"]["pleura"]["texture_distance_vox"] = 2.into();
    let err = manifest.validate().unwrap_err();
    assert!(err.to_string().contains(&settings.hash()), "{err}");

    let mut manifest = manifest_for(fixture_names(), &settings);
    manifest.feature_names.push("f_a".into());
    assert!(
        manifest
            .validate()
            .unwrap_err()
            .to_string()
            .contains("'f_a' appears twice")
    );
}

#[test]
fn manifest_from_an_older_settings_schema_loads_but_is_incompatible() {
    let settings = ExtractionSettings::bundled();
    let mut manifest = manifest_for(settings.feature_names(), &settings);
    manifest.extraction_settings = serde_json::json!({ "schema_version": 1, "old_field": 3 });
    manifest.settings_hash = "sha256:from-an-older-build".into();
    manifest.validate().unwrap();
    let err = manifest.check_compatible(&settings).unwrap_err();
    assert!(
        matches!(err, ModelError::IncompatibleSettings { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("sha256:from-an-older-build"),
        "{err}"
    );

    // The same unreadable object with the extractor's own hash is an edited manifest.
    manifest.settings_hash = settings.hash();
    let err = manifest.check_compatible(&settings).unwrap_err();
    assert!(matches!(err, ModelError::ManifestInvalid(_)), "{err}");
}

#[test]
fn missing_manifest_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Manifest::read(&tmp.path().join(MANIFEST_FILE)).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }));
    assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
}

#[test]
fn compatible_with_the_extractor_it_was_trained_for() {
    let settings = ExtractionSettings::bundled();
    let manifest = manifest_for(settings.feature_names(), &settings);
    manifest.validate().unwrap();
    manifest.check_compatible(&settings).unwrap();
}

#[test]
fn a_subset_of_the_extracted_features_in_any_order_is_compatible() {
    let settings = ExtractionSettings::bundled();
    let names = settings.feature_names();
    assert!(
        names.len() >= 3,
        "the bundled settings produce several features"
    );
    let subset = vec![names[2].clone(), names[0].clone()];
    let manifest = manifest_for(subset, &settings);
    manifest.check_compatible(&settings).unwrap();

    let values: std::collections::HashMap<&str, f64> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as f64))
        .collect();
    let row = manifest.select_row(|n| values.get(n).copied()).unwrap();
    assert_eq!(
        row,
        vec![2.0, 0.0],
        "columns picked by name, in model order"
    );
    assert_eq!(
        manifest.select_row(|n| (n != names[0]).then_some(1.0)),
        Err(names[0].as_str())
    );
}

#[test]
fn features_the_extractor_lacks_are_named() {
    let settings = ExtractionSettings::bundled();
    let mut names = settings.feature_names();
    names.push("extra_feature".into());
    names.push("other_feature".into());
    let err = manifest_for(names, &settings)
        .check_compatible(&settings)
        .unwrap_err();
    assert!(matches!(err, ModelError::UnknownFeatures { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("2 feature(s)") && text.contains("extra_feature, other_feature"),
        "{text}"
    );
}

#[test]
fn annotations_must_name_model_features() {
    let settings = ExtractionSettings::bundled();
    let names = settings.feature_names();
    let mut manifest = manifest_for(vec![names[0].clone()], &settings);
    manifest
        .training_ranges
        .insert(names[1].clone(), FeatureRange { min: 0.0, max: 1.0 });
    let text = manifest.validate().unwrap_err().to_string();
    assert!(
        text.contains(&format!("training_ranges names '{}'", names[1])),
        "{text}"
    );

    manifest.training_ranges.clear();
    manifest
        .training_ranges
        .insert(names[0].clone(), FeatureRange { min: 2.0, max: 1.0 });
    let text = manifest.validate().unwrap_err().to_string();
    assert!(text.contains("expected finite min <= max"), "{text}");
}

#[test]
fn incompatible_settings_report_both_hashes() {
    let trained_with = ExtractionSettings::bundled();
    let manifest = manifest_for(trained_with.feature_names(), &trained_with);

    let mut now = trained_with.clone();
    now.profiles
        .get_mut(&Location::Pleura)
        .unwrap()
        .texture_distance_vox = 2;
    let err = manifest.check_compatible(&now).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelError::IncompatibleSettings { .. }));
    assert!(
        text.contains(&trained_with.hash()) && text.contains(&now.hash()),
        "{text}"
    );
}

/// The committed demo model, relative to the crate root.
const DEMO_MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/demo");

#[test]
fn bundled_demo_model_matches_the_extractor() {
    // Manifest-level check first: runs without ONNX Runtime.
    let settings = ExtractionSettings::bundled();
    let manifest = match Manifest::read(&Path::new(DEMO_MODEL_DIR).join(MANIFEST_FILE)) {
        Ok(m) => m,
        Err(e) => panic!("models/demo/manifest.json is unreadable ({e}); run training/train.sh"),
    };
    if let Err(e) = manifest.check_compatible(&settings) {
        panic!("models/demo is stale for this extractor ({e}); rebuild it with training/train.sh");
    }
    assert!(manifest.synthetic_demo);
    assert!(manifest.intended_use.contains("NOT for clinical use"));

    if !runtime_or_skip("bundled_demo_model_matches_the_extractor") {
        return;
    }
    let model = Model::load(Path::new(DEMO_MODEL_DIR)).unwrap();
    model.check_compatible(&settings).unwrap();
    assert!(model.info().synthetic_demo);
}
