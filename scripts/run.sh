#!/usr/bin/env bash
# Set up and start radscore on its embedded defaults: SQLite in var/radscore.db, blobs in
# var/blobs, the bundled demo model in models/demo, listening on 127.0.0.1:8080.
#
#   scripts/run.sh [extra `radscore serve` flags]
#
# Fetches the ONNX Runtime library on first use (scripts/setup.sh ort), builds radscore
# with cargo (the same profile the tests use) and writes the walkthrough sample to
# sample/ if it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh ort
cargo build --bin radscore
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$ROOT/.ort/lib/libonnxruntime.so}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/radscore"
if [[ ! -f sample/series.zip ]]; then
    "$BIN" demo-data --out sample --seed 1 > /dev/null
    echo "run: wrote the walkthrough sample to sample/" >&2
fi
exec "$BIN" serve "$@"
