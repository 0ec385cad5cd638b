#!/usr/bin/env bash
# Benchmarks, written to docs/benchmarks.md:
#
#   scripts/bench.sh extraction    # issue #3: a job's full path (DICOM files -> volume ->
#                                  # per-lesion features) on the synthetic 512x512x300 CT
#                                  # with 5 lesions of 10-200 cm3 and on the IBSI CT phantom:
#                                  # wall time, CPU time, peak RSS vs the volume size
#   scripts/bench.sh pyradiomics   # radscore vs PyRadiomics on the same cases, every feature
#                                  # class alone and all together: speed-up per class and
#                                  # overall, peak memory of each, load average
#   scripts/bench.sh               # both
#
#   BENCH_RUNS=9 scripts/bench.sh  # measured runs per variant (default 5)
#   BENCH_PROFILE=dev scripts/bench.sh extraction   # measure the dev profile (default release)
#   BENCH_WARMUP=0 scripts/bench.sh extraction      # no unrecorded warm-up run (default 1)
#   BENCH_IDLE_WAIT=600 scripts/bench.sh pyradiomics   # wait longer for a quiet machine (default 180 s)
#
# radscore vs PyRadiomics: feature-extraction wall time, CPU time and peak RSS on the IBSI
# CT phantom and the PyRadiomics test cases brain1, brain2 and breast1, in one run on this
# machine.
#
# Needs: cargo, python3 (3.11; with venv for the PyRadiomics part), a C compiler
# (PyRadiomics' C extensions are built from its sdist), GNU time (installed with apt-get
# when missing), and PyPI (PyRadiomics part only).
# Reference data is read from ../shared/data (override with RADSCORE_SHARED_DATA); the IBSI
# CT phantom is CC BY-NC and is read in place, never copied into the repository. The NRRD
# cases are converted to NIfTI, and the synthetic CT is generated, in a temporary directory
# that is removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${RADSCORE_SHARED_DATA:-$ROOT/../shared/data}"
RUNS="${BENCH_RUNS:-5}"
VENV="$ROOT/.venv-bench"
# RADSCORE_PYTHON: an interpreter that already has the pins of bench/requirements.txt (e.g.
# the test environment .venv, whose training/requirements.txt pins the same PyRadiomics);
# otherwise .venv-bench is created from bench/requirements.txt.
PY="${RADSCORE_PYTHON:-$VENV/bin/python}"

MODE="${1:-all}"
case "$MODE" in
  extraction|pyradiomics|all) ;;
  *) echo "usage: scripts/bench.sh [extraction|pyradiomics|all]" >&2; exit 2 ;;
esac

[[ -d "$SHARED/ibsi1" && -d "$SHARED/pyradiomics" ]] \
  || { echo "bench: reference data not found in $SHARED" >&2; exit 1; }

# GNU time for peak RSS ("Maximum resident set size").
if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "bench: installing GNU time"
  apt-get install -y -q time >/dev/null || { apt-get update -q && apt-get install -y -q time; }
fi

load1() { cut -d' ' -f1 /proc/loadavg; }

# Issue #3: the extraction path of a job, one process per run, under GNU time.
extraction_bench() {
  local radscore="$1" work="$2"
  local synth="$work/synthetic" phantom="$SHARED/ibsi1/ct_phantom/dicom"
  echo "bench: writing the synthetic 512x512x300 CT to $synth"
  "$radscore" bench generate --out "$synth" --seed 1 >"$work/synthetic.json"
  local synth_args=(--series "$synth/series" --mask "$synth/lesions.nii.gz"
    --lesion 1:lymph_node --lesion 2:peritoneum --lesion 3:soft_tissue --lesion 4:other
    --lesion 5:pleura)
  local phantom_args=(--series "$phantom/image" --mask "$phantom/mask/DCM_RS_00060.dcm"
    --lesion 1:other)
  : >"$work/runs.tsv"
  local loads=()
  echo "bench: measuring the extraction path ($RUNS runs per variant; load now: $(load1))"
  for run in $(seq "$((1 - ${BENCH_WARMUP:-1}))" "$RUNS"); do
    for case in synthetic_ct ibsi_ct_phantom; do
      for set in job ibsi; do
        local args=("${synth_args[@]}")
        [[ "$case" == ibsi_ct_phantom ]] && args=("${phantom_args[@]}")
        local tag="$case-$set-$run" before after
        before="$(load1)"
        /usr/bin/time -v -o "$work/$tag.time" \
          "$radscore" bench run "${args[@]}" --features "$set" >"$work/$tag.json"
        after="$(load1)"
        # Run 0 is an unrecorded warm-up (page cache, CPU frequency), unless BENCH_WARMUP=0.
        if [[ "$run" -gt 0 ]]; then
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$set" "$run" "$tag.json" \
            "$tag.time" "$before" "$after" >>"$work/runs.tsv"
          loads+=("$before" "$after")
          echo "  $tag: $(grep -F 'Elapsed (wall' "$work/$tag.time" | awk '{print $NF}'), $(grep -F 'Maximum resident' "$work/$tag.time" | awk '{print $NF}') KiB, load $before-$after"
        fi
      done
    done
  done
  local sorted
  sorted="$(printf '%s\n' "${loads[@]}" | sort -g)"
  python3 - "$work/machine.json" "$radscore_version, $PROFILE profile" "$(rustc --version)" \
    "$(head -n1 <<<"$sorted")" "$(tail -n1 <<<"$sorted")" "$RUNS" <<'EOF_PY'
import json, os, platform, subprocess, sys, time
out, version, rustc, lo, hi, runs = sys.argv[1:7]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
            if l.startswith("model name")), platform.processor())
mem_kib = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
json.dump({
    "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    "cpu": cpu, "nproc": os.cpu_count(),
    "threads": int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count()),
    "mem": f"{mem_kib / 1024 / 1024:.1f} GiB", "kernel": f"Linux {platform.release()}",
    "version": version, "rustc": rustc, "load_min": lo, "load_max": hi, "runs": runs,
}, open(out, "w"), indent=2)
EOF_PY
  python3 bench/extraction.py report --work "$work" --out docs/benchmarks.md \
    --notes bench/extraction-notes.md
}

# BENCH_PROFILE=dev measures the (test/CI) dev profile instead, e.g. when a release build
# is too slow on a loaded machine; the report says which profile was measured.
PROFILE="${BENCH_PROFILE:-release}"
case "$PROFILE" in
  release) profile_flag=(--release); profile_dir=release ;;
  dev) profile_flag=(); profile_dir=debug ;;
  *) echo "bench: BENCH_PROFILE must be release or dev" >&2; exit 2 ;;
esac
echo "bench: building radscore ($PROFILE)"
cargo build "${profile_flag[@]}" --bin radscore
target_dir="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
RADSCORE="$target_dir/$profile_dir/radscore"

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

if [[ "$MODE" != pyradiomics ]]; then
  mkdir -p "$WORK/extraction"
  extraction_bench "$RADSCORE" "$WORK/extraction"
  [[ "$MODE" == extraction ]] && exit 0
fi

# PyRadiomics environment, reinstalled when bench/requirements.txt changes.
stamp="$VENV/.requirements.sha256"
want="$(sha256sum bench/requirements.txt | cut -d' ' -f1)"
if [[ -z "${RADSCORE_PYTHON:-}" && ( ! -x "$PY" || "$(cat "$stamp" 2>/dev/null)" != "$want" ) ]]; then
  echo "bench: creating $VENV"
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

"$PY" - "$WORK/versions.json" "$radscore_version" "$(rustc --version)" "$PROFILE" <<'EOF'
import json, sys
from importlib.metadata import version
import SimpleITK
out, radscore, rustc, profile = sys.argv[1:5]
json.dump({
    "radscore": f"{radscore}, `cargo build` {profile} profile, {rustc}",
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
sed -n '/^## Speed-up per class/,/^## Per case/p' docs/benchmarks.md | sed '$d'
