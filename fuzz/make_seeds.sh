#!/usr/bin/env bash
# Rebuild the seed corpus in fuzz/corpus/ from files the project may ship:
#   * a synthetic case from `radscore demo-data` (DICOM series, zip, NIfTI label map),
#     cropped to a few small slices so seeds stay small and fuzzing stays fast;
#   * DICOM SEGs written by tests/support/make_seg.py (highdicom) for that cropped series;
#   * the IBSI 1 digital phantom (CC BY 4.0; see fuzz/corpus/README.md).
# Never the IBSI CT phantom: it is CC BY-NC and must not enter the repository.
#
#   fuzz/make_seeds.sh            # needs target/debug/radscore and .venv (scripts/setup.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${RADSCORE_PYTHON:-$ROOT/.venv/bin/python}"
PHANTOM="${RADSCORE_SHARED_DATA:-$ROOT/../shared/data}/ibsi1/digital_phantom"
CORPUS="$ROOT/fuzz/corpus"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

"$ROOT/target/debug/radscore" demo-data --out "$WORK/demo" --seed 1 >/dev/null
mkdir -p "$CORPUS"/{zip,series,seg,nifti_labelmap,nifti_volume,nrrd,rtstruct}
"$PY" "$ROOT/fuzz/make_seeds.py" "$WORK/demo" "$PHANTOM" "$CORPUS" "$WORK"
make_seg() {
    "$PY" "$ROOT/tests/support/make_seg.py" --series "$WORK/small" \
        --mask "$WORK/small_labels.nii.gz" --out "$CORPUS/seg/$1" "${@:2}" >/dev/null
}
make_seg seg_small.dcm
make_seg seg_small_fractional_box.dcm --fractional --box 1,3,4,8,4,8
make_seg seg_small_shuffled.dcm --shuffle-frames 7
du -sh "$CORPUS"/*
