#!/usr/bin/env bash
# Rebuild the synthetic demo model from scratch:
#   synthetic cohort (radscore demo-data + extract) → training/data/
#   logistic regression, grouped CV, ONNX export    → models/demo/{model.onnx,manifest.json}
#   cross-check: radscore's Rust scoring == Python onnxruntime
#
#   training/train.sh            (PATIENTS=200 by default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PATIENTS="${PATIENTS:-200}"
PY="$ROOT/.venv/bin/python"

scripts/setup.sh all
cargo build --bin radscore
"$PY" training/generate_cohort.py --radscore target/debug/radscore --patients "$PATIENTS" \
    --out-dir training/data
"$PY" training/train.py --cohort-dir training/data --out models/demo
"$PY" training/verify_model.py --radscore target/debug/radscore --model models/demo
# Per-location robustness of the cohort's features, the input of training/pipeline.py (and
# the fixture of its test, training/test_pipeline.py).
"$PY" training/make_robustness.py --radscore target/debug/radscore --patients 15 \
    --perturbations 5 --out-dir training/data
