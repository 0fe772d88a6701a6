"""`xnoryolo bench`: runs end to end on a small size and reports the documented fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refdata import CONFIGS
from xnoryolo.bench.cfg import float_twin, resize_cfg
from xnoryolo.bench.tracking import format_cost
from xnoryolo.cli import main
from xnoryolo.detector import ops
from xnoryolo.kernels.backend import FastBackend


def _first_conv_takes_pool(simd: str) -> bool:
    """Whether yolov3-tiny's first conv (3 -> 16, 3x3) and 2x2/2 pool fuse to bits on `simd`."""
    backend = FastBackend(1, simd=simd)
    spec = ops.ConvSpec(3, 96, 96, 16, 3, 1, 1, 1)
    conv = backend.float_conv(np.zeros((16, 3, 3, 3), np.float32), np.zeros(16, np.float32),
                              spec, "leaky")  # fmt: skip
    return conv.takes_pool(backend.maxpool((16, 96, 96), 2, 2, 2, 0, 48, 48))


def test_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "bench",
            "--cfg",
            str(CONFIGS / "yolov3-tiny_xnor.cfg"),
            "--size",
            "96",
            "--threads",
            "1",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--json",
        ]
    )
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("frame_ms", "network_ms", "opencv_frame_ms", "speedup_vs_opencv"):
        assert key in result
    assert result["threads"] == 1 and result["size"] == 96
    assert result["popcount_peak_gbit_macs"] > 0
    layers = result["layers"]
    assert len(layers) == 24
    binary = [row for row in layers if row["binary"]]
    assert binary and all(row["gbit_macs"] > 0 and row["share_of_peak"] > 0 for row in binary)
    assert {"index", "type", "binary", "ms", "gbit_macs", "share_of_peak"} <= set(layers[0])
    # timed on the detect path: every layer between binary layers hands sign bits on, the
    # float first conv too where its kernel runs the pool after it (the direct path)
    first = [0] if _first_conv_takes_pool(result["simd"]) else []
    assert [row["index"] for row in layers if row["bits_out"]] == [
        *first,
        *range(1, 14),
        *(17, 18, 19, 20),
    ]
    if result["opencv_frame_ms"] is not None:
        assert result["speedup_vs_opencv"] > 0
    assert result["frame_ms_1_thread"] is None  # only timed beside a multi-thread run


def test_bench_thread_scaling(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(CONFIGS / "yolov3-tiny_xnor.cfg")
    args = ["bench", "--cfg", cfg, "--size", "64", "--threads", "2", "--runs", "2"]
    assert main([*args, "--warmup", "0", "--no-opencv", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 2 and result["frame_ms_1_thread"] > 0
    assert result["speedup_vs_1_thread"] > 0


def test_bench_table_and_size_check(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(CONFIGS / "yolov3-tiny_xnor.cfg")
    assert main(["bench", "--cfg", cfg, "--size", "100"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
    args = ["bench", "--cfg", cfg, "--size", "64", "--runs", "1", "--warmup", "0", "--no-opencv"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| layer |" in out and "popcount peak" in out and "skipped" in out
    assert main([*args, "--simd", "portable"]) == 0
    assert "(portable)" in capsys.readouterr().out
    assert main([*args, "--simd", "sse9"]) == 2
    assert "sse9" in capsys.readouterr().err


def test_cfg_rewrites() -> None:
    text = "[net]\nwidth=160\n height = 128\n[convolutional]\nxnor=1\nbin_output=1\nsize=3\n"
    resized = resize_cfg(text, 416)
    assert "width=416" in resized and "height=416" in resized
    twin = float_twin(resized)
    assert "xnor" not in twin and "bin_output" not in twin and "size=3" in twin


def test_bench_int8_runs_calibrated(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(CONFIGS / "yolov3-tiny_xnor-partial.cfg")
    args = ["bench", "--cfg", cfg, "--size", "96", "--runs", "1", "--warmup", "0", "--no-opencv"]
    assert main([*args, "--precision", "int8", "--frames", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "f32"
    assert main([*args, "--precision", "int8", "--calibrate", "/nonexistent.mp4"]) == 2
    assert "--calibrate" in capsys.readouterr().err


def test_bench_tracking_shares_the_analysis_against_the_same_run_inference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = str(CONFIGS / "yolov3-tiny_xnor.cfg")
    args = ["bench", "--cfg", cfg, "--size", "64", "--threads", "2", "--runs", "1"]
    assert main([*args, "--warmup", "0", "--no-opencv", "--tracking", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)["analysis"]
    assert cost["objects"] == 30 and cost["tracks"] >= 30
    assert cost["inference_ms"] > 0 and cost["motion_gate_ms"] > 0
    total = cost["motion_gate_ms"] + cost["tracking_lines_zones_ms"]
    assert cost["share_pct"] == pytest.approx(100 * total / cost["inference_ms"], rel=1e-3)
    assert set(cost["back_to_back"]) == {"motion_gate_ms", "tracking_lines_zones_ms", "total_ms"}
    text = format_cost(cost)
    assert f"= {cost['share_pct']:.2f} %" in text and "1 thread" in text and "back to back" in text
