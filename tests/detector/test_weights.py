"""The strict weights reader: header versions, and one clear error for files that do not fit."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from netgen import TINY, write_model
from xnoryolo.detector import Network, WeightsError
from xnoryolo.detector.weights import WeightsHeader, random_weights


def load(cfg: Path, weights: Path | bytes) -> Network:
    net = Network.from_cfg(cfg)
    net.load_weights(weights)
    return net.prepare("numpy")


def test_old_32bit_seen_header_reads_the_same_floats(tmp_path: Path) -> None:
    cfg, new = write_model(tmp_path, TINY, header=(0, 2, 5))
    data = new.read_bytes()
    old = struct.pack("<3iI", 0, 1, 0, 7) + data[20:]
    a, b = load(cfg, new), load(cfg, old)
    assert a.header is not None and a.header.size == 20
    assert b.header is not None and b.header.size == 16 and b.header.seen == 7
    x = np.random.default_rng(1).random(a.input_shape, dtype=np.float32)
    for ya, yb in zip(a.forward(x), b.forward(x), strict=True):
        np.testing.assert_array_equal(ya, yb)


def test_truncated_file_names_the_layer(tmp_path: Path) -> None:
    cfg, w = write_model(tmp_path, TINY)
    data = w.read_bytes()
    with pytest.raises(
        WeightsError, match=r"file ends inside layer 2 \(convolutional, .*model.cfg:\d+\)"
    ):
        load(cfg, data[:-40])
    with pytest.raises(WeightsError, match=r"file ends inside layer 0"):
        load(cfg, data[:40])


def test_oversized_file(tmp_path: Path) -> None:
    cfg, w = write_model(tmp_path, TINY)
    with pytest.raises(
        WeightsError, match=r"3 float32 values left over .* do not belong to this cfg"
    ):
        load(cfg, w.read_bytes() + b"\0" * 12)
    with pytest.raises(WeightsError, match="not a whole number of float32"):
        load(cfg, w.read_bytes() + b"\0")


def test_wrong_header(tmp_path: Path) -> None:
    cfg, w = write_model(tmp_path, TINY)
    with pytest.raises(WeightsError, match="too short for a darknet weights header"):
        load(cfg, b"\0\0\0")
    bad = struct.pack("<3i", 0x474E5089, 0x0A1A0A0D, 0) + w.read_bytes()[12:]  # a PNG
    with pytest.raises(WeightsError, match=r"bad header .* not a darknet weights file"):
        load(cfg, bad)


def test_missing_file(tmp_path: Path) -> None:
    cfg, _ = write_model(tmp_path, TINY)
    with pytest.raises(WeightsError, match="cannot read weights"):
        load(cfg, tmp_path / "nope.weights")


def test_bn_folded_in_double_before_binarizing(tmp_path: Path) -> None:
    text = TINY.replace("activation=leaky", "activation=leaky\nxnor=1", 1).replace(
        "channels=3", "channels=32"
    )
    cfg, w = write_model(tmp_path, text)
    net = load(cfg, w)
    conv = net.layers[0]
    raw = Network.from_cfg(cfg)
    raw.load_weights(w)
    r = raw.layers[0]
    scales, _mean, var = (a.astype(np.float64) for a in r.bn)  # type: ignore[attr-defined]
    folded = r.weights.astype(np.float64) * (scales / np.sqrt(var + 1e-5))[:, None, None, None]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(conv.signs, np.where(folded.astype(np.float32) > 0, 1, -1))  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        conv.scale,
        np.abs(folded).reshape(8, -1).mean(axis=1),
        rtol=1e-6,  # type: ignore[attr-defined]
    )


def test_random_weights_fit_the_cfg_and_repeat_per_seed(tmp_path: Path) -> None:
    cfg, _ = write_model(tmp_path, TINY)
    net = Network.from_cfg(cfg)
    data = random_weights(net, seed=3)
    assert data == random_weights(net, seed=3) != random_weights(net, seed=4)
    assert net.load_weights(data) == WeightsHeader(0, 2, 5, 0)
    old = random_weights(net, 3, WeightsHeader(0, 1, 0, 7))
    assert old[:16] == struct.pack("<3iI", 0, 1, 0, 7) and old[16:] == data[20:]
