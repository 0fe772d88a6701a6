"""The command line as a user runs it: real model, real photo and footage, bad inputs."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_helpers import model_args, xnoryolo
from refdata import DEMO_CLIP, REF, case_files, need_ref
from xnoryolo.cli.common import UsageError, run_command
from xnoryolo.detector.errors import CfgError
from xnoryolo.detector.video import FramesError, VideoError
from xnoryolo.models import FetchError, ModelFiles


def test_detect_dog_prints_darknets_objects(yolov3_tiny: ModelFiles, tmp_path: Path) -> None:
    need_ref()
    out_json, out_img = tmp_path / "dog.json", tmp_path / "dog.png"
    r = xnoryolo(
        "detect",
        REF / "images" / "dog.jpg",
        *model_args(yolov3_tiny),
        "--json",
        out_json,
        "--out",
        out_img,
    )
    assert r.returncode == 0, r.stderr
    ours = r.stdout.splitlines()
    ref = (REF / "a_yolov3-tiny_coco" / "dog" / "printed.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in ours] == [line.split(":")[0] for line in ref]
    for a, b in zip(ours, ref, strict=True):
        na = [int(v) for v in a.split("(")[1].replace(")", "").split()[1::2]]
        nb = [int(v) for v in b.split("(")[1].replace(")", "").split()[1::2]]
        assert max(abs(x - y) for x, y in zip(na, nb, strict=True)) <= 2, (a, b)
    dets = json.loads(out_json.read_text())
    assert {d["name"] for d in dets} == {"dog", "bicycle", "car", "truck"}
    assert set(dets[0]) >= {
        "class_id",
        "name",
        "prob",
        "x",
        "y",
        "w",
        "h",
        "left",
        "top",
        "width",
        "height",
    }
    img = cv2.imread(str(out_img))
    assert img is not None and img.shape == (576, 768, 3)


def test_dump_writes_darknets_layout(tmp_path: Path) -> None:
    need_ref()
    case = REF / "b_yolov3-tiny_xnor_random"
    cfg, weights = case_files(case)
    wpath = tmp_path / "b.weights"
    wpath.write_bytes(weights)
    r = xnoryolo(
        "dump",
        "--cfg",
        cfg,
        "--weights",
        wpath,
        "--input",
        case / "dog" / "input.npy",
        "--out",
        tmp_path / "layers",
    )
    assert r.returncode == 0, r.stderr
    ref = sorted(p.name for p in (case / "dog" / "layers").glob("*.npy"))
    assert sorted(p.name for p in (tmp_path / "layers").glob("*.npy")) == ref
    for name in ref:
        ours, theirs = np.load(tmp_path / "layers" / name), np.load(case / "dog" / "layers" / name)
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        assert np.abs(ours - theirs).max() <= 3e-5 * max(1.0, float(np.abs(theirs).max()))


@pytest.mark.slow
def test_video_finds_people_and_cars(
    yolov3_tiny: ModelFiles, vtest_avi: Path, tmp_path: Path
) -> None:
    jsonl, mp4 = tmp_path / "v.jsonl", tmp_path / "v.mp4"
    r = xnoryolo(
        "detect",
        vtest_avi,
        *model_args(yolov3_tiny),
        "--json",
        jsonl,
        "--out",
        mp4,
        "--max-frames",
        "24",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    frames = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(24))
    names = [d["name"] for f in frames for d in f["detections"]]
    assert names.count("person") >= 24  # several walkers in every frame
    assert "car" in names
    cap = cv2.VideoCapture(str(mp4))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    cap.release()
    assert "24 frames" in r.stdout


def _one_error_line(r: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr
    errors = [ln for ln in lines if ln.startswith("xnoryolo: error:")]
    assert len(errors) == 1 and pattern in errors[0], r.stderr


def test_bad_inputs_give_one_clear_error_line(yolov3_tiny: ModelFiles, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    _one_error_line(xnoryolo("detect", text, *model_args(yolov3_tiny)), "not a decodable image")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _one_error_line(xnoryolo("detect", empty, *model_args(yolov3_tiny)), "")
    short = tmp_path / "short.weights"
    short.write_bytes(yolov3_tiny.weights.read_bytes()[:1000])
    r = xnoryolo("detect", text, "--cfg", yolov3_tiny.cfg, "--weights", short)
    _one_error_line(r, "file ends inside layer 0 (convolutional")
    bad_cfg = tmp_path / "bad.cfg"
    bad_cfg.write_text(yolov3_tiny.cfg.read_text().replace("filters=16", "filters=sixteen"))
    _one_error_line(
        xnoryolo("detect", text, "--cfg", bad_cfg, "--weights", yolov3_tiny.weights), f"{bad_cfg}:"
    )
    _one_error_line(
        xnoryolo("detect", tmp_path / "missing.jpg", *model_args(yolov3_tiny)), "no such file"
    )


@pytest.mark.parametrize(
    ("flag", "pattern"),
    [
        ("--cfg", "/dev/zero: not a regular file"),
        ("--weights", "/dev/zero: not a regular file"),
        ("--names", "/dev/zero: not a regular file"),
        ("fifo-cfg", "camera.fifo: not a regular file"),
        ("fifo-weights", "camera.fifo: not a regular file"),
        ("huge-weights", "do not belong to this cfg"),
    ],
)
def test_model_files_that_are_not_files_fail_fast(
    yolov3_tiny: ModelFiles, tmp_path: Path, flag: str, pattern: str
) -> None:
    """A character device, a FIFO (or a 64 GB sparse file) is refused before it is read."""
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((32, 32, 3), np.uint8))
    args = {
        "--cfg": yolov3_tiny.cfg,
        "--weights": yolov3_tiny.weights,
        "--names": yolov3_tiny.names,
    }
    if flag == "huge-weights":
        huge = tmp_path / "huge.weights"
        with huge.open("wb") as f:
            f.write(yolov3_tiny.weights.read_bytes()[:20])
            f.truncate(64 << 30)
        args["--weights"] = huge
    elif flag.startswith("fifo-"):
        # opening a FIFO for reading would wait for a writer forever
        fifo = tmp_path / "camera.fifo"
        os.mkfifo(fifo)
        args["--" + flag.removeprefix("fifo-")] = fifo
    else:
        args[flag] = Path("/dev/zero")
    flat = [v for kv in args.items() for v in kv]
    _one_error_line(xnoryolo("detect", photo, *flat, timeout=60), pattern)


def test_detect_without_model_flags_uses_the_default_model(tmp_path: Path) -> None:
    clip = DEMO_CLIP
    jsonl = tmp_path / "d.jsonl"
    r = xnoryolo("detect", clip, "--json", jsonl, "--max-frames", "3", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "using the default model" in r.stderr
    frames = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(frames) == 3
    assert sum(d["name"] == "person" for f in frames for d in f["detections"]) >= 6


def test_unwritable_output_is_one_error_line(yolov3_tiny: ModelFiles, tmp_path: Path) -> None:
    need_ref()
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    r = xnoryolo(
        "detect",
        REF / "images" / "dog.jpg",
        *model_args(yolov3_tiny),
        "--json",
        blocker / "out.json",
    )
    _one_error_line(r, str(blocker))


def test_error_kinds_map_to_one_line_and_an_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(exc: BaseException) -> int:
        def command(args: argparse.Namespace) -> int:
            raise exc

        return run_command(command, argparse.Namespace(threads=None))

    cases: list[tuple[BaseException, str]] = [
        (UsageError("--cfg needs --weights"), "xnoryolo: error: --cfg needs --weights"),
        (CfgError("a.cfg", 3, "bad"), "xnoryolo: error: a.cfg:3: bad"),
        (FramesError("d: no such file or directory"), "xnoryolo: error: d: no such file"),
        (VideoError("the file is empty"), "xnoryolo: error: the file is empty"),
        (FetchError("pip download failed"), "xnoryolo: error: pip download failed"),
        (
            PermissionError(errno.EACCES, "Permission denied", "out.json"),
            "xnoryolo: error: out.json: Permission denied",
        ),
    ]
    for exc, line in cases:
        assert failing(exc) == 2
        err = capsys.readouterr().err
        assert err.startswith(line) and err.count("\n") == 1, (exc, err)
    assert failing(KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "xnoryolo: interrupted\n"
    with pytest.raises(RuntimeError):  # a bug keeps its traceback
        failing(RuntimeError("bug"))
    assert run_command(lambda args: 0, argparse.Namespace(threads=0)) == 2
    assert capsys.readouterr().err == "xnoryolo: error: --threads must be >= 1\n"
