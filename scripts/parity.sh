#!/usr/bin/env bash
# PyRadiomics parity: run PyRadiomics and radscore on PyRadiomics' test cases with the
# settings of PyRadiomics' baseline CSVs, compare every feature (1e-6 relative) and write
# docs/pyradiomics-parity.md with every difference and its cause.
#
#   scripts/parity.sh
#
# PyRadiomics comes from the same pinned environment as the benchmark (.venv-bench, from
# bench/requirements.txt: pyradiomics-bhklab, built from its sdist, so a C compiler is
# needed). Reference data is read from ../shared/data (override: RADSCORE_SHARED_DATA).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${RADSCORE_SHARED_DATA:-$ROOT/../shared/data}"
VENV="$ROOT/.venv-bench"
# RADSCORE_PYTHON: an interpreter with the pins of bench/requirements.txt (e.g. .venv);
# otherwise .venv-bench is created from bench/requirements.txt.
PY="${RADSCORE_PYTHON:-$VENV/bin/python}"

[[ -d "$SHARED/pyradiomics" ]] || { echo "parity: $SHARED/pyradiomics not found" >&2; exit 1; }

stamp="$VENV/.requirements.sha256"
want="$(sha256sum bench/requirements.txt | cut -d' ' -f1)"
if [[ -z "${RADSCORE_PYTHON:-}" && ( ! -x "$PY" || "$(cat "$stamp" 2>/dev/null)" != "$want" ) ]]; then
  echo "parity: creating $VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -r bench/requirements.txt
  echo "$want" >"$stamp"
fi
# The interpreter must have the pinned PyRadiomics, whichever environment it comes from.
"$PY" - bench/requirements.txt <<'EOF_PIN'
import sys
from importlib.metadata import version
pins = dict(l.strip().split("==") for l in open(sys.argv[1]) if "==" in l and not l.startswith("#"))
have = version("pyradiomics-bhklab")
if have != pins["pyradiomics-bhklab"]:
    sys.exit(f"pyradiomics-bhklab {have} is not the pinned {pins['pyradiomics-bhklab']}")
EOF_PIN

cargo build --bin radscore
target_dir="$(cargo metadata --format-version 1 --no-deps \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
WORK="$(mktemp -d -t radscore-parity.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$PY" bench/parity.py --shared "$SHARED" --radscore "$target_dir/debug/radscore" \
  --work "$WORK" --out docs/pyradiomics-parity.md
