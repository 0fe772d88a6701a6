"""Fast kernels (xnoryolo.kernels) against the NumPy reference (detector.ops) and darknet."""

from __future__ import annotations

import lzma

import numpy as np
import pytest

from kernel_params import CHANNELS, GEOMETRIES, ISAS
from refdata import SHARED
from xnoryolo.detector import ops
from xnoryolo.detector.activations import activate
from xnoryolo.detector.backends import get_backend

# the kernels are part of every build: a missing extension is a failure, not a skip
from xnoryolo.kernels import backend as kb
from xnoryolo.kernels import xconv
from xnoryolo.kernels.backend import FastBackend, set_simd

# 2-thread cases run the multi-threaded loops whatever the layer size
pytestmark = pytest.mark.usefixtures("whole_team")

REF = SHARED / "darknet-ref"

ACTIVATIONS = ["linear", "leaky", "relu", "logistic", "mish"]


@pytest.fixture(autouse=True)
def _reset_simd():
    yield
    set_simd(None)


def _case(c: int, h: int, w: int, f: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    x[np.abs(x) < 0.3] = 0.0  # exact zeros must binarize to -1
    x[0, 0, 0] = -0.0
    folded = rng.standard_normal((f, c, size, size)).astype(np.float32)
    folded[np.abs(folded) < 0.2] = 0.0
    signs, scale = ops.binarize_weights(folded)
    bias = rng.standard_normal(f).astype(np.float32)
    return x, folded, signs, scale, bias


def _close(y: np.ndarray, ref: np.ndarray, rel: float) -> None:
    assert y.shape == ref.shape and y.dtype == np.float32
    scale = max(float(np.abs(ref).max()), 1e-30)
    err = float(np.abs(y.astype(np.float64) - ref).max()) / scale
    assert err <= rel, f"max error {err:.3g} relative to the output max"


# ------------------------------------------------------------------------------------ binary
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: "k{}s{}p{}".format(*g))
@pytest.mark.parametrize("c", CHANNELS)
def test_binary_dot_exact(c: int, geom: tuple[int, int, int], isa: str) -> None:
    size, stride, pad = geom
    h, w = 7, 9 if c < 128 else 5
    x, _, signs, scale, bias = _case(c, h, w, 6, size, seed=c * 31 + size + 7 * stride + pad)
    spec = ops.ConvSpec(c, h, w, 6, size, stride, stride, pad)
    ref = ops.binary_dot(x, signs, spec)
    for threads in (1, 2):
        kernel = xconv.BinaryConv(signs, scale, bias, spec, "leaky", threads, isa)
        np.testing.assert_array_equal(kernel.dot(x), ref)
        _close(kernel(x), ops.binary_conv(x, signs, scale, bias, spec, "leaky"), 1e-6)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("f", [1, 5, 17, 64])
@pytest.mark.parametrize("hw", [(1, 1), (3, 17), (13, 13), (8, 33)])
def test_binary_shapes(hw: tuple[int, int], f: int, isa: str) -> None:
    """Filter counts and pixel counts that are not multiples of the micro-kernel block."""
    h, w = hw
    x, _, signs, scale, bias = _case(64, h, w, f, 3, seed=h * 100 + w + f)
    spec = ops.ConvSpec(64, h, w, f, 3, 1, 1, 1)
    kernel = xconv.BinaryConv(signs, scale, bias, spec, "linear", 2, isa)
    np.testing.assert_array_equal(kernel.dot(x), ops.binary_dot(x, signs, spec))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("c", [512, 520, 1024])
def test_binary_long_rows(c: int, isa: str) -> None:
    """K up to 9216 bits: the AVX2/NEON byte counters must be flushed before they overflow."""
    x, _, signs, scale, bias = _case(c, 4, 5, 8, 3, seed=c)
    x[:] = np.abs(x) + 1  # every input +1 and all-equal weights: popcounts at their maximum
    signs[:4] = -1
    spec = ops.ConvSpec(c, 4, 5, 8, 3, 1, 1, 1)
    kernel = xconv.BinaryConv(signs, scale, bias, spec, "linear", 1, isa)
    np.testing.assert_array_equal(kernel.dot(x), ops.binary_dot(x, signs, spec))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("c", [16, 64, 65])
def test_padding_taps_are_minus_one(c: int, isa: str) -> None:
    """All-positive input and weights: an interior 3x3 window scores K, a corner (4 real taps
    of 9) scores 4*c - 5*c, because padding taps are -1, not 0 and not +1."""
    x = np.ones((c, 4, 4), np.float32)
    signs = np.ones((2, c, 3, 3), np.int8)
    spec = ops.ConvSpec(c, 4, 4, 2, 3, 1, 1, 1)
    kernel = xconv.BinaryConv(signs, np.ones(2, np.float32), np.zeros(2, np.float32), spec,
                              "linear", 1, isa)  # fmt: skip
    dot = kernel.dot(x).reshape(2, 4, 4)
    assert dot[0, 1, 1] == 9 * c
    assert dot[0, 0, 0] == 4 * c - 5 * c
    assert dot[0, 0, 1] == 6 * c - 3 * c


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_binary_activations(activation: str, isa: str) -> None:
    x, _, signs, scale, bias = _case(32, 6, 41, 9, 3, seed=3)
    spec = ops.ConvSpec(32, 6, 41, 9, 3, 1, 1, 1)
    kernel = xconv.BinaryConv(signs, scale, bias, spec, activation, 2, isa, activate=activate)
    y = kernel(x)
    _close(y, ops.binary_conv(x, signs, scale, bias, spec, activation), 2e-6)
    # every SIMD path gives the very same floats as the portable one
    portable = xconv.BinaryConv(
        signs, scale, bias, spec, activation, 1, "portable", activate=activate
    )
    np.testing.assert_array_equal(y, portable(x))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kw", [30, 31, 32, 62, 63, 64])
def test_binary_window_words_around_blocks(kw: int, isa: str) -> None:
    """1x1 windows of 30..64 words, around the AVX2 block of 31 words (the fused tile up to
    31, counts summed per block past it): dot, floats and sign bits, 1 and 2 threads."""
    c = 64 * kw
    x, _, signs, scale, bias = _case(c, 3, 5, 9, 1, seed=kw)
    spec = ops.ConvSpec(c, 3, 5, 9, 1, 1, 1, 0)
    ref = ops.binary_conv(x, signs, scale, bias, spec, "leaky")
    portable = xconv.BinaryConv(signs, scale, bias, spec, "leaky", 1, "portable")(x)
    for threads in (1, 2):
        kernel = xconv.BinaryConv(signs, scale, bias, spec, "leaky", threads, isa)
        np.testing.assert_array_equal(kernel.dot(x), ops.binary_dot(x, signs, spec))
        bits = np.zeros((3, 5, 1), np.uint64)
        y = kernel.run(x, bits=bits)
        np.testing.assert_array_equal(y, portable)
        np.testing.assert_array_equal(bits, ops.pack_signs(ref, bits.shape, 0))


def test_weight_packing_convention() -> None:
    """README.md's layout: bit (ky*size + kx)*C + c of row f is 1 iff the weight is > 0."""
    rng = np.random.default_rng(5)
    signs = np.where(rng.random((5, 70, 3, 3)) > 0.5, 1, -1).astype(np.int8)
    packed = xconv.pack_weights(signs)
    k = 70 * 9
    assert packed.dtype == np.uint64 and packed.shape == (8, (k + 63) // 64)
    bits = np.unpackbits(packed.view(np.uint8), axis=1, bitorder="little")
    expected = (signs.transpose(0, 2, 3, 1).reshape(5, k) > 0).astype(np.uint8)
    np.testing.assert_array_equal(bits[:5, :k], expected)
    assert not bits[:, k:].any() and not bits[5:].any()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("w", [4, 16, 37])
@pytest.mark.parametrize("c", [1, 16, 64, 70, 130])
def test_activation_packing_convention(c: int, w: int, isa: str) -> None:
    h = 3
    x = np.random.default_rng(c + w).standard_normal((c, h, w)).astype(np.float32)
    x[0, 1, 2] = 0.0
    x[-1, 0, 0] = np.nan  # NaN > 0 is false: bit 0
    spec = ops.ConvSpec(c, h, w, 4, 3, 1, 1, 1)
    signs = np.ones((4, c, 3, 3), np.int8)
    kernel = xconv.BinaryConv(signs, np.ones(4, np.float32), np.zeros(4, np.float32), spec,
                              "linear", 2, isa)  # fmt: skip
    packed = kernel.pack(x)
    cw = (c + 63) // 64
    assert packed.shape == (h + 2, w + 2, cw)
    bits = np.unpackbits(packed.view(np.uint8), axis=2, bitorder="little")
    np.testing.assert_array_equal(bits[1:-1, 1:-1, :c], (x > 0).transpose(1, 2, 0))
    assert not bits[0].any() and not bits[-1].any() and not bits[:, 0].any()
    assert not bits[..., c:].any()


# ------------------------------------------------------------------------------------- float
FLOAT_GEOMS = [
    (1, 1, 1, 0, 1, 1),
    (1, 2, 2, 0, 1, 1),
    (3, 1, 1, 1, 1, 1),
    (3, 2, 2, 1, 1, 1),
    (3, 1, 2, 2, 1, 1),
    (3, 1, 1, 0, 1, 1),
    (3, 1, 1, 1, 2, 1),
    (3, 1, 1, 1, 1, 2),
    (1, 1, 1, 0, 1, 2),
]


@pytest.mark.parametrize(
    "geom", FLOAT_GEOMS, ids=lambda g: "k{}sy{}sx{}p{}d{}g{}".format(*g)
)  # fmt: skip
@pytest.mark.parametrize("c", [2, 3, 16, 33, 64])
def test_float_conv(c: int, geom: tuple[int, ...]) -> None:
    size, sy, sx, pad, dil, groups = geom
    h, w = 9, 11
    rng = np.random.default_rng(c * 13 + sum(geom))
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    f = 6
    weights = rng.standard_normal((f, c // groups, size, size)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    spec = ops.ConvSpec(c, h, w, f, size, sy, sx, pad, dil, groups)
    for isa in kb.available_simd():
        for threads in (1, 2):
            for act in ("leaky", "linear"):
                kernel = FastBackend(threads, simd=isa).float_conv(weights, bias, spec, act)
                _close(kernel(x), ops.float_conv(x, weights, bias, spec, act), 1e-5)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("w", [5, 16, 37, 64])
@pytest.mark.parametrize("geom", [(3, 1, 1), (3, 2, 1), (3, 1, 0), (5, 1, 2), (2, 1, 0)])
@pytest.mark.parametrize("c", [1, 3, 4])
def test_float_conv_direct(c: int, geom: tuple[int, int, int], w: int, isa: str) -> None:
    """First-layer shapes (C <= 4) take the direct path on AVX2, AVX-512 and NEON: filter x
    pixel blocks of vectors, ragged right edges, filter counts that are not multiples of 4."""
    size, sy, pad = geom
    rng = np.random.default_rng(c * 7 + w + size)
    x = rng.random((c, 9, w), dtype=np.float32)
    weights = rng.standard_normal((6, c, size, size)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    spec = ops.ConvSpec(c, 9, w, 6, size, sy, 1, pad)
    for threads, act in ((1, "leaky"), (2, "leaky"), (1, "logistic"), (2, "relu"), (1, "mish")):
        kernel = FastBackend(threads, simd=isa, activate=activate).float_conv(
            weights, bias, spec, act
        )
        assert kernel.direct == (isa in ("avx2", "avx512", "neon"))
        _close(kernel(x), ops.float_conv(x, weights, bias, spec, act), 1e-5)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("f", [1, 7, 12, 13, 26])
def test_float_gemm_filter_blocks(f: int, isa: str) -> None:
    """Filter counts around the GEMM's 6- and 12-filter tiles (a 12-filter tile whose second
    half is partial or absent), pixel counts around its 16- and 32-column panels, 2 groups."""
    rng = np.random.default_rng(f)
    for h, w, groups in ((3, 5, 1), (4, 8, 1), (5, 7, 2), (6, 11, 1)):
        c, ff = 64 * groups, f * groups
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        weights = rng.standard_normal((ff, c // groups, 3, 3)).astype(np.float32) * 0.1
        bias = rng.standard_normal(ff).astype(np.float32)
        spec = ops.ConvSpec(c, h, w, ff, 3, 1, 1, 1, 1, groups)
        for threads in (1, 2):
            kernel = FastBackend(threads, simd=isa).float_conv(weights, bias, spec, "leaky")
            _close(kernel(x), ops.float_conv(x, weights, bias, spec, "leaky"), 1e-5)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("groups", [1, 2])
def test_float_conv_long_k(groups: int, isa: str) -> None:
    """K = 2700: many K blocks of the GEMM, accumulated into the output."""
    c = 300 * groups
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((c, 5, 7)).astype(np.float32)
    weights = rng.standard_normal((14, c // groups, 3, 3)).astype(np.float32) * 0.05
    bias = rng.standard_normal(14).astype(np.float32)
    spec = ops.ConvSpec(c, 5, 7, 14, 3, 1, 1, 1, 1, groups)
    for threads in (1, 2):
        kernel = FastBackend(threads, simd=isa).float_conv(weights, bias, spec, "leaky")
        _close(kernel(x), ops.float_conv(x, weights, bias, spec, "leaky"), 1e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float_activations(activation: str) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 13, 13)).astype(np.float32)
    weights = rng.standard_normal((255, 16, 1, 1)).astype(np.float32) * 0.3
    bias = rng.standard_normal(255).astype(np.float32)
    spec = ops.ConvSpec(16, 13, 13, 255, 1)
    kernel = FastBackend(2, activate=activate).float_conv(weights, bias, spec, activation)
    _close(kernel(x), ops.float_conv(x, weights, bias, spec, activation), 1e-5)


def test_unfused_activation_needs_activate() -> None:
    """The kernels fuse linear, leaky, relu and logistic; any other activation is computed by
    the injected `activate`, and building such a kernel without one fails at once."""
    x, folded, signs, scale, bias = _case(16, 5, 6, 4, 3, seed=4)
    spec = ops.ConvSpec(16, 5, 6, 4, 3, 1, 1, 1)
    backend = FastBackend(1)
    with pytest.raises(ValueError, match="'mish' is not fused"):
        backend.float_conv(folded, bias, spec, "mish")
    with pytest.raises(ValueError, match="'mish' is not fused"):
        backend.binary_conv(signs, scale, bias, spec, "mish")
    with pytest.raises(ValueError, match="'swish' is not fused"):
        xconv.BinaryConv(signs, scale, bias, spec, "swish", 1, "portable")
    for act in ("linear", "leaky", "relu", "logistic"):
        kernel = backend.float_conv(folded, bias, spec, act)
        _close(kernel(x), ops.float_conv(x, folded, bias, spec, act), 1e-5)
    calls: list[str] = []

    def spy(y: np.ndarray, name: str) -> np.ndarray:
        calls.append(name)
        return activate(y, name)

    kernel = FastBackend(1, activate=spy).binary_conv(signs, scale, bias, spec, "mish")
    _close(kernel(x), ops.binary_conv(x, signs, scale, bias, spec, "mish"), 2e-6)
    assert calls == ["mish"]


# ----------------------------------------------------------------------------------- maxpool
@pytest.mark.parametrize(
    "pool", [(2, 2, 2, 1), (2, 1, 1, 1), (3, 1, 1, 2), (5, 1, 1, 4), (3, 2, 2, 2), (2, 2, 1, 0)]
)
@pytest.mark.parametrize("hw", [(8, 8), (13, 13), (7, 12), (1, 5)])
def test_maxpool(hw: tuple[int, int], pool: tuple[int, int, int, int]) -> None:
    size, sy, sx, padding = pool
    h, w = hw
    if h + padding < size or w + padding < size:
        pytest.skip("window does not fit")
    out_h, out_w = (h + padding - size) // sy + 1, (w + padding - size) // sx + 1
    x = np.random.default_rng(h * w + size).standard_normal((5, h, w)).astype(np.float32)
    for threads in (1, 2):
        kernel = FastBackend(threads).maxpool((5, h, w), size, sy, sx, padding, out_h, out_w)
        ref = ops.maxpool(x, size, sy, sx, padding, out_h, out_w)
        np.testing.assert_array_equal(kernel(x), ref)


# ----------------------------------------------------------------------------------- backend
def test_backend_factory_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XNORYOLO_THREADS", "3")
    backend = get_backend("fast")
    assert isinstance(backend, FastBackend) and backend.name == "fast"
    assert backend.threads == 3
    assert FastBackend(threads=1).threads == 1
    monkeypatch.setenv("XNORYOLO_THREADS", "zero")
    with pytest.raises(ValueError, match="XNORYOLO_THREADS"):
        FastBackend()
    with pytest.raises(ValueError, match="threads"):
        FastBackend(threads=0)


def test_simd_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ops.ConvSpec(16, 4, 4, 4, 3, 1, 1, 1)
    _, _, signs, scale, bias = _case(16, 4, 4, 4, 3, seed=1)
    assert "portable" in kb.available_simd()
    set_simd("portable")
    assert FastBackend(1).binary_conv(signs, scale, bias, spec, "linear").isa_name == "portable"
    set_simd(None)
    monkeypatch.setenv("XNORYOLO_SIMD", "portable")
    assert kb.get_simd() == "portable"
    monkeypatch.setenv("XNORYOLO_SIMD", "auto")
    assert kb.get_simd() == xconv.best_isa()
    monkeypatch.setenv("XNORYOLO_SIMD", "sse9")
    with pytest.raises(ValueError, match="XNORYOLO_SIMD"):
        kb.get_simd()
    with pytest.raises(ValueError, match="unknown SIMD"):
        set_simd("sse9")
    missing = [n for n in xconv.isa_names() if not xconv.isa_supported(n)]
    if missing:
        with pytest.raises(ValueError, match="not supported"):
            set_simd(missing[0])


@pytest.mark.parametrize("isa", ISAS)
def test_popcount_peak_runs(isa: str) -> None:
    bits, seconds, checksum = xconv.popcount_peak(isa, 64, 10)
    assert bits > 0 and seconds > 0 and checksum > 0


def test_kernels_are_reentrant() -> None:
    """One kernel called from several Python threads at once (a service's worker pool):
    buffers are per call, so every result is the single-threaded one."""
    from concurrent.futures import ThreadPoolExecutor

    x, folded, signs, scale, bias = _case(32, 26, 26, 16, 3, seed=9)
    spec = ops.ConvSpec(32, 26, 26, 16, 3, 1, 1, 1)
    backend = FastBackend(2)
    binary = backend.binary_conv(signs, scale, bias, spec, "leaky")
    floating = backend.float_conv(folded, bias, spec, "leaky")
    inputs = [x * (i + 1) - i for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        b_out = list(pool.map(binary, inputs))
        f_out = list(pool.map(floating, inputs))
    for xi, yb, yf in zip(inputs, b_out, f_out, strict=True):
        np.testing.assert_array_equal(yb, binary(xi))
        np.testing.assert_array_equal(yf, floating(xi))


def test_input_shape_checked() -> None:
    _, _, signs, scale, bias = _case(16, 4, 4, 4, 3, seed=1)
    kernel = FastBackend(1).binary_conv(
        signs, scale, bias, ops.ConvSpec(16, 4, 4, 4, 3, 1, 1, 1), "linear"
    )
    with pytest.raises(ValueError, match="input shape"):
        kernel(np.zeros((16, 5, 4), np.float32))


# ------------------------------------------------------------------------- darknet parity
CASES = {
    "b": ("b_yolov3-tiny_xnor_random", "yolov3-tiny_xnor_160x128.cfg"),
    "c": ("c_tiny-yolo_xnor_region_random", "tiny-yolo_xnor_96x128.cfg"),
}


def _network(case: str, threads: int):
    from xnoryolo.detector import Network

    folder, cfg = CASES[case]
    base = REF / folder
    if not base.is_dir():
        pytest.skip(f"{base} is absent (shared darknet reference data not on this machine)")
    weights = next(base.glob("*.weights.xz"))
    net = Network.from_cfg(base / cfg)
    net.load_weights(lzma.decompress(weights.read_bytes()))
    net.prepare(FastBackend(threads=threads))
    return net, base / "dog"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_darknet_layers_from_darknet_inputs(case: str, isa: str) -> None:
    """Every conv layer fed darknet's own input: XNOR integer part exact against the NumPy
    reference, values within SEMANTICS.md §7's tolerances of darknet's output."""
    from xnoryolo.detector.layers import ConvolutionalLayer

    set_simd(isa)
    net, dog = _network(case, threads=2)
    x = np.load(dog / "input.npy")
    for layer in net.layers:
        ref = np.load(dog / "layers" / f"{layer.index:03d}_{layer.type}.npy")
        if isinstance(layer, ConvolutionalLayer):
            assert layer.kernel is not None
            y = layer.kernel(x)
            if layer.xnor:
                assert layer.kernel.isa_name == isa
                np.testing.assert_array_equal(
                    layer.kernel.dot(x), ops.binary_dot(x, layer.signs, layer.spec)
                )
            _close(y, ref, 1.5e-5)
        x = ref


@pytest.mark.parametrize("threads", [1, 2])
def test_darknet_float_yolov3_tiny_end_to_end(threads: int) -> None:
    """Case a: the real COCO yolov3-tiny (float layers only) through the fast float kernels,
    every layer within SEMANTICS.md §7's end-to-end tolerance (2.9e-6; 5e-6 allowed)."""
    from xnoryolo.detector import Network

    base = REF / "a_yolov3-tiny_coco"
    weights = SHARED / "models" / "yolov3-tiny.weights"
    if not base.is_dir() or not weights.is_file():
        pytest.skip(f"{base} or {weights} is absent (shared reference data not on this machine)")
    net = Network.from_cfg(base / "yolov3-tiny.cfg")
    net.load_weights(weights.read_bytes())
    net.prepare(FastBackend(threads=threads))
    outputs = net.forward(np.load(base / "dog" / "input.npy"))
    for layer, y in zip(net.layers, outputs, strict=True):
        _close(y, np.load(base / "dog" / "layers" / f"{layer.index:03d}_{layer.type}.npy"), 5e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_darknet_end_to_end(case: str, threads: int) -> None:
    net, dog = _network(case, threads)
    x = np.load(dog / "input.npy")
    outputs = net.forward(x)
    for layer, y in zip(net.layers, outputs, strict=True):
        ref = np.load(dog / "layers" / f"{layer.index:03d}_{layer.type}.npy")
        assert y.shape == ref.shape, layer.where
        _close(y, ref, 1.5e-5)
    # the detection path hands sign bits between binary layers: the same outputs, bit for bit
    assert net.bits_plan
    lean = net.head_outputs(net.forward(x, keep=False))
    for d in net.detection_layers:
        np.testing.assert_array_equal(lean[d.index], outputs[d.index])
