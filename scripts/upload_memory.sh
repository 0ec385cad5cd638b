#!/usr/bin/env bash
# Peak memory of the real radscore server while it ingests a ~1 GiB CT series, uploaded as
# a zip, as multipart/form-data and over STOW-RS, each streamed by curl from disk with
# chunked transfer encoding. The server's peak resident set (VmHWM from /proc) is read
# after each upload from a fresh server; the figures go into the "Upload memory" section
# of docs/benchmarks.md.
#
#   scripts/upload_memory.sh                      # 2048 slices of 512² int16 = 1 GiB
#   UPLOAD_SLICES=256 scripts/upload_memory.sh    # smaller smoke run (128 MiB)
#   UPLOAD_PROFILE=release scripts/upload_memory.sh
#   UPLOAD_WRITE_DOCS=0 scripts/upload_memory.sh  # print the table only
#   UPLOAD_DATA_DIR=/tmp/big scripts/upload_memory.sh  # reuse (or keep) the generated series
#
# Needs about 4 × the series size of free disk under TMPDIR (files, zip, STOW body, spool
# and blobs), curl, and the project venv (pydicom) from scripts/setup.sh. The server runs
# with RADSCORE_AUTH=disabled and no request timeouts, bound to 127.0.0.1 on a free port:
# the figures are about upload memory, not about a slow debug build on a busy machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SLICES="${UPLOAD_SLICES:-2048}"
PROFILE="${UPLOAD_PROFILE:-dev}"
PY="${RADSCORE_PYTHON:-$ROOT/.venv/bin/python}"
DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- upload-memory:begin -->'
END_MARK='<!-- upload-memory:end -->'

profile_flag=()
profile_dir=debug
if [[ "$PROFILE" == release ]]; then
  profile_flag=(--release)
  profile_dir=release
fi
cargo build "${profile_flag[@]}" --bin radscore
target_dir="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
RADSCORE="$target_dir/$profile_dir/radscore"

WORK="$(mktemp -d -t radscore-upload-memory.XXXXXX)"
server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT

# UPLOAD_DATA_DIR: reuse a series written earlier by bench/make_big_series.py into that
# directory (series/, series.zip, series.multipart) instead of writing one here.
DATA="${UPLOAD_DATA_DIR:-$WORK}"
if [[ ! -f "$DATA/series.multipart" ]]; then
  echo "upload-memory: writing $SLICES slices"
  "$PY" bench/make_big_series.py --out-dir "$DATA/series" --slices "$SLICES" \
    --zip "$DATA/series.zip" --stow "$DATA/series.multipart"
fi
SLICES=$(find "$DATA/series" -name '*.dcm' | wc -l)
series_bytes=$(du -cb "$DATA"/series/*.dcm | tail -n 1 | cut -f1)

start_server() {
  rm -rf "$WORK/data"
  mkdir -p "$WORK/data" "$WORK/tmp"
  TMPDIR="$WORK/tmp" DATABASE_URL="sqlite://$WORK/data/radscore.db" \
    RADSCORE_BLOB_DIR="$WORK/data/blobs" RADSCORE_MODEL_DIR="$ROOT/models/demo" \
    ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$ROOT/.ort/lib/libonnxruntime.so}" \
    RADSCORE_MAX_UPLOAD_MB=4096 RADSCORE_MAX_FILES=100000 RADSCORE_WORKERS=1 \
    RADSCORE_AUTH=disabled RADSCORE_REQUEST_TIMEOUT_S=0 RADSCORE_BODY_IDLE_TIMEOUT_S=0 \
    RADSCORE_LOG_FORMAT=json RUST_LOG=warn,radscore=info \
    "$RADSCORE" serve --bind 127.0.0.1:0 2>"$WORK/server.log" &
  server_pid=$!
  address=""
  for _ in $(seq 1 120); do
    address="$(sed -n 's/.*"address":"\(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$WORK/server.log" | head -n 1)"
    [[ -n "$address" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.5
  done
  [[ -n "$address" ]] || { echo "server did not start" >&2; exit 1; }
}

kib() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$server_pid/status"; }

rows=()
measure() {  # name, curl arguments...
  local name="$1"; shift
  start_server
  local idle; idle=$(kib VmRSS)
  local t0; t0=$(date +%s.%N)
  local code
  code=$(curl -s -o "$WORK/answer.json" -w '%{http_code}' "$@" "http://$address/$URL_PATH")
  local t1; t1=$(date +%s.%N)
  local peak; peak=$(kib VmHWM)
  [[ "$code" == 201 || "$code" == 200 ]] || { echo "$name: HTTP $code: $(cat "$WORK/answer.json")" >&2; exit 1; }
  rows+=("| $name | $((series_bytes / 1048576)) MiB | $((idle / 1024)) MiB | $((peak / 1024)) MiB | $(python3 -c "print(f'{$t1 - $t0:.1f}')") s |")
  echo "upload-memory: $name: peak RSS $((peak / 1024)) MiB (idle $((idle / 1024)) MiB)"
  stop_server
}

URL_PATH=v1/series measure "zip (\`application/zip\`)" -X POST \
  -H 'Content-Type: application/zip' -H 'Transfer-Encoding: chunked' -T "$DATA/series.zip"
form_args=()
for f in "$DATA"/series/*.dcm; do form_args+=(-F "file=@$f;type=application/dicom"); done
URL_PATH=v1/series measure "multipart/form-data" -H 'Transfer-Encoding: chunked' "${form_args[@]}"
URL_PATH=studies measure "STOW-RS (\`multipart/related\`)" -X POST \
  -H 'Content-Type: multipart/related; type="application/dicom"; boundary=BENCH' \
  -H 'Transfer-Encoding: chunked' -T "$DATA/series.multipart"

{
  echo "$BEGIN_MARK"
  echo "## Upload memory"
  echo
  echo "_Generated by \`scripts/upload_memory.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC'); do not edit by hand — re-run the script._"
  echo
  echo "Peak resident memory (\`VmHWM\`) of a fresh \`radscore serve\` ($PROFILE build, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' plus uncommitted changes')) while it ingests one synthetic CT series of $SLICES slices (512² int16, \`bench/make_big_series.py\`) sent by curl from disk with chunked transfer encoding, SQLite and local blobs, on a shared $(nproc)-core machine. Uploads are spooled to \`TMPDIR\`, checked one instance at a time and streamed to the blob store, so the peak stays near the idle size plus a few instances, whatever the series size."
  echo
  echo "| upload | series size | RSS idle | peak RSS | time |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo "$END_MARK"
} >"$WORK/section.md"
cat "$WORK/section.md"
if [[ "${UPLOAD_WRITE_DOCS:-1}" == 1 ]]; then
  python3 - "$DOC" "$WORK/section.md" "$BEGIN_MARK" "$END_MARK" <<'PY'
import sys
doc, section, begin, end = sys.argv[1:5]
text = open(doc).read()
new = open(section).read()
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + new.rstrip("\n") + rest.split(end, 1)[1]
else:
    text = text.rstrip("\n") + "\n\n" + new
open(doc, "w").write(text)
PY
  echo "upload-memory: wrote the Upload memory section of docs/benchmarks.md"
fi
