#!/usr/bin/env bash
# Set up and start radscore on its embedded defaults: SQLite in var/radscore.db, blobs in
# var/blobs, the bundled demo model in models/demo, listening on 127.0.0.1:8080.
#
#   scripts/run.sh [extra `radscore serve` flags]
#
# Fetches the ONNX Runtime library on first use (scripts/setup.sh ort), builds radscore
# with cargo (the same profile the tests use), writes the walkthrough sample to sample/ if
# it is missing, and creates an API key for the tenant `demo` in var/api-key (mode 0600)
# unless that file already holds a key the database knows and has not revoked.
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
if [[ "${RADSCORE_AUTH:-required}" == required ]]; then
    mkdir -p var
    key_id=""
    if [[ -s var/api-key ]]; then
        key_id="$(cut -d_ -f2 var/api-key)"
    fi
    if [[ -z "$key_id" ]] || ! "$BIN" keys list | grep -qP "^${key_id}\t\S+\tactive\t"; then
        (umask 077 && "$BIN" keys create --tenant demo --name scripts/run.sh > var/api-key.new)
        mv var/api-key.new var/api-key
        echo "run: API key for tenant 'demo' written to var/api-key" >&2
    fi
fi
exec "$BIN" serve "$@"
