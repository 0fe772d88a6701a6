"""The int8 flags as users run them: pack --calibrate, --precision on detect and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_helpers import xnoryolo
from netgen import TINY, write_model


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    cfg, weights = write_model(tmp_path, TINY, seed=2)
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    return cfg, weights, frames


def test_pack_calibrate_then_detect_int8(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cfg, weights, frames = files
    out = tmp_path / "cal.xnor"
    r = xnoryolo(
        "pack", "--cfg", cfg, "--weights", weights, "--out", out, "--calibrate", frames,
        "--frames", "2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "calibrated int8 on 2 frames of frames" in r.stdout
    image = frames / "0.png"
    r = xnoryolo("detect", image, "--weights", out, "--json", tmp_path / "int8.json")
    assert r.returncode == 0, r.stderr
    assert "running int8" in r.stderr
    r = xnoryolo(
        "detect", image, "--weights", out, "--precision", "f32", "--json", tmp_path / "f32.json"
    )
    assert r.returncode == 0, r.stderr
    assert "int8" not in r.stderr
    # f32 of the calibrated file = f32 of the original weights
    r = xnoryolo(
        "detect", image, "--cfg", cfg, "--weights", weights, "--json", tmp_path / "orig.json"
    )
    assert r.returncode == 0, r.stderr
    f32 = json.loads((tmp_path / "f32.json").read_text())
    assert f32 == json.loads((tmp_path / "orig.json").read_text())
    # evaluate the int8 model against its own f32 self (the teacher always runs f32)
    r = xnoryolo(
        "evaluate", "--weights", out, "--data", frames, "--teacher-cfg", cfg,
        "--teacher-weights", weights, "--gt-thresh", "0.005", "--precision", "int8",
        "--json", tmp_path / "eval.json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "running int8" in r.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["frames"] == 3


def test_int8_needs_calibration_and_flags_are_checked(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cfg, weights, frames = files
    r = xnoryolo("detect", frames / "0.png", "--cfg", cfg, "--weights", weights,
                 "--precision", "int8")  # fmt: skip
    assert r.returncode == 2
    assert "calibrat" in r.stderr and "Traceback" not in r.stderr
    out = tmp_path / "x.xnor"
    r = xnoryolo("pack", "--cfg", cfg, "--weights", weights, "--out", out, "--range", "0:2")
    assert r.returncode == 2 and "--calibrate" in r.stderr
    r = xnoryolo("pack", "--weights", weights, "--out", out)
    assert r.returncode == 2 and "--cfg" in r.stderr
    r = xnoryolo("pack", "--cfg", cfg, "--weights", weights, "--out", out,
                 "--calibrate", tmp_path / "missing")  # fmt: skip
    assert r.returncode == 2 and "missing" in r.stderr and not out.exists()


def test_serve_precision_flag(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """serve --precision reaches model.precision: int8 on an uncalibrated model is refused
    before the server starts (a calibrated one is served like any other)."""
    cfg, weights, _ = files
    r = xnoryolo("serve", "--cfg", cfg, "--weights", weights, "--precision", "int8",
                 "--data-dir", tmp_path / "data", timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert "int8 calibration" in r.stderr and "Traceback" not in r.stderr
    config = tmp_path / "serve.yaml"
    config.write_text("model:\n  precision: int4\n")
    r = xnoryolo("serve", "--config", config, "--data-dir", tmp_path / "data", timeout=60)
    assert r.returncode == 2 and "precision" in r.stderr


def test_pack_calibrates_seven_bit_activations(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from xnoryolo.detector.packed import read_packed

    cfg, weights, frames = files
    out = tmp_path / "cal7.xnor"
    r = xnoryolo(
        "pack", "--cfg", cfg, "--weights", weights, "--out", out, "--calibrate", frames,
        "--frames", "2", "--act-bits", "7",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "(7-bit activations)" in r.stdout
    header, _ = read_packed(out)
    assert header["calibration"]["act_bits"] == 7
    entries = [e["int8"] for e in header["layers"] if "int8" in e]
    # the pixels: 8 bits, against weights of -64..64
    assert entries[0] == {"scale": entries[0]["scale"], "zero": 0, "weight_top": 64}
    assert len(entries) > 1 and all(e["top"] == 127 for e in entries[1:])
    r = xnoryolo("detect", frames / "0.png", "--weights", out, "--json", tmp_path / "d.json")
    assert r.returncode == 0 and "running int8" in r.stderr, r.stderr
    r = xnoryolo("pack", "--cfg", cfg, "--weights", weights, "--out", out, "--act-bits", "7")
    assert r.returncode == 2 and "--calibrate" in r.stderr
