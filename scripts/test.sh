#!/usr/bin/env bash
# Run every test of radscore: set up ONNX Runtime and the pinned Python environment used for
# reference checks, then format check, unit tests, reference tests and HTTP integration tests.
#
#   scripts/test.sh
#
# Reference data is read from ../shared/data (override with RADSCORE_SHARED_DATA).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh all
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$ROOT/.ort/lib/libonnxruntime.so}"
export RADSCORE_PYTHON="${RADSCORE_PYTHON:-$ROOT/.venv/bin/python}"
export RADSCORE_REQUIRE_ORT=1
export RADSCORE_SHARED_DATA="${RADSCORE_SHARED_DATA:-$ROOT/../shared/data}"
[[ -d "$RADSCORE_SHARED_DATA/ibsi1" ]] || { echo "test: reference data not found in $RADSCORE_SHARED_DATA" >&2; exit 1; }
cargo fmt --check
cargo test --all-targets
cargo clippy --all-targets -- -D warnings
