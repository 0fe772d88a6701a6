"""int8 kernel (xnoryolo.kernels.qconv) against its NumPy reference (detector.quantize): the
same int32 sums, the same floats and the same pooled sign bits on every int8 path this CPU
runs, over channels, odd sizes, strides, borders, groups, zero points and thread counts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from kernel_params import INT8_PATHS
from xnoryolo.detector import ops, quantize
from xnoryolo.detector.activations import activate
from xnoryolo.kernels import backend as kb
from xnoryolo.kernels import qconv, xconv

PATHS = INT8_PATHS
CHANNELS = [1, 3, 4, 5, 16, 33, 64, 130]
# (size, stride_y, stride_x, padding, dilation)
GEOMETRIES = [(1, 1, 1, 0, 1), (3, 1, 1, 1, 1), (3, 2, 2, 1, 1), (3, 1, 1, 2, 1), (3, 1, 2, 0, 2)]


def _case(c: int, h: int, w: int, f: int, size: int, groups: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32) * 2
    x[0, 0, 0] = 1e9  # clamped to 255
    x.flat[-1] = -1e9  # clamped to 0
    folded = rng.standard_normal((f, c // groups, size, size)).astype(np.float32)
    folded[0] = 0.0  # an all-zero filter: scale 1, every weight 0
    bias = rng.standard_normal(f).astype(np.float32)
    return x, folded, bias


def _sweep_case(c: int, geom: tuple[int, ...]):
    """A sweep's conv of c channels and geometry (size, stride_y, stride_x, padding,
    dilation): its spec, input, int8 weights and scales, bias."""
    size, sy, sx, pad, dil = geom
    h, w = (7, 19) if c < 64 else (5, 6)
    f = 21 if c < 64 else 37
    spec = ops.ConvSpec(c, h, w, f, size, sy, sx, pad, dil)
    x, folded, bias = _case(c, h, w, f, size, 1, c)
    qw, ws = quantize.quantize_weights(folded)
    return spec, x, qw, ws, bias


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: "k{}s{}x{}p{}d{}".format(*g))
@pytest.mark.parametrize("c", CHANNELS)
def test_int8_sums_and_floats_exact(c: int, geom: tuple[int, ...], path: str) -> None:
    spec, x, qw, ws, bias = _sweep_case(c, geom)
    quant = quantize.ActQuant(0.021, 7 + c)
    sums = quantize.int8_sums(x, qw, quant, spec)
    for act in ("leaky", "linear", "relu", "logistic"):
        ref = quantize.int8_conv(x, qw, ws, bias, spec, quant, act)
        # the threads split pixels, whatever the activation: 2 threads once (lean under QEMU)
        for threads in (1, 2) if act == "leaky" else (1,):
            k = qconv.Int8Conv(
                qw, ws, bias, spec, quant.scale, quant.zero, act, threads, path, activate=activate
            )
            assert np.array_equal(k.run_int(x), sums)
            y = k(x)
            assert y.dtype == np.float32 and y.shape == ref.shape
            assert np.array_equal(y, ref, equal_nan=True), (act, threads)


@pytest.mark.parametrize("path", PATHS)
def test_int8_groups_and_big_k(path: str) -> None:
    for c, h, w, f, size, groups in ((8, 6, 5, 12, 3, 4), (300, 4, 3, 9, 3, 1)):
        spec = ops.ConvSpec(c, h, w, f, size, 1, 1, 1, 1, groups)
        x, folded, bias = _case(c, h, w, f, size, groups, 5)
        qw, ws = quantize.quantize_weights(folded)
        quant = quantize.ActQuant(0.05, 128)
        ref = quantize.int8_conv(x, qw, ws, bias, spec, quant, "leaky")
        k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, "leaky", 3, path)
        assert np.array_equal(k.run_int(x), quantize.int8_sums(x, qw, quant, spec))
        assert np.array_equal(k(x), ref)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(3, 20, 26, 16), (5, 17, 11, 70), (16, 9, 9, 8)])
def test_int8_pooled_bits_match_conv_then_pool(shape: tuple[int, ...], path: str) -> None:
    """Sign bits of maxpool(conv(x)) from the int8 sums and thresholds, as run apart."""
    c, h, w, f = shape
    spec = ops.ConvSpec(c, h, w, f, 3, 1, 1, 1)
    x, folded, bias = _case(c, h, w, f, 3, 1, h)
    x = np.abs(x)  # pixels
    qw, ws = quantize.quantize_weights(folded)
    # biases around the sums' range, so both signs and the exact threshold occur
    bias = bias * 20
    quant = quantize.INPUT_QUANT
    for act in ("leaky", "relu", "linear"):
        y = quantize.int8_conv(x, qw, ws, bias, spec, quant, act)
        for threads in (1, 2):
            pool = xconv.MaxPool(f, h, w, 2, 2, 2, 1, (h + 1) // 2, (w + 1) // 2, threads)
            pooled = ops.maxpool(y, 2, 2, 2, 1, pool.out_h, pool.out_w)
            for pad in (0, 1):
                shp = (pool.out_h + 2 * pad, pool.out_w + 2 * pad, (f + 63) // 64)
                k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, act, threads, path)
                assert k.takes_pool(pool)
                out = np.zeros(shp, np.uint64)
                k.run_pooled_bits(x, pool, out, pad)
                assert np.array_equal(out, ops.pack_signs(pooled, shp, pad)), (act, pad)


def test_amx_paths_by_layer() -> None:
    if not qconv.path_supported("amx"):
        pytest.skip("this CPU (or OS) has no AMX-INT8")
    one = np.ones(4, np.float32)
    thin = qconv.Int8Conv(np.ones((4, 27), np.int8), one, one, ops.ConvSpec(3, 5, 5, 4, 3),
                          0.1, 0, "linear", 1, "amx")  # fmt: skip
    deep = qconv.Int8Conv(np.ones((4, 144), np.int8), one, one, ops.ConvSpec(16, 5, 5, 4, 3),
                          0.1, 0, "linear", 1, "amx")  # fmt: skip
    im2col = qconv.Int8Conv(np.ones((4, 27), np.int8), one, one, ops.ConvSpec(3, 5, 5, 4, 3),
                            0.1, 0, "linear", 1, "amx", direct=False)  # fmt: skip
    # thin: AMX reading the quads in place (3 channels padded to 4, 9 taps, 3 groups a step),
    # or im2col'd 27 taps padded to 28 on VNNI; 144 taps: AMX in place (4 blocks x 3 kernel
    # columns, 12 groups a step), or on im2col panels (padded to 192)
    assert (thin.path_name, thin.direct, thin.kp, thin.kr) == ("amx", True, 36, 3)
    assert (im2col.path_name, im2col.direct, im2col.kp) == ("avx512vnni", False, 28)
    assert (deep.path_name, deep.direct, deep.kp, deep.kr) == ("amx", True, 144, 12)
    deep = qconv.Int8Conv(np.ones((4, 144), np.int8), one, one, ops.ConvSpec(16, 5, 5, 4, 3),
                          0.1, 0, "linear", 1, "amx", direct=False)  # fmt: skip
    assert (deep.path_name, deep.direct, deep.kp, deep.kr) == ("amx", False, 192, 16)


def test_sign_thresholds_are_exact() -> None:
    rng = np.random.default_rng(1)
    mult = rng.uniform(1e-6, 1e-2, 64).astype(np.float32)
    bias = rng.normal(0, 5, 64).astype(np.float32)
    bias[:2] = (1e9, -1e9)  # always, never
    thr = qconv.sign_thresholds(mult, bias)
    for t, m, b in zip(thr, mult, bias, strict=True):
        if t <= -(1 << 30):
            assert np.float32(-(1 << 30)) * m + b > 0
        elif t > 1 << 30:
            assert not np.float32(1 << 30) * m + b > 0
        else:
            assert np.float32(t) * m + b > 0 and not np.float32(t - 1) * m + b > 0


def test_quantize_activations_rounds_like_the_kernel() -> None:
    x = np.array([0.0, 0.5, 127.5 / 255, 1.0, -0.1, 3.0, np.nan, -np.inf], np.float32)
    q = quantize.quantize_activations(x, quantize.INPUT_QUANT)
    # 1 / float32(1/255) is a hair under 255: the bytes stay exact, the grey 0.5 is 127
    assert q.tolist() == [0, 127, 127, 255, 0, 255, 0, 0]
    k = qconv.Int8Conv(
        np.ones((1, 1), np.int8),
        np.ones(1, np.float32),
        np.zeros(1, np.float32),
        ops.ConvSpec(1, 1, x.size, 1, 1),
        quantize.INPUT_SCALE,
        0,
        "linear",
        1,
        "portable",
    )
    assert k.run_int(x[None, None, :]).ravel().tolist() == q.tolist()


def test_bad_arguments_are_refused() -> None:
    spec = ops.ConvSpec(2, 3, 3, 1, 1)
    w = np.ones((1, 2), np.int8)
    one = np.ones(1, np.float32)
    with pytest.raises(ValueError, match="not available"):
        qconv.Int8Conv(w, one, one, spec, 0.1, 0, "linear", 1, "sse9")
    with pytest.raises(ValueError, match="zero point"):
        qconv.Int8Conv(w, one, one, spec, 0.1, 256, "linear", 1, "portable")
    with pytest.raises(ValueError, match="activate"):
        qconv.Int8Conv(w, one, one, spec, 0.1, 0, "mish", 1, "portable")
    k = qconv.Int8Conv(w, one, one, spec, 0.1, 0, "linear", 1, "portable")
    with pytest.raises(ValueError, match="input shape"):
        k(np.zeros((2, 3, 4), np.float32))


def test_int8_path_follows_the_simd_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XNORYOLO_INT8_SIMD", raising=False)
    assert kb.int8_path("portable") == "portable"
    assert kb.int8_path("popcnt") == "portable"
    if qconv.path_supported("avx2"):
        assert kb.int8_path("avx2") == "avx2"  # the AVX2 tier: no VNNI
    monkeypatch.setenv("XNORYOLO_INT8_SIMD", "portable")
    assert kb.int8_path("avx512") == "portable"
    assert kb.FastBackend(1).int8 == "portable"
    monkeypatch.setenv("XNORYOLO_INT8_SIMD", "sse9")
    with pytest.raises(ValueError, match="XNORYOLO_INT8_SIMD"):
        kb.int8_path()


# ------------------------------------------------------------- NEON, emulated on any machine
HELPERS = Path(__file__).resolve().parents[1] / "helpers"
KERNELS = Path(qconv.__file__).resolve().parent


def _cc() -> str:
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no C compiler on PATH to build the emulated NEON check")
    return cc


def test_int8_neon_tiles_match_portable(tmp_path: Path) -> None:
    """The NEON tiles (with and without sdot) on plain-C intrinsics (neon_emu_int8.h), x86
    macros off, against the portable tile; on arm64 the real ones run in the tests above."""
    exe = tmp_path / "int8_neon_check"
    build = subprocess.run(
        [_cc(), "-O1", "-Wall", "-Werror", "-Wno-unused-function", f"-I{KERNELS}",
         f"-I{HELPERS}", str(HELPERS / "int8_neon_check.c"), "-o", str(exe)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 0 and "0 mismatches" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("module", ["qconv", "resize"])  # resize quantises with xn_int8.h
def test_int8_module_builds_without_x86(tmp_path: Path, module: str) -> None:
    """The generated C of the modules using xn_int8.h with the x86 macros off: every function
    they call is declared on every platform (else the arm64 import fails on an undefined
    symbol)."""
    python_h = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not python_h.is_file():
        pytest.skip(f"{python_h} is absent (no Python development headers)")
    pytest.importorskip("Cython", reason="no Cython to generate the module's C")
    source = tmp_path / f"{module}.c"
    gen = subprocess.run(
        [sys.executable, "-m", "cython", "-3", str(KERNELS / f"{module}.pyx"), "-o", str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    build = subprocess.run(
        [_cc(), "-fsyntax-only", "-Werror=implicit-function-declaration",
         "-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION", f'-DXN_GENERATED_C="{source}"',
         f"-I{python_h.parent}", f"-I{np.get_include()}", f"-I{KERNELS}", f"-I{HELPERS}",
         str(HELPERS / "non_x86_check.c")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(16, 9, 13, 130), (3, 11, 21, 64), (8, 5, 7, 100)])
def test_int8_sign_bits_at_full_size(shape: tuple[int, ...], path: str) -> None:
    """The conv's own sign bits through the identity pool (1x1, stride 1): what a float or
    int8 conv writes for binary readers (bits plan), several words a pixel, every tile."""
    c, h, w, f = shape
    spec = ops.ConvSpec(c, h, w, f, 3, 1, 1, 1)
    x, folded, bias = _case(c, h, w, f, 3, 1, h)
    x = np.abs(x)
    qw, ws = quantize.quantize_weights(folded)
    bias = bias * 20
    quant = quantize.INPUT_QUANT
    y = quantize.int8_conv(x, qw, ws, bias, spec, quant, "leaky")
    for threads in (1, 2):
        ident = xconv.MaxPool(f, h, w, 1, 1, 1, 0, h, w, threads)
        for direct in (None, False):
            k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, "leaky", threads,
                               path, direct=direct)  # fmt: skip
            assert k.takes_pool(ident)
            for pad in (0, 1):
                shp = (h + 2 * pad, w + 2 * pad, (f + 63) // 64)
                out = np.zeros(shp, np.uint64)
                k.run_pooled_bits(x, ident, out, pad)
                assert np.array_equal(out, ops.pack_signs(y, shp, pad)), (threads, direct, pad)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("geom", GEOMETRIES[:3], ids=lambda g: "k{}s{}x{}p{}d{}".format(*g))
@pytest.mark.parametrize("c", [3, 33, 130])
def test_int8_seven_bit_inputs_exact(c: int, geom: tuple[int, ...], path: str) -> None:
    """Inputs calibrated to 7 bits (bytes 0..127): the same integers and floats as the
    reference on every path, the avx2 path on its vpmaddubsw tile; bytes out to a 7-bit
    reader, through a pool too."""
    spec, x, qw, ws, bias = _sweep_case(c, geom)
    # every weight at +-127 in some taps: pairs of 127 * 127 products, the tile's worst case
    qw[1, : min(8, qw.shape[1])] = 127
    qw[2, : min(8, qw.shape[1])] = -127
    quant = quantize.ActQuant(0.042, 40, 127)
    xq = quantize.quantize_activations(x, quant)
    assert xq.max() == 127 and xq.min() == 0
    out_quant = quantize.ActQuant(0.06, 20, 127)
    for threads in (1, 2):
        k = qconv.Int8Conv(
            qw, ws, bias, spec, quant.scale, quant.zero, "leaky", threads, path, in_top=127
        )
        assert k.top == 127 and k.tile_name == ("avx2u7" if path == "avx2" else path)
        assert np.array_equal(k.run_int(x), quantize.int8_sums(x, qw, quant, spec))
        assert np.array_equal(k(x), quantize.int8_conv(x, qw, ws, bias, spec, quant, "leaky"))
        assert np.array_equal(k(xq), k(x))
        for pool in (None, (2, 2, 2, 0, spec.out_h // 2, spec.out_w // 2)):
            if pool is not None and min(pool[4:]) < 1:
                continue
            ref = quantize.int8_conv_bytes(x, qw, ws, bias, spec, quant, "leaky", out_quant, pool)
            got = k.run_bytes(x, out_quant.scale, out_quant.zero, pool, out_quant.top)
            assert got.max() <= 127 and np.array_equal(got, ref), (pool, threads)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("geom", GEOMETRIES[:3], ids=lambda g: "k{}s{}x{}p{}d{}".format(*g))
@pytest.mark.parametrize("c", [3, 33])
def test_int8_pair_weights_exact(c: int, geom: tuple[int, ...], path: str) -> None:
    """8-bit inputs with weights up to 64 (the first conv of a 7-bit model): the same integers
    as the reference on every path, the avx2 path on its vpmaddubsw tile, whose pairs of
    255 * 64 products are exact; one weight of 65 sends it back to the int16 tile."""
    spec, x, _, _, bias = _sweep_case(c, geom)
    _, folded, _ = _case(c, spec.h, spec.w, spec.filters, spec.size, 1, c)
    qw, ws = quantize.quantize_weights(folded, quantize.PAIR_WEIGHT_TOP)
    assert np.abs(qw.astype(int)).max() == 64
    qw[1, : min(8, qw.shape[1])] = 64
    qw[2, : min(8, qw.shape[1])] = -64
    quant = quantize.ActQuant(0.021, 0, 255, quantize.PAIR_WEIGHT_TOP)
    xq = quantize.quantize_activations(x, quant)
    xq[:, :4, :4] = 255  # whole windows of the largest byte: the tile's worst case
    for threads in (1, 2):
        k = qconv.Int8Conv(qw, ws, bias, spec, quant.scale, quant.zero, "leaky", threads, path)
        assert k.tile_name == ("avx2u7" if path == "avx2" else path)
        assert np.array_equal(k.run_int(xq), quantize.int8_sums(xq, qw, quant, spec))
        assert np.array_equal(k(xq), quantize.int8_conv(xq, qw, ws, bias, spec, quant, "leaky"))
    over = qw.copy()
    over[1, 0] = 65
    k = qconv.Int8Conv(over, ws, bias, spec, quant.scale, quant.zero, "leaky", 1, path)
    assert k.tile_name == path
    assert np.array_equal(k.run_int(xq), quantize.int8_sums(xq, over, quant, spec))


def test_seven_bit_arguments_are_checked() -> None:
    spec = ops.ConvSpec(2, 3, 3, 1, 1)
    w = np.ones((1, 2), np.int8)
    one = np.ones(1, np.float32)
    with pytest.raises(ValueError, match="largest input byte"):
        qconv.Int8Conv(w, one, one, spec, 0.1, 0, "linear", 1, "portable", in_top=200)
    with pytest.raises(ValueError, match=r"zero point 128 is not in 0\.\.127"):
        qconv.Int8Conv(w, one, one, spec, 0.1, 128, "linear", 1, "portable", in_top=127)
    k = qconv.Int8Conv(w, one, one, spec, 0.1, 0, "linear", 1, "portable")
    x = np.zeros((2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="largest output byte"):
        k.run_bytes(x, 0.1, 0, None, 100)
    with pytest.raises(ValueError, match="zero point"):
        k.run_bytes(x, 0.1, 130, None, 127)
    with pytest.raises(ValueError, match="largest byte"):
        quantize.ActQuant(0.1, 0, 63)
    with pytest.raises(ValueError, match="largest weight"):
        quantize.ActQuant(0.1, 0, 255, 100)
    with pytest.raises(ValueError, match="largest weight"):
        quantize.quantize_weights(np.ones((1, 2), np.float32), 100)
    with pytest.raises(ValueError, match="zero point"):
        quantize.ActQuant(0.1, 128, 127)
    q = quantize.ActQuant(0.5, 3, 127)
    assert q.to_json() == {"scale": 0.5, "zero": 3, "top": 127}
    assert quantize.ActQuant(0.5, 3).to_json() == {"scale": 0.5, "zero": 3}
    big = quantize.quantize_activations(np.array([1e9, -1e9, 0.0], np.float32), q)
    assert big.tolist() == [127, 0, 3]
