"""The bytes plan (detector.bytes_plan): int8 layers hand the next int8 layer its input bytes,
through a maxpool where one sits between; the network's outputs stay those of the NumPy
reference (floats between layers), on every int8 path and thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netgen import write_model
from xnoryolo.detector import Network, calibrate
from xnoryolo.detector.backends import fast_backend
from xnoryolo.detector.layers import MaxpoolLayer
from xnoryolo.detector.preprocess import preprocess
from xnoryolo.kernels import qconv

# conv -> pool 2/2 -> conv -> conv -> pool 2/1 -> conv (+ a route that stays float) -> heads
CFG = """[net]
width=40
height=34
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

[convolutional]
batch_normalize=1
filters=20
size=1
stride=1
pad=1
activation=relu

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=24
size=3
stride=2
pad=1
activation=leaky

[convolutional]
filters=18
size=1
activation=linear

[yolo]
mask=0,1
anchors=4,5, 8,9, 12,14
classes=4
num=3

[route]
layers=-3

[convolutional]
filters=18
size=1
activation=linear

[yolo]
mask=1,2
anchors=4,5, 8,9, 12,14
classes=4
num=3
"""


def _tensors(net: Network) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    c, h, w = net.input_shape
    out = []
    for _ in range(3):
        img = rng.integers(0, 256, (29, 45, 3), dtype=np.uint8)
        img[:10] = img[:10] // 3 + 80
        out.append(preprocess(img, w, h, c, True))
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_model(tmp_path_factory.mktemp("bytes"), CFG, seed=6)


def test_plan_hands_bytes_between_int8_layers(model: tuple[Path, Path]) -> None:
    net = Network.load(*model, "fast", threads=1, precision="f32")
    calibrate.calibrate(net, _tensors(net))
    plan = net.bytes_plan
    # conv 0 through pool 1 to conv 2; conv 2 to conv 3; conv 3 through pool 4 to conv 5;
    # conv 5 feeds a head and a route: floats; the heads feed yolo layers: floats
    assert sorted(plan) == [0, 1, 2, 3, 4]
    assert plan[1].done and plan[4].done
    assert isinstance(plan[0].pool, MaxpoolLayer) and plan[2].pool is None
    assert plan[0].quant == net.layers[2].act_quant  # type: ignore[attr-defined]
    net.prepare(net.backend, precision="f32")
    assert net.bytes_plan == {}


@pytest.mark.parametrize("path", [p for p in qconv.path_names() if qconv.path_supported(p)])
def test_bytes_plan_matches_the_reference(model: tuple[Path, Path], path: str) -> None:
    ref = Network.load(*model, "numpy", precision="f32")
    quants, _ = calibrate.measure(ref, _tensors(ref), 99.99)
    calibrate.apply(ref, quants)
    ref.prepare(ref.backend, precision="int8")
    for threads in (1, 2):
        net = Network.load(*model, fast_backend(threads, int8=path), precision="f32")
        calibrate.apply(net, quants)
        net.prepare(net.backend, precision="int8")
        assert net.bytes_plan
        for x in _tensors(net):
            a = net.head_outputs(net.forward(x, keep=False))  # bytes between int8 layers
            b = ref.forward(x, keep=True)  # floats between them
            for d in net.detection_layers:
                assert np.array_equal(a[d.index], b[d.index]), (path, threads, d.index)
