#!/usr/bin/env bash
# The project on arm64, under QEMU user-mode emulation, on an x86-64 Debian machine (root):
# an arm64 Debian bookworm root (made once, then reused from the cache folder), the checkout
# built and installed there with pip, the kernel and engine tests run on the NEON path, and
# detections on demo frames decoded once on this machine compared with this machine's.
#
#   XNORYOLO_ARM64_FULL=0   the kernel tests only (default 1: the engine tests too, tests/detector,
#                           with ../shared's parity cases when present)
#   XNORYOLO_ARM64_CACHE    the cache folder (default .cache/arm64: the root, its venv, pip's cache)
#   XNORYOLO_ARM64_MIRROR   the Debian mirror (default: the one in this machine's apt sources)
#
# The tests run under QEMU_CPU=neoverse-n1: QEMU's default `max` CPU advertises SVE, and
# OpenBLAS then picks kernels QEMU emulates about 20x slower. The chroot is entered with a
# clean environment; only what pip needs to reach its index goes in.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=${XNORYOLO_ARM64_CACHE:-$REPO/.cache/arm64}
ROOT=$CACHE/root
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-dev,gcc,libc6-dev,ca-certificates
FULL=${XNORYOLO_ARM64_FULL:-1}
QEMU_CPU_MODEL=neoverse-n1
SHARED=${XNORYOLO_SHARED:-$REPO/../shared}
HOST_PY=$REPO/.venv/bin/python

log() { printf '[arm64] %s\n' "$*"; }
die() { log "error: $*" >&2; exit 1; }
TIMES=()
STEP_START=0
step() { STEP_NAME=$1; STEP_START=$(date +%s); log "== $1"; }
done_step() {
    local s=$(($(date +%s) - STEP_START))
    TIMES+=("$(printf '%-34s %4d s' "$STEP_NAME" "$s")")
    log "   $STEP_NAME: ${s} s"
}
T0=$(date +%s)

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts)"
[ "$(uname -m)" = x86_64 ] || die "meant for an x86-64 host (uname -m: $(uname -m))"

# ------------------------------------------------------------------------ host tools, binfmt
step "host tools + binfmt"
need=()
for p in qemu-user-static binfmt-support debootstrap; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt handler qemu-aarch64 is not enabled"
# the F flag: the kernel opens the interpreter at registration, so the root needs no qemu copy
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt qemu-aarch64 lacks the F flag"
done_step

# ----------------------------------------------------------------------------- arm64 root
MIRROR=${XNORYOLO_ARM64_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
STAMP="$SUITE $PACKAGES"
step "arm64 root"
# mounts left by an interrupted run come off first (nothing below may delete through them)
if [ -d "$ROOT" ]; then
    findmnt -rn -o TARGET | { grep -F "$ROOT/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
fi
if [ -f "$ROOT/.xnoryolo-root" ] && [ "$(cat "$ROOT/.xnoryolo-root")" = "$STAMP" ]; then
    log "   reused $ROOT"
else
    rm -rf --one-file-system "$ROOT" "$ROOT.tmp"
    mkdir -p "$CACHE"
    # binfmt runs the second stage's arm64 binaries directly (no --foreign split needed)
    debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT.tmp" \
        "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
        tail -20 "$CACHE/debootstrap.log"
        die "debootstrap failed (log: $CACHE/debootstrap.log)"
    }
    printf '%s' "$STAMP" >"$ROOT.tmp/.xnoryolo-root"
    mv "$ROOT.tmp" "$ROOT"
fi
done_step

# ------------------------------------------------------------------------- mounts, network
MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -R "${MOUNTS[$i]}" 2>/dev/null || umount -lR "${MOUNTS[$i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
bind() {  # bind SRC DEST [ro]
    mkdir -p "$2"
    mount --rbind "$1" "$2"
    mount --make-rslave "$2"
    MOUNTS+=("$2")
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}
mountpoint -q "$ROOT/proc" || { mount -t proc proc "$ROOT/proc"; MOUNTS+=("$ROOT/proc"); }
mountpoint -q "$ROOT/dev" || bind /dev "$ROOT/dev"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# the CA bundle this machine's pip trusts (it may hold a proxy's CA that Debian's does not)
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
cp -L "$HOST_CA" "$ROOT/etc/ssl/certs/xnoryolo-host-ca.crt"
CA=/etc/ssl/certs/xnoryolo-host-ca.crt
ENV=(env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    QEMU_CPU=$QEMU_CPU_MODEL PIP_CERT=$CA SSL_CERT_FILE=$CA REQUESTS_CA_BUNDLE=$CA
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-180}"
    PYTHONDONTWRITEBYTECODE=1)
# an index or proxy configured for pip here applies there too; local paths (find-links,
# file:// indexes) hold this machine's wheels and do not
for v in PIP_INDEX_URL HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    if [ -n "${!v:-}" ]; then ENV+=("$v=${!v}"); fi
done
in_root() { chroot "$ROOT" "${ENV[@]}" /bin/bash -euo pipefail -c "$1"; }
[ "$(in_root 'uname -m')" = aarch64 ] || die "the root does not run as aarch64"

# ----------------------------------------------------------------- the checkout, ../shared
step "copy checkout"
# tracked and untracked-but-not-ignored files: the working tree, without .venv or build outputs
rm -rf --one-file-system "$ROOT/xn/src"
mkdir -p "$ROOT/xn/src" "$ROOT/xn/frames"
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$ROOT/xn/src"
if [ -d "$SHARED" ]; then
    bind "$(cd "$SHARED" && pwd)" "$ROOT/xn/shared" ro
    log "   ../shared mounted read-only at /xn/shared"
else
    log "   ../shared absent: parity tests that need it skip"
fi
done_step

# ------------------------------------------------------------------- venv + pip install
step "pip install '.[test]'"
# the venv is reused while the dependencies are unchanged (pip's cache lives in the root too)
DEPS=$(sha256sum pyproject.toml | cut -c1-16)
in_root "
if [ \"\$(cat /xn/venv/.deps 2>/dev/null)\" != $DEPS ]; then
    rm -rf /xn/venv
    python3 -m venv /xn/venv
    /xn/venv/bin/python -m pip install -q --upgrade pip
    echo $DEPS > /xn/venv/.deps
fi
# one build of the checkout (the kernels compiled by arm64 gcc), then its dependencies, then
# that wheel over any earlier one of the same version
rm -rf /xn/wheel
/xn/venv/bin/python -m pip wheel -q --no-deps -w /xn/wheel /xn/src 2>&1 | tail -20
whl=\$(ls /xn/wheel/xnoryolo-*.whl)
/xn/venv/bin/python -m pip install -q \"\$whl[test]\" 2>&1 | tail -20
/xn/venv/bin/python -m pip install -q --force-reinstall --no-deps \"\$whl\" 2>&1 | tail -20
"
done_step

# ------------------------------------------------------------------- which paths run
step "SIMD paths"
INFO='import platform, numpy
import xnoryolo.kernels.xconv as xconv
from xnoryolo.kernels.backend import available_simd, get_simd
print("machine:", platform.machine(), "| numpy", numpy.__version__)
print("kernels:", xconv.__file__)
print("available_simd():", available_simd(), "| chosen:", get_simd())
assert platform.machine() == "aarch64" and get_simd() == "neon", "the NEON path is not chosen"'
in_root "cd / && /xn/venv/bin/python -I -c '$INFO'"
done_step

# ------------------------------------------------------------------------------ tests
TESTS=(tests/kernels)
[ "$FULL" = 1 ] && TESTS+=(tests/detector)
step "pytest ${TESTS[*]}"
# the installed package is tested: pytest's entry point, importlib import mode (pyproject), and a
# source tree without compiled modules (a test importing it instead would fail to load xconv)
# (-rfE: failures and errors summarised; the skips are the x86 paths this CPU lacks), in one
# worker per host core: emulated, each test runs many times slower than natively
in_root "cd /xn/src && /xn/venv/bin/pytest -q -p no:cacheprovider -o timeout=1800 -rfE --tb=short -n $(nproc) ${TESTS[*]}"
done_step

# --------------------------------------------------------------- detections vs x86
step "detections arm64 vs x86"
if [ ! -x "$HOST_PY" ]; then
    python3 -m venv "$REPO/.venv"
    "$HOST_PY" -m pip install -q '.[test]'
fi
"$HOST_PY" -I .ci/arm64_detections.py frames "$ROOT/xn/frames"
SHARED_MODELS=""
[ -f "$SHARED/models/yolov3-tiny.weights" ] && SHARED_MODELS="$SHARED/models"
"$HOST_PY" -I .ci/arm64_detections.py detect "$ROOT/xn/frames" "$ROOT/xn/frames/x86.json" \
    ${SHARED_MODELS:+"$SHARED_MODELS"}
in_root "cd / && /xn/venv/bin/python -I /xn/src/.ci/arm64_detections.py detect /xn/frames \
    /xn/frames/arm64.json ${SHARED_MODELS:+/xn/shared/models}"
"$HOST_PY" -I .ci/arm64_detections.py compare "$ROOT/xn/frames/x86.json" "$ROOT/xn/frames/arm64.json"
done_step

log "== times (QEMU_CPU=$QEMU_CPU_MODEL, $(nproc) host cores)"
for t in "${TIMES[@]}"; do log "   $t"; done
log "   total                              $(($(date +%s) - T0)) s"
[ "$FULL" = 1 ] || log "   engine tests skipped (XNORYOLO_ARM64_FULL=0)"
