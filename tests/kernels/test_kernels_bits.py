"""Chained binary layers: sign bits handed from layer to layer (kernels/README.md) against the
NumPy reference (ops.pack_signs of the float outputs), and the network path that uses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kernel_params import CHANNELS, GEOMETRIES, ISAS
from xnoryolo.detector import ops
from xnoryolo.kernels import xconv
from xnoryolo.kernels.backend import FastBackend

# 2-thread cases run the multi-threaded loops whatever the layer size
pytestmark = pytest.mark.usefixtures("whole_team")

SIGN_KEEPING = ["linear", "leaky", "relu"]


def _case(c: int, h: int, w: int, f: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    x[np.abs(x) < 0.3] = 0.0  # zeros binarize to -1
    folded = rng.standard_normal((f, c, size, size)).astype(np.float32)
    signs, scale = ops.binarize_weights(folded)
    # biases around the output scale, so every filter has outputs on both sides of 0
    bias = (rng.standard_normal(f) * scale * np.sqrt(c * size * size)).astype(np.float32)
    bias[0] = 0.0  # output exactly 0 is not > 0
    return x, signs, scale, bias


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: "k{}s{}p{}".format(*g))
@pytest.mark.parametrize("c", CHANNELS)
def test_binary_bits_out_exact(c: int, geom: tuple[int, int, int], isa: str) -> None:
    """Bits out == the reference's float output, sign-packed; with and without the floats,
    from float and from packed input, 1 and 2 threads, borders 0..2, F across word edges. The
    floats (fused into the tiles on AVX2/AVX-512) equal the portable path's bit for bit."""
    size, stride, pad = geom
    h, w = 7, 9 if c < 128 else 5
    f = 70 if c % 2 else 129
    act = SIGN_KEEPING[c % 3]
    x, signs, scale, bias = _case(c, h, w, f, size, seed=c * 17 + size + 5 * stride + pad)
    spec = ops.ConvSpec(c, h, w, f, size, stride, stride, pad)
    ref = ops.binary_conv(x, signs, scale, bias, spec, act)
    portable = xconv.BinaryConv(signs, scale, bias, spec, act, 1, "portable")(x)
    for threads in (1, 2):
        kernel = xconv.BinaryConv(signs, scale, bias, spec, act, threads, isa)
        assert kernel.emits_bits and kernel.team == threads
        np.testing.assert_array_equal(kernel(x), portable)
        packed_in = ops.pack_signs(x, kernel.packed_shape, pad)
        np.testing.assert_array_equal(kernel.pack(x), packed_in)
        for bits_pad, want_float, src in ((threads - 1, False, x), (2, True, packed_in)):
            shape = (spec.out_h + 2 * bits_pad + 1, spec.out_w + 2 * bits_pad, (f + 63) // 64)
            bits = np.zeros(shape, np.uint64)
            y = kernel.run(src, bits=bits, bits_pad=bits_pad, want_float=want_float)
            np.testing.assert_array_equal(bits, ops.pack_signs(ref, shape, bits_pad))
            if want_float:
                assert y is not None
                np.testing.assert_array_equal(y, portable)
            else:
                assert y is None


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("f", [1, 4, 63, 64, 65, 200])
def test_binary_bits_filter_counts(f: int, isa: str) -> None:
    x, signs, scale, bias = _case(64, 13, 13, f, 3, seed=f)
    spec = ops.ConvSpec(64, 13, 13, f, 3, 1, 1, 1)
    kernel = xconv.BinaryConv(signs, scale, bias, spec, "leaky", 2, isa)
    shape = (15, 15, (f + 63) // 64)
    bits = np.zeros(shape, np.uint64)
    kernel.run(x, bits=bits, bits_pad=1, want_float=False)
    ref = ops.binary_conv(x, signs, scale, bias, spec, "leaky")
    np.testing.assert_array_equal(bits, ops.pack_signs(ref, shape, 1))


def test_sign_limits_match_the_float_transform() -> None:
    """bit = mismatches < limit is exactly float32(K - 2m) * scale + bias > 0, including a
    zero scale, zero and negative-zero biases, and biases that sit on a rounding edge."""
    k = 300
    scale = np.array([0.0, 0.0, 1.0, 1e-3, 0.37, 3.0e-8, 1.0, 0.1], np.float32)
    bias = np.array([1.0, -0.0, 0.0, -0.299, 0.1, -1e-6, -300.0, np.nan], np.float32)
    limits = xconv.sign_limits(k, scale, bias)
    m = np.arange(k + 1)
    y = (k - 2 * m).astype(np.float32)[None, :] * scale[:, None]
    y = y + bias[:, None]
    np.testing.assert_array_equal(m[None, :] < limits[:, None], y > 0)
    assert limits[0] == k + 1 and limits[1] == 0 and limits[-1] == 0


@pytest.mark.parametrize("isa", ISAS)
def test_bits_refused_where_signs_would_differ(isa: str) -> None:
    x, signs, scale, bias = _case(16, 5, 5, 4, 3, seed=2)
    spec = ops.ConvSpec(16, 5, 5, 4, 3, 1, 1, 1)
    logistic = xconv.BinaryConv(signs, scale, bias, spec, "logistic", 1, isa)
    assert not logistic.emits_bits  # logistic(y) > 0 even where y <= 0
    with pytest.raises(ValueError, match="cannot emit sign bits"):
        logistic.run(x, bits=np.zeros((5, 5, 1), np.uint64))
    leaky = xconv.BinaryConv(signs, scale, bias, spec, "leaky", 1, isa)
    with pytest.raises(ValueError, match="cannot hold"):
        leaky.run(x, bits=np.zeros((4, 5, 1), np.uint64))
    with pytest.raises(ValueError, match="packed input shape"):
        leaky.run(np.zeros((4, 5, 1), np.uint64))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("geom", [(3, 1, 1), (3, 2, 2), (1, 1, 0)])
def test_binary_conv_reads_bits_without_border(geom: tuple[int, int, int], isa: str) -> None:
    """Bits in their natural layout (no border: what a route or a layer with several readers
    hands on) give the same output as floats."""
    size, stride, pad = geom
    x, signs, scale, bias = _case(130, 9, 7, 20, size, seed=size + pad)
    spec = ops.ConvSpec(130, 9, 7, 20, size, stride, stride, pad)
    kernel = xconv.BinaryConv(signs, scale, bias, spec, "leaky", 2, isa)
    natural = ops.pack_signs(x, (9, 7, 3), 0)
    np.testing.assert_array_equal(kernel.run(natural), kernel(x))


POOLS = [(2, 2, 2, 1), (2, 1, 1, 1), (3, 1, 1, 2), (3, 2, 2, 2), (2, 2, 1, 0), (5, 1, 1, 4)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: "k{}sy{}sx{}p{}".format(*p))
@pytest.mark.parametrize("c", [1, 16, 33, 64, 65, 130])
def test_maxpool_bits_exact(c: int, pool: tuple[int, int, int, int], isa: str) -> None:
    """Pooled sign bits (from floats and from bits) == the reference pool, sign-packed."""
    size, sy, sx, padding = pool
    for h, w in ((8, 8), (13, 13), (7, 12)):
        out_h, out_w = (h + padding - size) // sy + 1, (w + padding - size) // sx + 1
        x = np.random.default_rng(c + h * w + size).standard_normal((c, h, w))
        x = x.astype(np.float32)
        x[0, 0, :] = 0.0
        ref = ops.maxpool(x, size, sy, sx, padding, out_h, out_w)
        for threads, out_pad in ((1, 0), (2, 1)):
            kernel = FastBackend(threads, simd=isa).maxpool(
                (c, h, w), size, sy, sx, padding, out_h, out_w
            )
            shape = (out_h + 2 * out_pad, out_w + 2 * out_pad, (c + 63) // 64)
            expected = ops.pack_signs(ref, shape, out_pad)
            for src in (x, ops.pack_signs(x, kernel.packed_shape, 0)):
                bits = np.zeros(shape, np.uint64)
                kernel.run_bits(src, bits, out_pad)
                np.testing.assert_array_equal(bits, expected)


# ------------------------------------------------------------------------------- network
def _random_network(cfg: str, threads: int, isa: str | None = None):
    from xnoryolo.detector import Network
    from xnoryolo.detector.weights import random_weights

    net = Network.from_cfg(cfg)
    net.load_weights(random_weights(net))
    return net.prepare(FastBackend(threads=threads, simd=isa))


@pytest.mark.parametrize("isa", ISAS)
def test_bits_plan_of_yolov3_tiny_xnor(isa: str) -> None:
    """The float first conv runs pool 1 itself and emits its bits where its kernel can (the
    direct path), else pool 1 packs the conv's floats; convs and pools up to conv 12 hand bits
    on; conv 8 also keeps its floats for the route; conv 13 feeds a float conv and a route, so
    it emits floats."""
    net = _random_network("xnoryolo/configs/yolov3-tiny_xnor.cfg", 1, isa)
    plan = net.bits_plan
    fused = net.layers[0].kernel.takes_pool(net.layers[1].bits_kernel)
    assert fused == net.layers[0].kernel.direct
    assert sorted(plan) == [*range(0 if fused else 1, 14), 17, 18, 19, 20]
    assert [i for i, step in plan.items() if step.want_float] == [13]  # conv 14 reads floats
    if fused:
        assert plan[0].pool is net.layers[1] and plan[1].done
        assert plan[0].layout == (net.layers[2].kernel.packed_shape, 1)
    else:
        assert not plan[1].done and plan[1].pool is None
        assert plan[1].layout == (net.layers[2].kernel.packed_shape, 1)
    assert plan[2].layout == (net.layers[3].kernel.packed_shape, 0)
    # conv 8 feeds pool 9 and route 20, conv 13 route 17: natural layout, no border
    assert plan[8].layout == ((26, 26, 4), 0) and plan[13].layout == ((13, 13, 4), 0)
    assert not plan[13].next_bits  # its next layer is the float conv 14
    assert plan[20].layout == (net.layers[21].kernel.packed_shape, 1)
    float_net = _random_network("xnoryolo/configs/yolov3-tiny.cfg", 1)
    assert float_net.bits_plan == {}
    net.prepare("numpy")
    assert net.bits_plan == {}  # re-planned for the new kernels: no bits in the reference


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: "k{}sy{}sx{}p{}".format(*p))
@pytest.mark.parametrize("c", [1, 3, 4])
def test_conv_runs_the_pool_after_it(c: int, pool: tuple[int, int, int, int], isa: str) -> None:
    """A first conv that runs the pool after it (row by row) gives that pool's floats and bits
    exactly; only pools whose windows tile the rows are taken over, and only on the direct
    path."""
    size, sy, sx, padding = pool
    rng = np.random.default_rng(c * 11 + size)
    for h, w, f in ((16, 16, 16), (13, 17, 21), (9, 10, 70)):
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        weights = rng.standard_normal((f, c, 3, 3)).astype(np.float32)
        bias = rng.standard_normal(f).astype(np.float32)
        spec = ops.ConvSpec(c, h, w, f, 3, 1, 1, 1)
        out_h, out_w = (h + padding - size) // sy + 1, (w + padding - size) // sx + 1
        for threads in (1, 2):
            backend = FastBackend(threads, simd=isa)
            conv = backend.float_conv(weights, bias, spec, "leaky")
            mp = backend.maxpool((f, h, w), size, sy, sx, padding, out_h, out_w)
            fusable = conv.direct and sy == size and padding // 2 == 0
            assert conv.takes_pool(mp) == fusable
            if not fusable:
                continue
            shape = (out_h + 2, out_w + 2, (f + 63) // 64)
            ref = ops.maxpool(ops.float_conv(x, weights, bias, spec, "leaky"), size, sy, sx,
                              padding, out_h, out_w)  # fmt: skip
            apart = mp(conv(x))
            np.testing.assert_array_equal(conv.run_pooled(x, mp), apart)
            bits = np.zeros(shape, np.uint64)
            conv.run_pooled_bits(x, mp, bits, 1)
            np.testing.assert_array_equal(bits, ops.pack_signs(apart, shape, 1))
            # the NumPy reference agrees wherever summation order cannot flip a sign
            signs = np.unpackbits(bits[1:-1, 1:-1].view(np.uint8), axis=2, bitorder="little")
            clear = np.abs(ref) > 1e-4
            np.testing.assert_array_equal(
                signs[..., :f].transpose(2, 0, 1)[clear], (ref > 0)[clear]
            )


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2])
def test_pool_plan_of_yolov3_tiny(threads: int, isa: str) -> None:
    """The float convs 0, 2 and 4 run the pools after them where their kernels can (the
    direct path); conv 8's output also feeds a route and pool 11 overlaps its windows, so
    those stay apart; the outputs are the same floats either way."""
    from xnoryolo.bench import synthetic_frame
    from xnoryolo.detector import Detector

    net = _random_network("xnoryolo/configs/yolov3-tiny.cfg", threads, isa)
    plan = net.pool_plan
    if not net.layers[0].kernel.direct:
        assert plan == {}
        return
    layers = net.layers
    assert plan == {0: layers[1], 1: None, 2: layers[3], 3: None, 4: layers[5], 5: None}
    x = Detector(net).preprocess(synthetic_frame())
    full = net.forward(x, keep=True)
    lean = net.head_outputs(net.forward(x, keep=False))
    for d in net.detection_layers:
        np.testing.assert_array_equal(lean[d.index], full[d.index])
    # layers of the bits plan keep their steps: an XNOR net's conv 0 runs pool 1 to bits
    xnor = _random_network("xnoryolo/configs/yolov3-tiny_xnor.cfg", threads, isa)
    assert xnor.pool_plan == {} and xnor.bits_plan[0].pool is xnor.layers[1]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "cfg",
    ["xnoryolo/configs/yolov3-tiny_xnor.cfg", "xnoryolo/configs/yolov3-tiny_xnor-partial.cfg"],
)
def test_bits_path_gives_identical_detections(cfg: str, threads: int, isa: str) -> None:
    """keep=False (the Detector.detect path, bits between binary layers) gives the detection
    layers' outputs bit for bit as keep=True (floats everywhere), on every SIMD path."""
    from xnoryolo.bench import synthetic_frame
    from xnoryolo.detector import Detector

    net = _random_network(cfg, threads, isa)
    assert net.bits_plan
    x = Detector(net).preprocess(synthetic_frame())
    full = net.forward(x, keep=True)
    lean = net.head_outputs(net.forward(x, keep=False))
    for d in net.detection_layers:
        np.testing.assert_array_equal(lean[d.index], full[d.index])


ROUTES_CFG = """
[net]
width=64
height=64
channels=3

[convolutional]
filters=16
size=3
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
xnor=1
batch_normalize=1
filters=48
size=3
pad=1
activation=leaky

[convolutional]
xnor=1
batch_normalize=1
filters=64
size=3
pad=1
activation=leaky

[route]
layers=2,3

[convolutional]
xnor=1
batch_normalize=1
filters=64
size=3
pad=1
activation=relu

[maxpool]
size=2
stride=2

[convolutional]
xnor=1
batch_normalize=1
filters=128
size=3
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers=-1,3

[convolutional]
xnor=1
batch_normalize=1
filters=64
size=1
activation=linear

[route]
layers=-1
groups=2
group_id=1

[convolutional]
xnor=1
batch_normalize=1
filters=64
size=3
pad=1
activation=leaky

[convolutional]
filters=18
size=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14,23,27,37,58
classes=1
num=3
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_bits_through_routes_and_upsample(tmp_path: Path, threads: int) -> None:
    """A route whose first source is not a whole number of words (48 channels) and a grouped
    route take floats; an aligned route (128 + 64) and an upsample pass bits; layers read both
    ways emit both. The detections are bit-identical either way."""
    cfg = tmp_path / "routes.cfg"
    cfg.write_text(ROUTES_CFG)
    net = _random_network(str(cfg), threads)
    plan = net.bits_plan
    assert 4 not in plan and not net.layers[4].emits_bits  # 48 + 64: not word aligned
    assert {8, 9} <= set(plan) and net.layers[9].emits_bits
    assert plan[2].want_float and plan[3].want_float  # route 4 reads their floats
    assert not {10, 11, 12} & set(plan)  # a grouped route slices floats: all floats there
    rng = np.random.default_rng(threads)
    x = rng.random(net.input_shape, dtype=np.float32)
    full = net.forward(x, keep=True)
    lean = net.head_outputs(net.forward(x, keep=False))
    np.testing.assert_array_equal(lean[14], full[14])
    # and each emitting layer, fed the float run's outputs (as bits where it reads bits),
    # gives the signs of its own float output
    from xnoryolo.detector.layers import UpsampleLayer, natural_layout

    bits = {j: ops.pack_signs(y, *natural_layout(y.shape)) for j, y in enumerate(full)}
    for i, step in plan.items():
        if step.done or step.pool is not None:
            continue
        layer = net.layers[i]
        inp = bits[i - 1] if isinstance(layer, UpsampleLayer) else full[i - 1]
        _, got = layer.forward_bits(inp, full, step, bits)
        np.testing.assert_array_equal(got, ops.pack_signs(full[i], *step.layout), err_msg=str(i))


def test_bits_path_is_reentrant() -> None:
    """Several Python threads running one network at once (the service's inference workers)
    get the same detections as one at a time: every bits buffer is per call."""
    from concurrent.futures import ThreadPoolExecutor

    net = _random_network("xnoryolo/configs/yolov3-tiny_xnor.cfg", 2)
    rng = np.random.default_rng(5)
    inputs = [rng.random(net.input_shape, dtype=np.float32) for _ in range(6)]
    heads = [d.index for d in net.detection_layers]
    alone = [[net.forward(x, keep=False)[i] for i in heads] for x in inputs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(lambda x: [net.forward(x, keep=False)[i] for i in heads], inputs))
    for a, b in zip(alone, together, strict=True):
        for ya, yb in zip(a, b, strict=True):
            np.testing.assert_array_equal(ya, yb)
