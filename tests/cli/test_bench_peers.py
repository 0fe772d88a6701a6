"""`xnoryolo bench --peers` and the ONNX graph it writes: the graph computes what our f32
forward computes (ONNX Runtime within float tolerance), the bench reports every engine's
median or one line on why it did not run, and a missing extra is a line, not a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from refdata import CONFIGS
from xnoryolo.bench import engines
from xnoryolo.bench.cfg import float_twin, resize_cfg
from xnoryolo.cli import main
from xnoryolo.detector import Network
from xnoryolo.detector.cfg import parse_cfg_text
from xnoryolo.detector.weights import random_weights

# every layer kind the writer translates: stride-1 size-2 pool (darknet's end padding), a
# grouped route, a shortcut, upsample, two heads
TINY = """
[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=relu

[shortcut]
from=-2
activation=linear

[maxpool]
size=2
stride=1

[convolutional]
filters=18
size=1
stride=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=1
num=3

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,0

[convolutional]
filters=18
size=1
stride=1
activation=logistic

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=1
num=3
"""


def _loaded(text: str) -> Network:
    net = Network.from_cfg(parse_cfg_text(text, "<test>"))
    net.load_weights(random_weights(net))
    return net


def _ort_outputs(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime", reason="the .[peers] extra is not installed")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return list(ort.InferenceSession(model, opts).run(None, {"input": x[None]}))


@pytest.mark.parametrize(
    "text",
    [TINY, resize_cfg((CONFIGS / "yolov3-tiny.cfg").read_text(), 96)],
    ids=["every-layer-kind", "yolov3-tiny-96"],
)
def test_onnx_graph_equals_our_forward(text: str) -> None:
    pytest.importorskip("onnx", reason="the .[peers] extra is not installed")
    from xnoryolo.bench.onnx_graph import output_layers, to_onnx

    net = _loaded(text)
    model = to_onnx(net)  # before prepare: BN folded here as prepare folds it
    net.prepare("numpy", 1)
    assert to_onnx(net) == model  # after prepare: the folded weights prepare kept
    x = np.random.default_rng(3).normal(size=net.input_shape).astype(np.float32)
    ours = net.forward(x)
    theirs = _ort_outputs(model, x)
    assert len(theirs) == len(net.detection_layers) == 2
    for j, t in zip(output_layers(net), theirs, strict=True):
        assert t.shape == (1, *ours[j].shape)
        np.testing.assert_allclose(t[0], ours[j], rtol=1e-4, atol=1e-4 * np.abs(ours[j]).max())


def test_onnx_export_refuses_what_it_does_not_translate() -> None:
    pytest.importorskip("onnx", reason="the .[peers] extra is not installed")
    from xnoryolo.bench.onnx_graph import ExportError, to_onnx

    xnor = resize_cfg((CONFIGS / "yolov3-tiny_xnor.cfg").read_text(), 64)
    with pytest.raises(ExportError, match="xnor=1"):
        to_onnx(_loaded(xnor))
    mish = TINY.replace("activation=relu", "activation=mish")
    with pytest.raises(ExportError, match="activation=mish"):
        to_onnx(_loaded(mish))
    assert to_onnx(_loaded(float_twin(xnor)))  # its float twin exports


def test_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(engines.Unavailable, match=r"pip install 'xnoryolo\[peers\]'"):
        engines._ort_forward(b"", 1, np.zeros(1, np.float32))


def test_engine_list_has_xnoryolo_int8_slot() -> None:
    names = [e.name for e in engines.ENGINES]
    assert {"onnxruntime int8", "openvino int8", "xnoryolo f32", "xnoryolo int8"} <= set(names)


def _peers(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    args = ["bench", "--cfg", str(cfg), "--size", "64", "--peers", "--runs", "2"]
    assert main([*args, "--warmup", "0", "--frames", "2", "--json", *extra]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_peers_bench_reports_every_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime", reason="the .[peers] extra is not installed")
    pytest.importorskip("openvino", reason="the .[peers] extra is not installed")
    pytest.importorskip("nncf", reason="the .[peers] extra is not installed")
    result = _peers(tmp_path, capsys)
    (tier,) = result["tiers"]
    assert tier["isa"] is None and tier["onnx_check"]["ok"] is True
    assert tier["calibration_frames"] == 2
    rows = {r["name"]: r for r in tier["engines"]}
    assert "xnoryolo cfg f32" not in rows  # a float cfg is its own twin
    for name in ("onnxruntime f32", "onnxruntime int8", "openvino f32", "openvino int8",
                 "xnoryolo f32", "xnoryolo int8", "xnoryolo int8 7-bit"):  # fmt: skip
        row = rows[name]
        assert row["note"] is None and row["ms"]["1"] > 0 and row["ms"]["2"] > 0, row
        assert row["vs_xnoryolo_f32"]["1"] > 0 and row["speedup_2_threads"] > 0
        assert row["cpu_ms"]["1"] > 0 and row["cpu_vs_xnoryolo_f32_1_thread"] > 0
    assert rows["xnoryolo f32"]["vs_xnoryolo_f32"] == {"1": 1.0, "2": 1.0}


def test_peers_isa_tier_runs_capped_in_its_own_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx", reason="the .[peers] extra is not installed")
    from xnoryolo.kernels.backend import available_simd

    if "avx2" not in available_simd():
        pytest.skip("this CPU has no AVX2 tier")
    result = _peers(tmp_path, capsys, "--isa", "avx2", "--engines", "xnoryolo f32")
    (tier,) = result["tiers"]
    assert tier["isa"] == "avx2" and tier["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert [r["name"] for r in tier["engines"]] == ["xnoryolo f32"]
    assert tier["engines"][0]["ms"]["1"] > 0


def test_peers_bad_isa_and_calibration_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    args = ["bench", "--cfg", str(cfg), "--size", "64", "--peers", "--runs", "1"]
    assert main([*args, "--isa", "sse9"]) == 2
    assert "--isa sse9" in capsys.readouterr().err
    assert main([*args, "--threads", "2"]) == 2  # --peers times 1 and 2 threads itself
    assert "--isa" in capsys.readouterr().err
    pytest.importorskip("onnx", reason="the .[peers] extra is not installed")
    assert main([*args, "--calibrate", str(tmp_path / "none.mp4")]) == 2
    err = capsys.readouterr().err
    assert "--calibrate" in err and "Traceback" not in err


def test_thread_counts_are_interleaved_per_engine() -> None:
    """An engine's 1- and 2-thread blocks run back to back in every round (its two-thread
    speed-up compares the machine with itself); every (engine, threads) gets its runs; an
    engine that cannot run at one thread count, or fails while timed, loses that row only."""
    from xnoryolo.bench import peer_bench

    calls: list[tuple[str, int]] = []

    def build(name: str, fail_at: int | None = None, unavailable: int | None = None):
        def make(inputs: object, threads: int):
            if threads == unavailable:
                raise engines.Unavailable("n/a here")
            timed = 0

            def forward() -> None:
                nonlocal timed
                calls.append((name, threads))
                timed += 1
                if fail_at is not None and threads == 2 and timed > fail_at:
                    raise RuntimeError("lost the device\nfor good")

            return forward

        return make

    engs = [
        engines.Engine("a", build("a")),
        engines.Engine("b", build("b", unavailable=1)),
        engines.Engine("c", build("c", fail_at=9)),
    ]
    runs = 2 * peer_bench.BLOCK + 1
    samples, notes = peer_bench.time_engines(engs, None, (1, 2), runs, 1)  # type: ignore[arg-type]
    assert set(samples) == {("a", 1), ("a", 2), ("b", 2), ("c", 1)}
    assert all(len(v) == runs for v in samples.values())
    assert notes == {("b", 1): "n/a here", ("c", 2): "failed while timed: RuntimeError: for good"}
    # the timed part: blocks of (1 untimed + BLOCK) calls in the order a1 a2 b2 c1 c2, a1 ...
    timed = calls[5:]  # after the five build-time warm-ups
    first_round = [key for i, key in enumerate(timed) if i % (peer_bench.BLOCK + 1) == 0][:5]
    assert first_round == [("a", 1), ("a", 2), ("b", 2), ("c", 1), ("c", 2)]
