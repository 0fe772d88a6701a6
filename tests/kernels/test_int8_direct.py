"""The direct int8 convolution (stride_x 1, one group: no im2col, the tiles read the input in
place as blocks of 4 channels, "quad pixels") against the NumPy reference, on every int8 path
this CPU runs, forced on where the path would choose im2col: sums, floats, bytes (pooled) and
pooled sign bits, over channels 1-4 and whole and partial blocks of them, kernel sizes,
stride_y, padding, dilation, rows wider than one work item, and 1-2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_params import INT8_PATHS
from xnoryolo.detector import ops, quantize
from xnoryolo.detector.activations import activate
from xnoryolo.kernels import qconv, xconv

PATHS = INT8_PATHS
# (c, h, w, filters, size, stride_y, padding, dilation)
CONVS = [
    (3, 9, 21, 16, 3, 1, 1, 1),  # the first layer's shape, a ragged last panel
    (1, 6, 5, 5, 3, 2, 1, 1),  # stride_y 2, an image narrower than one panel
    (2, 7, 17, 19, 1, 1, 0, 1),  # 1x1, filters past one tile of 16
    (4, 8, 13, 8, 5, 1, 2, 1),
    (3, 7, 12, 7, 3, 1, 2, 2),  # dilation 2
    (3, 5, 9, 3, 2, 1, 0, 1),  # even kernel, no padding
    (3, 3, 530, 16, 3, 1, 1, 1),  # rows of more than one work item (32 panels)
    (8, 6, 21, 16, 3, 1, 1, 1),  # two channel blocks
    (5, 5, 17, 9, 3, 2, 1, 1),  # a partial second block (3 channels of weight 0)
    (16, 4, 48, 24, 1, 1, 0, 1),  # four blocks, 1x1
    # whole blocks from 128 taps (AMX loads its B tiles from the quads in place)
    (64, 5, 13, 20, 3, 1, 1, 1),  # rows of one panel, 4 to a tile call and 1 left over
    (128, 6, 21, 17, 3, 2, 1, 1),  # two blocks of 64, stride_y 2, two panels a row
    (64, 4, 9, 16, 3, 1, 2, 2),  # dilation 2
    (64, 3, 40, 8, 2, 1, 0, 1),  # even kernel
    # fewer channels from 128 taps (AMX: steps of fewer than 16 tap groups, all of one kernel
    # row: 12, 15, 10 and 9 of them)
    (16, 7, 20, 24, 3, 1, 1, 1),
    (20, 5, 18, 33, 3, 2, 1, 1),
    (8, 6, 11, 16, 5, 1, 2, 1),
    (24, 6, 13, 40, 3, 1, 2, 2),
]


def _case(conv: tuple[int, ...], seed: int):
    c, h, w, f, size, sy, pad, dil = conv
    spec = ops.ConvSpec(c, h, w, f, size, sy, 1, pad, dil)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 1.5, (c, h, w)).astype(np.float32)
    x[0, 0, 0] = 1e9  # clamped to 255
    folded = rng.standard_normal((f, c, size, size)).astype(np.float32)
    folded[-1] = 0.0  # an all-zero filter
    bias = rng.standard_normal(f).astype(np.float32) * 5
    qw, ws = quantize.quantize_weights(folded)
    return spec, x, qw, ws, bias


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("conv", CONVS, ids=lambda g: "c{}_{}x{}_f{}_k{}sy{}p{}d{}".format(*g))
def test_direct_matches_reference(conv: tuple[int, ...], path: str) -> None:
    spec, x, qw, ws, bias = _case(conv, sum(conv))
    quant = quantize.ActQuant(0.011, 13)
    sums = quantize.int8_sums(x, qw, quant, spec)
    xq = quantize.quantize_activations(x, quant)
    out_quant = quantize.ActQuant(0.03, 5)
    # darknet maxpools (size, stride, padding): fused per pooled row where windows tile the
    # output (2/2 and 3/3 with padding <= 1), else pooled after; odd sizes leave short windows
    pools = [None] + [
        (size, stride, stride, pad, (spec.out_h + pad - size) // stride + 1,
         (spec.out_w + pad - size) // stride + 1)
        for size, stride, pad in ((2, 2, 1), (3, 3, 1), (2, 1, 1))
        if spec.out_h + pad >= size and spec.out_w + pad >= size
    ]  # fmt: skip
    for threads in (1, 2):
        k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, "leaky", threads, path,
                           activate=activate, direct=True)  # fmt: skip
        assert k.direct
        assert np.array_equal(k.run_int(x), sums)
        assert np.array_equal(k.run_int(xq), sums)  # uint8 input: no quantisation
        ref = quantize.int8_conv(x, qw, ws, bias, spec, quant, "leaky")
        assert np.array_equal(k(x), ref)
        for p in pools:
            want = quantize.int8_conv_bytes(x, qw, ws, bias, spec, quant, "leaky", out_quant, p)
            got = k.run_bytes(xq, out_quant.scale, out_quant.zero, p)
            assert np.array_equal(got, want), p
    k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, "logistic", 1, path,
                       activate=activate, direct=True)  # fmt: skip
    assert np.array_equal(k(x), quantize.int8_conv(x, qw, ws, bias, spec, quant, "logistic"))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(3, 20, 26, 16), (1, 9, 11, 70), (4, 7, 35, 8)])
def test_direct_pooled_bits(shape: tuple[int, ...], path: str) -> None:
    """The first conv of an XNOR net straight to the pool's sign bits, on the direct path."""
    c, h, w, f = shape
    spec, x, qw, ws, bias = _case((c, h, w, f, 3, 1, 1, 1), h)
    x = np.abs(x)
    quant = quantize.INPUT_QUANT
    y = quantize.int8_conv(x, qw, ws, bias * 20, spec, quant, "leaky")
    for padding in (1, 0):  # darknet's default (odd sizes: a one-column last window), none
        ph, pw = (h + padding - 2) // 2 + 1, (w + padding - 2) // 2 + 1
        pooled = ops.maxpool(y, 2, 2, 2, padding, ph, pw)
        for threads in (1, 2):
            pool = xconv.MaxPool(f, h, w, 2, 2, 2, padding, ph, pw, threads)
            k = qconv.Int8Conv(qw, ws, bias * 20, spec, quant.scale, quant.zero, "leaky",
                               threads, path, direct=True)  # fmt: skip
            shp = (ph + 2, pw + 2, (f + 63) // 64)
            out = np.zeros(shp, np.uint64)
            k.run_pooled_bits(quantize.quantize_activations(x, quant), pool, out, 1)
            assert np.array_equal(out, ops.pack_signs(pooled, shp, 1)), (padding, threads)


def _conv(spec: ops.ConvSpec, path: str, direct: bool | None = None) -> qconv.Int8Conv:
    one = np.ones(spec.filters, np.float32)
    w = np.ones((spec.filters, spec.k), np.int8)
    return qconv.Int8Conv(w, one, one, spec, 0.1, 0, "leaky", 1, path, direct=direct)


def test_which_layers_go_direct() -> None:
    """By default: thin inputs, and whole channel blocks whose rows fill 7/8 of their panels,
    on the x86 paths and sdot; AMX: thin inputs, and whole blocks from 128 taps at any width,
    on its own tiles, but 1x1; never with groups or stride_x > 1."""
    thin = ops.ConvSpec(3, 8, 8, 16, 3, 1, 1, 1)
    wide = ops.ConvSpec(16, 20, 104, 32, 3, 1, 1, 1)
    narrow = ops.ConvSpec(16, 20, 52, 32, 3, 1, 1, 1)  # 52 of 64 lanes
    odd = ops.ConvSpec(6, 20, 104, 32, 3, 1, 1, 1)  # a partial block: im2col by default
    assert not _conv(thin, "portable").direct
    for path in ("avx512vnni", "avxvnni", "avx2", "neondot"):
        if qconv.path_supported(path):
            assert _conv(thin, path).direct and _conv(wide, path).direct
            assert not _conv(narrow, path).direct and not _conv(odd, path).direct
    if qconv.path_supported("amx"):
        assert _conv(thin, "amx").direct and _conv(thin, "amx").path_name == "amx"
        assert not _conv(odd, "amx").direct and _conv(odd, "amx").path_name == "avx512vnni"
        for spec in (wide, narrow, ops.ConvSpec(256, 13, 13, 32, 3, 1, 1, 1)):
            assert _conv(spec, "amx").direct and _conv(spec, "amx").path_name == "amx"
        one_by_one = ops.ConvSpec(256, 13, 13, 32, 1, 1, 1, 0)
        assert not _conv(one_by_one, "amx").direct and _conv(one_by_one, "amx").path_name == "amx"
    for bad in (ops.ConvSpec(4, 8, 8, 16, 3, 1, 2, 1), ops.ConvSpec(8, 8, 8, 16, 1, groups=2)):
        assert not _conv(bad, "portable").direct
        with pytest.raises(ValueError, match="direct"):
            _conv(bad, "portable", direct=True)
