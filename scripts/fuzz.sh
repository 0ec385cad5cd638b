#!/usr/bin/env bash
# Coverage-guided fuzzing of every upload parser with cargo-fuzz (libFuzzer) on stable Rust.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    # default: 30 s for each target
#
# Each target runs for SECONDS with its seeds in fuzz/corpus/<target>/ (read only) and its
# growing corpus in fuzz/work/<target>/ (git-ignored). Exits non-zero on the first crash,
# hang (-timeout) or allocation over the limits below; libFuzzer leaves the input in
# fuzz/artifacts/<target>/. See docs/fuzzing.md.
#
# Stable Rust: without a sanitizer (`-s none`) cargo-fuzz passes only stable `-C` flags.
# Rust's own bounds and overflow checks (debug assertions are on) find the crashes here;
# an AddressSanitizer build needs nightly flags, see docs/fuzzing.md (RUSTC_BOOTSTRAP=1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${1:-30}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(zip series seg nifti_labelmap nifti_volume nrrd rtstruct)

# One input may take at most this long, and allocate at most this much (MB).
TIMEOUT_S="${FUZZ_TIMEOUT_S:-10}"
RSS_LIMIT_MB="${FUZZ_RSS_LIMIT_MB:-2048}"
MALLOC_LIMIT_MB="${FUZZ_MALLOC_LIMIT_MB:-1024}"
# Largest generated input: seeds are a few KB; 64 KB leaves room to grow.
MAX_LEN="${FUZZ_MAX_LEN:-65536}"

# The instrumented release build goes to the per-user tool cache (see scripts/setup.sh), so
# checkouts on one machine share its compiled dependencies. RADSCORE_FUZZ_TARGET_DIR
# overrides it.
TARGET_DIR="${RADSCORE_FUZZ_TARGET_DIR:-${RADSCORE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/radscore}/fuzz-target}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$ROOT/fuzz"
cargo fuzz build -O -s none --target-dir "$TARGET_DIR"
mkdir -p work
for target in "${TARGETS[@]}"; do
    mkdir -p "work/$target"
    log="work/$target.log"
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s (log: fuzz/$log)"
    status=0
    cargo fuzz run -O -s none --target-dir "$TARGET_DIR" "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT_S" \
        -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$MALLOC_LIMIT_MB" \
        -max_len="$MAX_LEN" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs|SUMMARY|panicked at|Test unit written' \
        "$log" || true
    if [[ "$status" -ne 0 ]]; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target FAILED (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
done
echo "fuzz: all targets ran ${SECONDS_PER_TARGET}s without a crash"
