"""Packed .xnor files: exact round trips with darknet .weights, errors, CLI pack/unpack."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import xnoryolo
from netgen import write_model
from refdata import REF, case_files
from xnoryolo.detector import Detector, Network, WeightsError, quantize
from xnoryolo.detector.packed import (
    IDENTITY_VARIANCE,
    pack,
    read_header,
    to_darknet_weights,
)

MIXED = """[net]
width=48
height=32
channels=3

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
xnor=1
bin_output=1
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
xnor=1
batch_normalize=1
filters=13
size=1
stride=1
activation=leaky

[convolutional]
filters=18
size=1
stride=1
activation=linear

[yolo]
mask=0,1
anchors=4,5, 8,9
classes=4
num=2
"""


def _outputs(net: Network, seed: int = 0) -> list[np.ndarray]:
    x = np.random.default_rng(seed).random(net.input_shape, dtype=np.float32)
    return net.forward(x)


def _assert_identical(a: Network, b: Network) -> None:
    for i, (x, y) in enumerate(zip(_outputs(a), _outputs(b), strict=True)):
        assert np.array_equal(x, y), f"layer {i} differs"


def test_pack_load_and_unpack_are_exact(tmp_path: Path) -> None:
    cfg, weights = write_model(tmp_path, MIXED, seed=4)
    ref = Network.load(cfg, weights, "numpy")
    data = pack(Network.load(cfg, weights, "numpy"), cfg.read_text(), ["a", "b", "c", "d"])
    packed = tmp_path / "m.xnor"
    packed.write_bytes(data)
    for net in (
        Network.from_packed(packed, "numpy"),
        Network.load(None, packed, "numpy"),  # the embedded cfg
        Network.load(cfg, packed, "numpy"),  # an explicit cfg
    ):
        _assert_identical(ref, net)
    header, _ = read_header(data)
    assert header["names"] == ["a", "b", "c", "d"]
    kinds = [e["kind"] for e in header["layers"]]
    assert kinds == ["float", "xnor", "xnor", "float"]
    assert [e.get("dtype") for e in header["layers"] if e["kind"] == "float"] == ["f4", "f4"]
    # back to darknet: a .weights whose fold is a no-op gives identical outputs again
    back = tmp_path / "back.weights"
    back.write_bytes(to_darknet_weights(Network.from_packed(packed, "numpy")))
    _assert_identical(ref, Network.load(cfg, back, "numpy"))
    assert np.frombuffer(back.read_bytes(), "<f4", 1, 20 + 4 * 32 * 3)[0] == np.float32(
        IDENTITY_VARIANCE
    )
    # unprepared networks pack the same bytes
    raw = Network.from_cfg(cfg)
    raw.load_weights(weights)
    assert pack(raw, cfg.read_text(), ["a", "b", "c", "d"]) == data


def test_float16_exact_weights_are_stored_as_float16(tmp_path: Path) -> None:
    cfg, weights = write_model(tmp_path, MIXED, seed=5)
    net = Network.load(cfg, weights, "numpy")
    for layer in net.layers:  # make the float layers' folded weights float16-exact
        if getattr(layer, "xnor", True) is False:
            layer.weights = layer.weights.astype(np.float16).astype(np.float32)
            layer.biases, layer.bn = layer.folded_bias, None  # already folded
            layer.prepare(net.backend)
    data = pack(net, cfg.read_text())
    header, _ = read_header(data)
    assert [e.get("dtype") for e in header["layers"] if e["kind"] == "float"] == ["f2", "f2"]
    packed = tmp_path / "h.xnor"
    packed.write_bytes(data)
    _assert_identical(net, Network.from_packed(packed, "numpy"))


def test_packed_errors(tmp_path: Path) -> None:
    cfg, weights = write_model(tmp_path, MIXED)
    data = pack(Network.load(cfg, weights, "numpy"), cfg.read_text())
    bad = tmp_path / "bad.xnor"
    bad.write_bytes(data[:-8])
    with pytest.raises(WeightsError, match="past the end"):
        Network.from_packed(bad, "numpy")
    bad.write_bytes(b"NOTXNOR!" + data[8:])
    with pytest.raises(WeightsError, match="not a packed"):
        Network.from_packed(bad, "numpy")
    bad.write_bytes(data[:8] + struct.pack("<I", 99) + data[12:])
    with pytest.raises(WeightsError, match="version 99"):
        Network.from_packed(bad, "numpy")
    good = tmp_path / "good.xnor"
    good.write_bytes(data)
    other = tmp_path / "other.cfg"
    other.write_text(MIXED.replace("filters=64", "filters=32"))
    with pytest.raises(WeightsError, match="does not fit this cfg"):
        Network.load(other, good, "numpy")
    with pytest.raises(WeightsError, match="no cfg given"):
        Network.load(None, weights, "numpy")


def test_reference_xnor_case_and_cli(tmp_path: Path) -> None:
    """darknet-ref case b (yolov3-tiny_xnor, BN): pack/unpack through the CLI, detections and
    every layer on darknet's own input identical."""
    case = REF / "b_yolov3-tiny_xnor_random"
    if not case.is_dir():
        pytest.skip(f"{case} absent (../shared is not present)")
    cfg, blob = case_files(case)
    weights = tmp_path / "b.weights"
    weights.write_bytes(blob)
    packed = tmp_path / "b.xnor"
    r = xnoryolo("pack", "--cfg", cfg, "--weights", weights, "--names", case / "coco.names",
                 "--out", packed)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "verified identical" in r.stdout
    assert packed.stat().st_size < 0.2 * weights.stat().st_size
    r = xnoryolo("unpack", packed, "--out", tmp_path / "u")
    assert r.returncode == 0, r.stderr
    x = np.load(case / "dog" / "input.npy")
    ref = Network.load(cfg, weights, "numpy").forward(x)
    for net in (
        Network.load(None, packed, "numpy"),
        Network.load(tmp_path / "u" / "b.cfg", tmp_path / "u" / "b.weights", "numpy"),
    ):
        for i, (a, b) in enumerate(zip(ref, net.forward(x), strict=True)):
            assert np.array_equal(a, b), i
    names = case / "coco.names"
    d1 = Detector.from_files(cfg, weights, names, "numpy").postprocess(ref, 768, 576).detections()
    d2 = Detector.from_files(cfg, packed, names, "numpy").postprocess(ref, 768, 576).detections()
    assert d1 == d2 and len(d1) > 0


def test_unpack_of_a_calibrated_model_is_exact_in_f32(tmp_path: Path) -> None:
    """The shipped default model carries int8 calibration, which darknet .weights cannot hold:
    unpack still verifies the f32 arrays, says the calibration stays behind, and the unpacked
    model gives the packed one's f32 outputs."""
    from xnoryolo.configs import default_model

    model = default_model()
    r = xnoryolo("unpack", model, "--out", tmp_path / "u", "--stem", "m")
    assert r.returncode == 0, r.stderr
    assert "verified identical" in r.stdout and "calibration is not in darknet" in r.stdout
    packed = Network.load(None, model, "numpy", precision="f32")
    unpacked = Network.load(tmp_path / "u" / "m.cfg", tmp_path / "u" / "m.weights", "numpy")
    x = np.random.default_rng(0).random(packed.input_shape, np.float32)
    for a, b in zip(packed.forward(x), unpacked.forward(x), strict=True):
        assert np.array_equal(a, b)


def test_int8_entries_are_read_and_checked(tmp_path: Path) -> None:
    """A layer's `int8` entry: scale, zero point, largest byte and largest weight travel as
    written; a value the int8 arithmetic does not define is a WeightsError naming the entry."""
    import json

    cfg, weights = write_model(tmp_path, MIXED)
    data = pack(Network.load(cfg, weights, "numpy"), cfg.read_text())
    header, body = read_header(data)
    first = next(e for e in header["layers"] if e["kind"] == "float")
    path = tmp_path / "q.xnor"

    def write(entry: dict[str, object]) -> None:
        first["int8"] = entry
        hjson = json.dumps(header).encode()
        hjson += b" " * (-len(hjson) % 8)
        path.write_bytes(data[:8] + struct.pack("<II", 1, len(hjson)) + hjson + bytes(body))

    write({"scale": 0.5, "zero": 3, "top": 127, "weight_top": 64})
    net = Network.load(None, path, "numpy", precision="f32")
    convs = [ly for ly in net.layers if getattr(ly, "act_quant", None) is not None]
    assert [ly.act_quant for ly in convs] == [quantize.ActQuant(0.5, 3, 127, 64)]
    for bad in ({"scale": 0.5, "zero": 3, "weight_top": 100}, {"scale": 0.5, "zero": 300},
                {"zero": 3}):  # fmt: skip
        write(bad)
        with pytest.raises(WeightsError, match="bad int8 entry"):
            Network.load(None, path, "numpy")
