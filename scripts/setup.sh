#!/usr/bin/env bash
# Fetch what radscore needs besides crates: the ONNX Runtime shared library and the
# Python environment of the training pipeline, and cargo-deny for CI.
#
#   scripts/setup.sh ort      libonnxruntime.so → .ort/lib/ (from the PyPI onnxruntime wheel)
#   scripts/setup.sh python   .venv/ with training/requirements.txt installed
#   scripts/setup.sh deny     cargo-deny (pinned, from crates.io) → the tool cache (below)
#   scripts/setup.sh deny-bin print the path of that cargo-deny
#   scripts/setup.sh system   Debian packages the tests use: dcmtk (dsrdump), orthanc and
#                             orthanc-dicomweb (the DICOMweb server of the push tests)
#   scripts/setup.sh all      ort, python, deny and system
#
# Needs python3 (with venv and pip) and access to the Python package index. Safe to run
# again: each step checks whether its result is already in place and skips it if so.
#
# The ONNX Runtime version is pinned in ONE place: the `onnxruntime==` line of
# training/requirements.txt. The Python side (training, reference checks) and the Rust
# service therefore always load the same runtime build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/training/requirements.txt"
ORT_DIR="$ROOT/.ort"
ORT_LIB="$ORT_DIR/lib/libonnxruntime.so"
ORT_STAMP="$ORT_DIR/lib/VERSION"
VENV="$ROOT/.venv"
VENV_STAMP="$VENV/.requirements.sha256"
# Tools built from crates.io (cargo-deny here, the fuzz build in scripts/fuzz.sh) go to a
# per-user cache shared by every checkout, so a fresh clone on a machine that built them
# once does not build them again. RADSCORE_TOOLS_DIR overrides it.
TOOLS_DIR="${RADSCORE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/radscore}"
# cargo-deny (dependency licences, bans, sources; deny.toml), built from crates.io with its
# own Cargo.lock; one directory per version.
DENY_VERSION="0.20.2"
DENY_ROOT="$TOOLS_DIR/cargo-deny-$DENY_VERSION"

# The wheel we take the library from: CPython 3.11, manylinux_2_28, x86_64. The library
# itself does not depend on the Python version; this tag is simply one that ships it.
WHEEL_PLATFORM="manylinux_2_28_x86_64"
WHEEL_PYTHON="3.11"
WHEEL_IMPL="cp"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The pinned onnxruntime version, read from training/requirements.txt.
ort_version() {
    local v
    v="$(sed -n 's/^onnxruntime==\([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$REQUIREMENTS")"
    [[ -n "$v" ]] || die "no 'onnxruntime==X.Y.Z' line in $REQUIREMENTS"
    printf '%s' "$v"
}

# Stop early, with the Debian package to install, if a Python piece is missing.
need_python() {
    command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3)"
    python3 -m pip --version >/dev/null 2>&1 ||
        die "pip for python3 not found (Debian: apt-get install python3-pip)"
    if [[ "${1:-}" == venv ]]; then
        python3 -c 'import ensurepip, venv' 2>/dev/null ||
            die "python3 venv support not found (Debian: apt-get install python3-venv)"
    fi
}

setup_ort() {
    local version
    version="$(ort_version)"
    if [[ -f "$ORT_LIB" && -f "$ORT_STAMP" && "$(cat "$ORT_STAMP")" == "$version" ]]; then
        log "ONNX Runtime $version already in $ORT_LIB"
        return 0
    fi
    # LIMITATION: only the x86_64 manylinux wheel is fetched; aarch64 would need its tag.
    [[ "$(uname -m)" == "x86_64" ]] || die "only x86_64 Linux is supported (found $(uname -m))"
    need_python

    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand $tmp now: it is local to this function
    trap "rm -rf '$tmp'; trap - RETURN" RETURN

    log "downloading onnxruntime==$version wheel ($WHEEL_IMPL$WHEEL_PYTHON, $WHEEL_PLATFORM)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform "$WHEEL_PLATFORM" --python-version "$WHEEL_PYTHON" \
        --implementation "$WHEEL_IMPL" --dest "$tmp" "onnxruntime==$version"

    local wheel
    wheel="$(find "$tmp" -maxdepth 1 -name "onnxruntime-$version-*.whl" | head -n 1)"
    [[ -n "$wheel" ]] || die "pip did not produce an onnxruntime-$version wheel"

    # A wheel is a zip archive; take the one member we need. python3's zipfile is used
    # rather than unzip(1), which a fresh Debian machine may not have.
    local member="onnxruntime/capi/libonnxruntime.so.$version"
    mkdir -p "$ORT_DIR/lib"
    python3 - "$wheel" "$member" "$ORT_LIB.tmp" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"{member} is not in {wheel}; this onnxruntime wheel ships no shared library")
    with z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
PY
    mv "$ORT_LIB.tmp" "$ORT_LIB"
    printf '%s' "$version" >"$ORT_STAMP"
    log "installed $ORT_LIB (ONNX Runtime $version)"
}

setup_python() {
    local want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$VENV_STAMP" && "$(cat "$VENV_STAMP")" == "$want" ]]; then
        log "Python environment $VENV is up to date with training/requirements.txt"
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        need_python venv
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    log "installing training/requirements.txt into $VENV"
    "$VENV/bin/python" -m pip install --quiet -r "$REQUIREMENTS"
    printf '%s' "$want" >"$VENV_STAMP"
    log "Python environment ready: $VENV"
}

setup_deny() {
    local bin="$DENY_ROOT/bin/cargo-deny"
    if [[ -x "$bin" && "$("$bin" --version 2>/dev/null)" == "cargo-deny $DENY_VERSION" ]]; then
        log "cargo-deny $DENY_VERSION already in $bin"
        return 0
    fi
    command -v cargo >/dev/null || die "cargo not found (install Rust: https://rustup.rs)"
    log "building cargo-deny $DENY_VERSION from crates.io (a few minutes, once)"
    cargo install --quiet --locked --root "$DENY_ROOT" "cargo-deny@$DENY_VERSION"
    log "installed $bin"
}

# Debian packages the tests need, and a command that shows each is installed.
SYSTEM_PACKAGES=(dcmtk orthanc orthanc-dicomweb)
SYSTEM_COMMANDS=(dsrdump Orthanc)

setup_system() {
    local missing=0 c
    for c in "${SYSTEM_COMMANDS[@]}"; do command -v "$c" >/dev/null || missing=1; done
    if [[ $missing -eq 0 && -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]]; then
        log "Debian packages ${SYSTEM_PACKAGES[*]} already installed"
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null; then
        log "warning: not root or no apt-get; install ${SYSTEM_PACKAGES[*]} yourself" \
            "(the SR and DICOMweb push tests need them)"
        return 0
    fi
    # The orthanc package would start a system service listening on every interface: keep
    # services from starting during the install (the tests start their own Orthanc).
    local policy=/usr/sbin/policy-rc.d added=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
    fi
    log "installing ${SYSTEM_PACKAGES[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${SYSTEM_PACKAGES[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${SYSTEM_PACKAGES[@]}" >/dev/null; }
    [[ $added -eq 1 ]] && rm -f "$policy"
    log "installed ${SYSTEM_PACKAGES[*]}"
}

main() {
    [[ $# -eq 1 ]] || usage
    case "$1" in
        ort) setup_ort ;;
        python) setup_python ;;
        deny) setup_deny ;;
        deny-bin) printf '%s\n' "$DENY_ROOT/bin/cargo-deny" ;;
        system) setup_system ;;
        all) setup_ort; setup_python; setup_deny; setup_system ;;
        -h | --help) usage ;;
        *) usage ;;
    esac
}

main "$@"
