#!/usr/bin/env bash
# Benchmark radscore against PyRadiomics: feature-extraction wall time, CPU time and peak
# RSS on the IBSI CT phantom and the PyRadiomics test cases brain1, brain2 and breast1,
# in one run on this machine, and write the figures to docs/benchmarks.md.
#
#   scripts/bench.sh                 # 5 measured runs per variant
#   BENCH_RUNS=9 scripts/bench.sh
#   BENCH_IDLE_WAIT=600 scripts/bench.sh   # wait longer for a quiet machine (default 180 s)
#
# Needs: cargo, python3 (3.11) with venv, a C compiler (PyRadiomics' C extensions are built
# from its sdist), GNU time (installed with apt-get when missing), and PyPI.
# Reference data is read from ../shared/data (override with RADSCORE_SHARED_DATA); the IBSI
# CT phantom is CC BY-NC and is read in place, never copied into the repository. The NRRD
# cases are converted to NIfTI in a temporary directory that is removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${RADSCORE_SHARED_DATA:-$ROOT/../shared/data}"
RUNS="${BENCH_RUNS:-5}"
VENV="$ROOT/.venv-bench"
PY="$VENV/bin/python"

[[ -d "$SHARED/ibsi1" && -d "$SHARED/pyradiomics" ]] \
  || { echo "bench: reference data not found in $SHARED" >&2; exit 1; }

# GNU time for peak RSS ("Maximum resident set size").
if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "bench: installing GNU time"
  apt-get install -y -q time >/dev/null || { apt-get update -q && apt-get install -y -q time; }
fi

# PyRadiomics environment, reinstalled when bench/requirements.txt changes.
stamp="$VENV/.requirements.sha256"
want="$(sha256sum bench/requirements.txt | cut -d' ' -f1)"
if [[ ! -x "$PY" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "bench: creating $VENV"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -r bench/requirements.txt
  echo "$want" >"$stamp"
fi

echo "bench: building radscore (release)"
cargo build --release --bin radscore
target_dir="$(cargo metadata --format-version 1 --no-deps \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
RADSCORE="$target_dir/release/radscore"

WORK="$(mktemp -d -t radscore-bench.XXXXXX)"
# BENCH_KEEP=1 keeps the raw runs (runs.tsv) and both tools' outputs for inspection.
if [[ -n "${BENCH_KEEP:-}" ]]; then
  trap 'echo "bench: raw results kept in $WORK"' EXIT
else
  trap 'rm -rf "$WORK"' EXIT
fi

# Versions, for the report.
commit="$(git rev-parse --short HEAD)"
dirty="$(git status --porcelain -- src Cargo.toml Cargo.lock config | wc -l)"
if [[ "$dirty" -gt 0 ]]; then
  radscore_version="$commit plus uncommitted changes to $dirty files under src/, config/, Cargo.* (the working tree as built)"
else
  radscore_version="$commit"
fi
"$PY" - "$WORK/versions.json" "$radscore_version" "$(rustc --version)" <<'EOF'
import json, sys
from importlib.metadata import version
import SimpleITK
out, radscore, rustc = sys.argv[1:4]
json.dump({
    "radscore": f"{radscore}, `cargo build --release`, {rustc}",
    "PyRadiomics": f"pyradiomics-bhklab {version('pyradiomics-bhklab')} on Python "
                   f"{sys.version.split()[0]}, numpy {version('numpy')}, "
                   f"SimpleITK {SimpleITK.Version_VersionString()}, "
                   f"PyWavelets {version('PyWavelets')}",
}, open(out, "w"), indent=2)
EOF

echo "bench: preparing cases in $WORK"
"$PY" bench/bench.py prepare --shared "$SHARED" --work "$WORK"

echo "bench: measuring ($RUNS runs per variant; load now: $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" bench/bench.py measure --work "$WORK" --radscore "$RADSCORE" --python "$PY" --runs "$RUNS" \
  --idle-wait "${BENCH_IDLE_WAIT:-180}"

"$PY" bench/bench.py report --work "$WORK" --out docs/benchmarks.md
echo
sed -n '/^## Results/,/^## Value/p' docs/benchmarks.md | sed '$d'
