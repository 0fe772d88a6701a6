"""Torch student == engine on the exported .weights, layer by layer (needs torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netgen import write_model
from refdata import REF
from xnoryolo.detector import Network
from xnoryolo.detector.layers import ConvolutionalLayer

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install torch==2.13.0; the `train` extra)"
)
from xnoryolo.distill.model import IDENTITY_VARIANCE, build_student  # noqa: E402

# Every layer kind the distiller trains: float and XNOR convs (3x3, 1x1, stride 2,
# bin_output, c % 32 == 0 and != 0), both maxpool geometries, route with groups, upsample,
# shortcut and two yolo heads.
ALL_KINDS = """[net]
width=40
height=32
channels=3

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[convolutional]
xnor=1
bin_output=1
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
batch_normalize=1
filters=64
size=3
stride=2
pad=1
activation=leaky

[convolutional]
xnor=1
batch_normalize=1
filters=20
size=1
stride=1
pad=1
activation=leaky

[convolutional]
xnor=1
batch_normalize=1
filters=20
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-2
activation=linear

[maxpool]
size=2
stride=1

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear

[yolo]
mask=0,1
anchors=4,5, 8,9, 12,14, 20,24
classes=4
num=4

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,2

[convolutional]
xnor=1
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear

[yolo]
mask=2,3
anchors=4,5, 8,9, 12,14, 20,24
classes=4
num=4
"""


def _train_a_little(module, shape, steps: int = 3, seed: int = 0) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.SGD(module.parameters(), lr=1e-2)
    heads = [i for i, ly in enumerate(module.network.layers) if ly.type == "yolo"]
    for _ in range(steps):
        x = torch.rand(2, *shape)
        outs = module(x)
        loss = sum((outs[i] ** 2).mean() for i in heads)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _check_equal(module, net: Network, x: np.ndarray) -> None:
    """Each torch layer, fed the engine's own inputs, reproduces the engine's output."""
    ref = net.forward(x)
    ref_t = [torch.from_numpy(r[None]) for r in ref]
    inputs = [torch.from_numpy(x[None]), *ref_t[:-1]]
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            got = module.forward_layer(i, inputs[i], ref_t).numpy()[0]
            want = ref[i]
            assert got.shape == want.shape, (i, got.shape, want.shape)
            scale = max(1.0, float(np.abs(want).max()))
            err = float(np.abs(got - want).max())
            if isinstance(layer, ConvolutionalLayer) and layer.xnor:
                # one differing +-1 tap moves an output by 2*mean|w'|: far above this
                assert layer.scale is not None
                assert err < 0.01 * float(layer.scale.min()) + 1e-5 * scale, (i, err)
            else:
                assert err <= 2e-5 * scale, (i, layer.type, err)
        # end to end: float rounding may flip the sign of a value very near 0 upstream of an
        # XNOR layer; allow a tiny fraction of such outputs
        full = module(torch.from_numpy(x[None]))
    for i, (got, want) in enumerate(zip(full, ref, strict=True)):
        g = got.numpy()[0]
        scale = max(1.0, float(np.abs(want).max()))
        bad = np.abs(g - want) > 1e-4 * scale
        assert bad.mean() <= 0.002, (i, float(bad.mean()))


def test_identity_variance_makes_darknets_fold_a_no_op() -> None:
    rng = np.random.default_rng(1)
    w = np.concatenate(
        [rng.normal(0, s, 20000) for s in (1e-3, 0.05, 1.0, 30.0)]
        + [np.array([1.0, -1.0, 1.9999999, 2**-20, 0.0, -0.0])]
    ).astype(np.float32)
    std = np.sqrt(np.float64(np.float32(IDENTITY_VARIANCE)) + 0.00001)
    assert np.array_equal((w.astype(np.float64) * (1.0 / std)).astype(np.float32), w)


@pytest.mark.parametrize("float16", [False, True])
def test_all_layer_kinds_roundtrip(tmp_path: Path, float16: bool) -> None:
    cfg, weights = write_model(tmp_path, ALL_KINDS, seed=3)
    teacher = Network.from_cfg(cfg)
    teacher.load_weights(weights)
    module = build_student(Network.from_cfg(cfg), teacher, float16)
    _train_a_little(module, (3, 32, 40))
    out = module.export_weights(tmp_path / "student.weights", seen=123)
    net = Network.load(cfg, out, "numpy")
    assert net.header is not None and (net.header.major, net.header.minor) == (0, 2)
    assert net.header.seen == 123
    # the exported folded weights come back bit for bit through darknet's fold
    for layer, mod in module.convs:
        eng = net.layers[layer.index]
        assert isinstance(eng, ConvolutionalLayer) and eng.folded_bias is not None
        assert np.array_equal(eng.folded_bias, mod.bias.detach().numpy())
        want = mod.weight.detach().numpy()
        if float16 and not layer.xnor:
            assert not np.array_equal(eng.weights, want)  # rounded, as the module runs it
            want = want.astype(np.float16).astype(np.float32)
        assert np.array_equal(eng.weights, want)
    x = np.random.default_rng(0).random((3, 32, 40), dtype=np.float32)
    _check_equal(module, net, x)


def test_student_layout_roundtrip(tmp_path: Path) -> None:
    """The real yolov3-tiny_xnor layout at a small size."""
    src = REF / "b_yolov3-tiny_xnor_random" / "yolov3-tiny_xnor_160x128.cfg"
    if not src.is_file():
        pytest.skip(f"{src} absent (../shared is not present)")
    text = src.read_text().replace("width=160", "width=64").replace("height=128", "height=64")
    cfg, weights = write_model(tmp_path, text, seed=5)
    teacher = Network.from_cfg(cfg)
    teacher.load_weights(weights)
    module = build_student(Network.from_cfg(cfg), teacher)
    _train_a_little(module, (3, 64, 64), steps=2)
    out = module.export_weights(tmp_path / "student.weights")
    net = Network.load(cfg, out, "numpy")
    x = np.random.default_rng(2).random((3, 64, 64), dtype=np.float32)
    _check_equal(module, net, x)
