"""Held-out frames where the teacher sees nothing: distill and evaluate say the agreement is
undefined (and why, and what to do), never `mAP 0.000`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_helpers import model_args, xnoryolo
from refdata import CONFIGS
from xnoryolo.evaluate import evaluate, format_result
from xnoryolo.models import ModelFiles


def test_no_ground_truth_is_undefined_not_zero() -> None:
    r = evaluate([[(0, 0.9, 0.5, 0.5, 0.2, 0.2)], []], [[], []])
    assert not r.defined
    assert r.to_json()["mAP"] is None
    text = format_result(r)
    assert "undefined" in text and "0.0000" not in text.splitlines()[0]
    assert evaluate([[]], [[(0, 1.0, 0.5, 0.5, 0.2, 0.2)]]).defined  # missed: 0, defined


def _clip(video: Path, dest: Path, n_real: int, n_blank: int) -> Path:
    """n_real frames of the footage, then n_blank empty grey frames (nothing to detect)."""
    dest.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(n_real):
        ok, frame = cap.read()
        assert ok
        cv2.imwrite(str(dest / f"{i:03d}.png"), frame)
    cap.release()
    for i in range(n_real, n_real + n_blank):
        cv2.imwrite(str(dest / f"{i:03d}.png"), np.full((240, 320, 3), 128, np.uint8))
    return dest


def test_evaluate_says_undefined(yolov3_tiny: ModelFiles, vtest_avi: Path, tmp_path: Path) -> None:
    data = _clip(vtest_avi, tmp_path / "frames", 0, 2)
    r = xnoryolo(
        "evaluate", *model_args(yolov3_tiny), "--data", data,
        "--teacher-cfg", yolov3_tiny.cfg, "--teacher-weights", yolov3_tiny.weights,
        "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "undefined" in r.stdout and "--heldout-from" in r.stdout
    assert "= 0.0000" not in r.stdout
    assert json.loads((tmp_path / "r.json").read_text())["mAP"] is None


def test_distill_says_undefined(yolov3_tiny: ModelFiles, vtest_avi: Path, tmp_path: Path) -> None:
    pytest.importorskip(
        "torch", reason="torch is not installed (pip install torch==2.13.0; the `train` extra)"
    )
    data = _clip(vtest_avi, tmp_path / "frames", 2, 2)
    out = tmp_path / "run"
    r = xnoryolo(
        "distill", "--teacher-cfg", yolov3_tiny.cfg, "--teacher-weights", yolov3_tiny.weights,
        "--student-cfg", CONFIGS / "yolov3-tiny_xnor-partial.cfg", "--names", yolov3_tiny.names,
        "--data", data, "--out", out, "--size", "64", "--crop", "64", "--batch", "1",
        "--threads", "1", "--steps", "1", "--holdout", "0.5", "--warm-steps", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "agreement undefined" in r.stdout and "--heldout-from" in r.stdout
    assert "0.000" not in r.stdout.splitlines()[-1]
    report = json.loads((out / "report.json").read_text())
    assert report["heldout_agreement"]["mAP"] is None
    assert "nothing to agree on" in report["heldout_agreement_undefined"]
