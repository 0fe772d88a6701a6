"""Distillation smoke test: a few steps on real frames, export, resume (needs torch)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_helpers import xnoryolo
from refdata import CONFIGS
from xnoryolo.detector import Network
from xnoryolo.models import ModelFiles


def _need_torch() -> None:
    pytest.importorskip(
        "torch", reason="torch is not installed (pip install torch==2.13.0; the `train` extra)"
    )


PARTIAL = CONFIGS / "yolov3-tiny_xnor-partial.cfg"


def _frames(video: Path, dest: Path, n: int) -> Path:
    dest.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(n):
        ok, frame = cap.read()
        assert ok
        cv2.imwrite(str(dest / f"{i:03d}.png"), frame)
    cap.release()
    return dest


def test_partial_cfg_binarizes_the_five_big_layers() -> None:
    net = Network.from_cfg(PARTIAL)
    xnor = [ly.index for ly in net.layers if getattr(ly, "xnor", False)]
    assert xnor == [10, 12, 13, 18, 21]


def test_distill_smoke_and_resume(yolov3_tiny: ModelFiles, vtest_avi: Path, tmp_path: Path) -> None:
    _need_torch()
    data = _frames(vtest_avi, tmp_path / "frames", 8)
    out = tmp_path / "run"
    common = [
        "distill", "--teacher-cfg", yolov3_tiny.cfg, "--teacher-weights", yolov3_tiny.weights,
        "--student-cfg", PARTIAL, "--names", yolov3_tiny.names, "--data", data, "--out", out,
        "--size", "96", "--crop", "64", "--batch", "2", "--threads", "1", "--seed", "3",
    ]  # fmt: skip
    r = xnoryolo(*common, "--steps", "3")
    assert r.returncode == 0, r.stderr
    assert "8 new teacher runs" in r.stdout and "held-out" in r.stdout
    for name in ("student.weights", "student.xnor", "student.cfg", "names", "report.json",
                 "checkpoint.pt"):  # fmt: skip
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 3 and report["train_frames"] == 6
    assert report["data"][0]["heldout"] == [6, 7]  # the end of the sequence, by time
    assert report["heldout_agreement"]["frames"] == 2
    assert report["engine_vs_torch_max_abs_diff"] < 1e-3
    net = Network.load(out / "student.cfg", out / "student.weights", "numpy")
    assert net.input_shape == (3, 96, 96)
    assert net.forward(np.full((3, 96, 96), 0.5, np.float32))[-1].shape == (255, 6, 6)
    # the packed student carries int8 activation ranges from its training frames: int8 by
    # default, the same network as the .weights in f32
    assert report["out"]["packed"] == str(out / "student.xnor")
    assert Network.from_packed(out / "student.xnor", "numpy").precision == "int8"
    f32 = Network.from_packed(out / "student.xnor", "numpy", precision="f32")
    x = np.full((3, 96, 96), 0.5, np.float32)
    np.testing.assert_array_equal(f32.forward(x)[-1], net.forward(x)[-1])

    r = xnoryolo(*common, "--steps", "5", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout and "0 new teacher runs" in r.stdout
    assert json.loads((out / "report.json").read_text())["steps"] == 5

    # a more binary layout started from this student: its float layers begin where the
    # student's are (a learning rate too small to move them), not at the teacher's
    full = tmp_path / "full"
    r = xnoryolo(
        *[CONFIGS / "yolov3-tiny_xnor.cfg" if a == PARTIAL else full if a == out else a
          for a in common],
        "--steps", "1", "--lr", "1e-12",
        "--init-cfg", out / "student.cfg", "--init-weights", out / "student.weights",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    first = [Network.load(d / "student.cfg", d / "student.weights", "numpy").layers[0]
             for d in (out, full)]  # fmt: skip
    teacher = Network.load(yolov3_tiny.cfg, yolov3_tiny.weights, "numpy").layers[0]
    np.testing.assert_array_equal(first[1].weights, first[0].weights)
    assert not np.array_equal(first[1].weights, teacher.weights)


def test_validation_frames_come_from_the_end_of_the_training_frames() -> None:
    from xnoryolo.distill.data import validation_split

    train, val = validation_split({"a": list(range(10)), "b": [0], "c": []}, 0.2)
    assert train == {"a": list(range(8)), "b": [0], "c": []}
    assert val == {"a": [8, 9], "b": [], "c": []}
    assert validation_split({"a": [1, 2]}, 0.0) == ({"a": [1, 2]}, {"a": []})


def test_distill_chooses_its_weights_on_validation_frames(
    yolov3_tiny: ModelFiles, vtest_avi: Path, tmp_path: Path
) -> None:
    _need_torch()
    data = _frames(vtest_avi, tmp_path / "frames", 8)
    out = tmp_path / "run"
    r = xnoryolo(
        "distill", "--teacher-cfg", yolov3_tiny.cfg, "--teacher-weights", yolov3_tiny.weights,
        "--student-cfg", PARTIAL, "--names", yolov3_tiny.names, "--data", data, "--out", out,
        "--size", "96", "--crop", "64", "--batch", "2", "--threads", "1", "--steps", "3",
        "--eval-minutes", "0", "--validation", "0.34", "--average", "0.9",
        "--class-weight", "person=2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 validation frames" in r.stdout
    assert r.stdout.count("validation agreement at step") == 3
    report = json.loads((out / "report.json").read_text())
    assert report["train_frames"] == 4  # 6 before the held-out frames, the last 2 validation
    chosen = report["validation"]
    assert chosen["frames"] == 2 and chosen["last_step"] == 3
    assert [c[0] for c in chosen["checks"]] == [1, 2, 3]
    # the kept weights are the best of the checks and the last step, and they are exported
    scores = [c[1] for c in chosen["checks"]] + [chosen["last_mAP"]]
    assert chosen["kept_mAP"] == max(s for s in scores if s is not None)
    assert f"the weights of step {chosen['kept_step']} kept" in r.stdout
    assert report["engine_vs_torch_max_abs_diff"] < 1e-3
    assert report["config"]["average"] == 0.9
    assert report["config"]["class_weights"] == [["person", 2.0]]
    r = xnoryolo("distill", "--teacher-cfg", "a", "--teacher-weights", "b", "--student-cfg",
                 "c", "--names", "d", "--data", "e", "--out", "f", "--steps", "1",
                 "--validation", "1")  # fmt: skip
    assert r.returncode != 0 and "--validation must be in [0, 1)" in r.stderr


def test_distill_rejects_bad_arguments(yolov3_tiny: ModelFiles, tmp_path: Path) -> None:
    r = xnoryolo("distill", "--teacher-cfg", "a", "--teacher-weights", "b", "--student-cfg",
                 "c", "--names", "d", "--data", "e", "--out", "f", "--steps", "1",
                 "--size", "100")  # fmt: skip
    assert r.returncode == 2 and "multiple of 32" in r.stderr
    r = xnoryolo("distill", "--teacher-cfg", "a", "--teacher-weights", "b", "--student-cfg",
                 "c", "--names", "d", "--data", "e", "--out", "f", "--steps", "1",
                 "--init-cfg", "g")  # fmt: skip
    assert r.returncode == 2 and "--init-cfg and --init-weights go together" in r.stderr
    for bad in ("person", "person=x", "=2", "person=-1"):
        r = xnoryolo("distill", "--teacher-cfg", "a", "--teacher-weights", "b", "--student-cfg",
                     "c", "--names", "d", "--data", "e", "--out", "f", "--steps", "1",
                     "--class-weight", bad)  # fmt: skip
        assert r.returncode == 2 and "expected NAME=W with W >= 0" in r.stderr, bad
    _need_torch()
    r = xnoryolo(
        "distill", "--teacher-cfg", yolov3_tiny.cfg, "--teacher-weights", yolov3_tiny.weights,
        "--student-cfg", PARTIAL, "--names", yolov3_tiny.names, "--data", tmp_path / "none.mp4",
        "--out", tmp_path / "o", "--steps", "1", "--class-weight", "pedestrian=2",
    )  # fmt: skip
    assert r.returncode == 2 and "'pedestrian': not a class of the teacher's names" in r.stderr
    r = xnoryolo(
        "distill", "--teacher-cfg", yolov3_tiny.cfg, "--teacher-weights", yolov3_tiny.weights,
        "--student-cfg", PARTIAL, "--names", yolov3_tiny.names, "--data", tmp_path / "none.mp4",
        "--out", tmp_path / "o", "--steps", "1",
    )  # fmt: skip
    assert r.returncode == 2 and "no such file" in r.stderr


def test_sign_flip_rates_after_a_resume_count_from_where_the_run_stopped(
    yolov3_tiny: ModelFiles, vtest_avi: Path, tmp_path: Path
) -> None:
    _need_torch()
    from xnoryolo.distill.train import TrainConfig, distill

    data = [_frames(vtest_avi, tmp_path / "frames", 6)]
    args = (yolov3_tiny.cfg, yolov3_tiny.weights, PARTIAL, yolov3_tiny.names, data)
    small = {"size": 96, "crop": 64, "batch": 2, "threads": 1, "seed": 3, "log_seconds": 0.0}
    distill(*args, tmp_path / "run", TrainConfig(steps=4, **small), log=lambda _: None)
    lines: list[str] = []
    # a learning rate too small to move a sign: every rate after the resume must be 0
    distill(
        *args, tmp_path / "run", TrainConfig(steps=5, lr=1e-12, **small), resume=True,
        log=lines.append,
    )  # fmt: skip
    rates = [ln.split("sign flips % ")[1].split() for ln in lines if "sign flips" in ln]
    assert rates and all(r.endswith(":0.00") for r in rates[0]), rates
