"""int8 -> int8 hand-off (Int8Conv.run_bytes, uint8 input) against its NumPy reference
(detector.quantize.int8_conv_bytes): the same bytes on every int8 path this CPU runs, with and
without a maxpool between, over channels, odd sizes, pools, zero points and thread counts."""

from __future__ import annotations

import numpy as np
import pytest

from kernel_params import INT8_PATHS
from xnoryolo.detector import ops, quantize
from xnoryolo.detector.activations import activate
from xnoryolo.kernels import qconv, xconv

PATHS = INT8_PATHS
# (c, h, w, filters, size, stride, pad)
CONVS = [
    (3, 13, 17, 16, 3, 1, 1),
    (5, 9, 8, 21, 1, 1, 0),
    (33, 7, 6, 37, 3, 2, 1),
    (4, 5, 67, 8, 3, 1, 1),  # wide rows: the vector pool and its tails
]
# darknet maxpools: (size, stride, padding); None: no pool between
POOLS = [None, (2, 2, 1), (2, 2, 0), (2, 1, 1), (3, 2, 2), (3, 1, 2)]


def _pool_geometry(shape: tuple[int, int, int], pool: tuple[int, int, int] | None):
    if pool is None:
        return None
    size, stride, pad = pool
    _, h, w = shape
    return (
        size,
        stride,
        stride,
        pad,
        (h + pad - size) // stride + 1,
        (w + pad - size) // stride + 1,
    )


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("pool", POOLS, ids=str)
@pytest.mark.parametrize("conv", CONVS, ids=lambda g: "c{}_{}x{}_f{}_k{}s{}p{}".format(*g))
def test_bytes_out_exact(
    conv: tuple[int, ...], pool: tuple[int, int, int] | None, path: str
) -> None:
    c, h, w, f, size, stride, pad = conv
    spec = ops.ConvSpec(c, h, w, f, size, stride, stride, pad, 1)
    rng = np.random.default_rng(c + h)
    x = rng.standard_normal((c, h, w)).astype(np.float32) * 2
    folded = rng.standard_normal((f, c, size, size)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    qw, ws = quantize.quantize_weights(folded)
    quant = quantize.ActQuant(0.02, 9)
    geometry = _pool_geometry((f, spec.out_h, spec.out_w), pool)
    for act, out_quant in (
        ("leaky", quantize.ActQuant(0.03, 11)),
        ("linear", quantize.ActQuant(0.05, 128)),
        ("relu", quantize.ActQuant(0.01, 0)),
    ):
        ref = quantize.int8_conv_bytes(x, qw, ws, bias, spec, quant, act, out_quant, geometry)
        for threads in (1, 2) if act == "leaky" else (1,):
            k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, act, threads, path)
            got = k.run_bytes(x, out_quant.scale, out_quant.zero, geometry)
            assert got.dtype == np.uint8 and got.shape == ref.shape
            assert np.array_equal(got, ref), (act, threads)
            # uint8 in: the bytes this layer quantises x to give the same result
            xq = quantize.quantize_activations(x, quant)
            assert np.array_equal(k.run_bytes(xq, out_quant.scale, out_quant.zero, geometry), ref)
            if geometry is None:
                assert np.array_equal(k(xq), k(x))
                assert np.array_equal(quantize.int8_conv(xq, qw, ws, bias, spec, quant, act), k(x))


@pytest.mark.parametrize("path", PATHS)
def test_uint8_input_to_pooled_bits(path: str) -> None:
    c, h, w, f = 3, 12, 14, 16
    spec = ops.ConvSpec(c, h, w, f, 3, 1, 1, 1, 1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    qw, ws = quantize.quantize_weights(rng.standard_normal((f, c, 3, 3)).astype(np.float32))
    bias = rng.standard_normal(f).astype(np.float32)
    quant = quantize.ActQuant(0.02, 100)
    k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, "leaky", 1, path)
    pool = xconv.MaxPool(f, h, w, 2, 2, 2, 1, h // 2, w // 2, 1)
    a = np.zeros((h // 2, w // 2, 1), np.uint64)
    b = np.zeros_like(a)
    k.run_pooled_bits(x, pool, a)
    k.run_pooled_bits(quantize.quantize_activations(x, quant), pool, b)
    assert np.array_equal(a, b)


def test_bytes_refusals() -> None:
    spec = ops.ConvSpec(2, 4, 4, 3, 1, 1, 1, 0, 1)
    qw, ws = quantize.quantize_weights(np.ones((3, 2, 1, 1), np.float32))
    bias = np.zeros(3, np.float32)
    k = qconv.Int8Conv(qw, ws, bias, spec, 0.1, 0, "logistic", 1, "portable", activate=activate)
    assert not k.emits_bytes
    x = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="not fused"):
        k.run_bytes(x, 0.1, 0)
    k = qconv.Int8Conv(qw, ws, bias, spec, 0.1, 0, "leaky", 1, "portable")
    with pytest.raises(ValueError, match="zero point"):
        k.run_bytes(x, 0.1, 300)
    with pytest.raises(ValueError, match="input shape"):
        k.run_bytes(np.zeros((2, 4, 5), np.uint8), 0.1, 0)


@pytest.mark.parametrize("path", PATHS)
def test_vector_quantisation_is_the_scalar_one(path: str) -> None:
    # ties (k + 0.5) / inv, NaN, infinities, huge values and odd lengths (vector tails)
    rng = np.random.default_rng(8)
    quant = quantize.ActQuant(0.05, 37)
    for n in (1, 15, 16, 17, 33, 257):
        x = (rng.integers(-900, 900, n) + 0.5).astype(np.float32) * np.float32(quant.scale)
        x[::3] = rng.standard_normal(len(x[::3])).astype(np.float32) * 9
        x[::7] = np.nan
        x[1::11] = np.inf
        x[2::13] = -np.inf
        x[3::17] = -1e30
        spec = ops.ConvSpec(1, 1, n, 1, 1, 1, 1, 0, 1)
        qw = np.ones((1, 1), np.int8)
        k = qconv.Int8Conv(
            qw,
            np.ones(1, np.float32),
            np.zeros(1, np.float32),
            spec,
            quant.scale,
            quant.zero,
            "linear",
            1,
            path,
        )
        want = quantize.quantize_activations(x[None, None], quant).astype(np.int32) - quant.zero
        assert np.array_equal(k.run_int(x[None, None]), want[None, 0]), n
        out = quantize.ActQuant(0.1, 3)
        ref = quantize.quantize_activations(k(x[None, None]), out)
        assert np.array_equal(k.run_bytes(x[None, None], out.scale, out.zero), ref), n
