"""`FastBackend`: the Cython kernels behind the detector's `Backend` protocol
(xnoryolo.detector.backends.protocols).

Thread count: constructor argument, else `XNORYOLO_THREADS`, else all cores.
SIMD path: `set_simd(name)` or `XNORYOLO_SIMD=auto|portable|popcnt|avx2|avx512|neon`; kernels
keep the path that was selected when they were built. The int8 kernels (qconv) run the best
int8 path of that tier, or
`XNORYOLO_INT8_SIMD=portable|avx2|avxvnni|avx512vnni|amx|neon|neondot`
(`int8_path`). Both variables are read here only.
Activations the kernels do not fuse (all but linear, leaky, relu and logistic) are computed by
the `activate` function the caller injects; without one, building such a kernel raises.
"""

from __future__ import annotations

import os

import numpy as np

from . import qconv, xconv
from .blas import blas_threads
from .protocols import Activate, ConvGeometry

__all__ = [
    "FastBackend",
    "available_simd",
    "default_threads",
    "get_simd",
    "int8_path",
    "set_simd",
]

_simd: str | None = None


def available_simd() -> list[str]:
    """SIMD paths this CPU and build can run, portable first."""
    return [name for name in xconv.isa_names() if xconv.isa_supported(name)]


def set_simd(name: str | None) -> None:
    """Force a SIMD path for kernels built from now on; None or 'auto' restores the default."""
    global _simd
    if name in (None, "", "auto"):
        _simd = None
        return
    assert name is not None
    if name not in xconv.isa_names():
        raise ValueError(f"unknown SIMD path {name!r}: use auto or one of {xconv.isa_names()}")
    if not xconv.isa_supported(name):
        raise ValueError(f"SIMD path {name!r} is not supported by this CPU")
    _simd = name


def get_simd() -> str:
    """The path new kernels use: set_simd's, else XNORYOLO_SIMD's, else the best available."""
    if _simd is not None:
        return _simd
    env = os.environ.get("XNORYOLO_SIMD", "").strip().lower()
    if env and env != "auto":
        if env not in xconv.isa_names() or not xconv.isa_supported(env):
            raise ValueError(f"XNORYOLO_SIMD={env!r}: not one of {available_simd()} on this CPU")
        return env
    return str(xconv.best_isa())


# The int8 path each SIMD tier runs: the tier's own instructions only, so that capping
# XNORYOLO_SIMD shows what a CPU of that tier does (avx2: vpmaddwd, no VNNI).
_INT8_TIERS = {
    "avx512": ("amx", "avx512vnni", "avx2"),
    "avx2": ("avx2",),
    "neon": ("neondot", "neon"),
    "popcnt": ("portable",),
    "portable": ("portable",),
}


def int8_path(tier: str | None = None) -> str:
    """The int8 kernel path: XNORYOLO_INT8_SIMD when set (portable, avx2, avxvnni,
    avx512vnni, amx, neon, neondot); else the best of the SIMD tier `tier` (None: get_simd());
    with no tier forced anywhere, the best this CPU has (AVX-VNNI beside AVX2 included)."""
    env = os.environ.get("XNORYOLO_INT8_SIMD", "").strip().lower()
    if env and env != "auto":
        if not qconv.path_supported(env):
            raise ValueError(
                f"XNORYOLO_INT8_SIMD={env!r}: not one of {qconv.available_paths()} on this CPU"
            )
        return env
    forced = (
        tier is not None
        or _simd is not None
        or os.environ.get("XNORYOLO_SIMD", "").strip().lower() not in ("", "auto")
    )
    if not forced:
        order = ("amx", "avx512vnni", "avxvnni", "avx2", "neondot", "neon", "portable")
        return next(p for p in order if qconv.path_supported(p))
    for path in _INT8_TIERS.get(tier or get_simd(), ("portable",)):
        if qconv.path_supported(path):
            return path
    return "portable"


def default_threads(threads: int | None = None) -> int:
    """`threads` when given, else XNORYOLO_THREADS, else all cores; each must be >= 1."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads}: must be >= 1")
        return threads
    env = os.environ.get("XNORYOLO_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"XNORYOLO_THREADS={env!r} is not an integer") from None
        if value < 1:
            raise ValueError(f"XNORYOLO_THREADS={value}: must be >= 1")
        return value
    return os.cpu_count() or 1


class FastBackend:
    """Builds xconv kernels; every kernel runs on `threads` OpenMP threads."""

    name = "fast"

    def __init__(
        self,
        threads: int | None = None,
        simd: str | None = None,
        *,
        activate: Activate | None = None,
        int8: str | None = None,
    ) -> None:
        self.threads = default_threads(threads)
        self._activate = activate
        # numpy's BLAS pool would spin beside the OpenMP team (see kernels/blas.py)
        blas_threads(1)
        if simd is not None and (simd not in xconv.isa_names() or not xconv.isa_supported(simd)):
            raise ValueError(f"SIMD path {simd!r} is not available: {available_simd()}")
        self.simd = simd
        if int8 is not None and not qconv.path_supported(int8):
            raise ValueError(f"int8 path {int8!r} is not available: {qconv.available_paths()}")
        self.int8_simd = int8

    def _isa(self) -> str:
        return self.simd or get_simd()

    @property
    def path(self) -> str:
        """The SIMD path its kernels run."""
        return self._isa()

    def float_conv(
        self, weights: np.ndarray, bias: np.ndarray, spec: ConvGeometry, activation: str
    ) -> xconv.FloatConv:
        return xconv.FloatConv(
            weights, bias, spec, activation, self.threads, self._isa(), activate=self._activate
        )

    @property
    def int8(self) -> str:
        """The int8 path its int8 kernels run: the constructor's `int8`, else `int8_path`."""
        return self.int8_simd or int8_path(self.simd)

    def int8_conv(
        self,
        qweights: np.ndarray,
        w_scale: np.ndarray,
        bias: np.ndarray,
        spec: ConvGeometry,
        in_scale: float,
        in_zero: int,
        activation: str,
        in_top: int = 255,
    ) -> qconv.Int8Conv:
        """int8 weights (F, K), per-filter scales, the input's scale, zero point and largest
        byte (see qconv.Int8Conv; detector/quantize.py is the reference)."""
        return qconv.Int8Conv(
            qweights,
            w_scale,
            bias,
            spec,
            in_scale,
            in_zero,
            activation,
            self.threads,
            self.int8,
            activate=self._activate,
            in_top=in_top,
        )

    def binary_conv(
        self,
        signs: np.ndarray,
        scale: np.ndarray,
        bias: np.ndarray,
        spec: ConvGeometry,
        activation: str,
    ) -> xconv.BinaryConv:
        return xconv.BinaryConv(
            signs,
            scale,
            bias,
            spec,
            activation,
            self.threads,
            self._isa(),
            activate=self._activate,
        )

    def maxpool(
        self,
        in_shape: tuple[int, int, int],
        size: int,
        stride_y: int,
        stride_x: int,
        padding: int,
        out_h: int,
        out_w: int,
    ) -> xconv.MaxPool:
        """Optional factory: darknet maxpool (ops.maxpool) over a (C,H,W) input."""
        c, h, w = in_shape
        return xconv.MaxPool(
            c, h, w, size, stride_y, stride_x, padding, out_h, out_w, self.threads, self._isa()
        )
