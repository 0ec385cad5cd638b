//! The training pipeline (`training/pipeline.py`) on the synthetic cohort, checked against
//! scikit-learn by `training/test_pipeline.py`: metrics recomputed from the out-of-fold
//! predictions, the ONNX export against scikit-learn's calibrated model, patient-grouped
//! folds, and the feature-selection rules.
//!
//! Needs the pinned Python environment (`scripts/setup.sh python`), found through
//! `$RADSCORE_PYTHON` or `<crate>/.venv/bin/python`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn training_pipeline_metrics_match_scikit_learn() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("RADSCORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg(root.join("training/test_pipeline.py"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); set RADSCORE_PYTHON", python.display()));
    assert!(
        out.status.success(),
        "training/test_pipeline.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
