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
PY="$VENV/bin/python"

[[ -d "$SHARED/pyradiomics" ]] || { echo "parity: $SHARED/pyradiomics not found" >&2; exit 1; }

stamp="$VENV/.requirements.sha256"
want="$(sha256sum bench/requirements.txt | cut -d' ' -f1)"
if [[ ! -x "$PY" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "parity: creating $VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -r bench/requirements.txt
  echo "$want" >"$stamp"
fi

cargo build --bin radscore
target_dir="$(cargo metadata --format-version 1 --no-deps \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
WORK="$(mktemp -d -t radscore-parity.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$PY" bench/parity.py --shared "$SHARED" --radscore "$target_dir/debug/radscore" \
  --work "$WORK" --out docs/pyradiomics-parity.md
