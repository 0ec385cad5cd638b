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
# PostgreSQL integration tests need the local server (127.0.0.1:5432, database `test`):
# start the packaged cluster when it is down. The tests fail (not skip) if it stays down.
if [[ -z "${RADSCORE_TEST_PG_URL:-}" ]] && command -v pg_ctlcluster >/dev/null \
    && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
fi
if [[ -z "${RADSCORE_TEST_PG_URL:-}" ]] && command -v psql >/dev/null \
    && ! psql -h 127.0.0.1 -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
        | grep -q 1; then
  createdb -h 127.0.0.1 -U postgres test
fi
cargo fmt --check
# Dependency licences, duplicate/banned crates and sources (deny.toml). Advisories are not
# checked here: their database is cloned from GitHub, which CI cannot reach.
"$(scripts/setup.sh deny-bin)" check licenses bans sources
cargo test --all-targets
cargo clippy --all-targets -- -D warnings
# A short coverage-guided run of every cargo-fuzz target (issue #4) on the machine's stable
# toolchain (`-s none`, see docs/fuzzing.md): RADSCORE_CI_FUZZ_SECONDS per target (10 by
# default; 0 skips it). The longer campaign is documented there.
if [[ "${RADSCORE_CI_FUZZ_SECONDS:-10}" != 0 ]]; then
  scripts/fuzz.sh "${RADSCORE_CI_FUZZ_SECONDS:-10}"
fi
