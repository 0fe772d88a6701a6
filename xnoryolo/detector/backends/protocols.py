"""What the detector needs of a convolution backend and of the kernels it builds.

A backend turns prepared (BN-folded) weights into kernels: callables `kernel(x: float32
(C,H,W)) -> float32 (F, out_h, out_w)`. Kernels of the fast backend can do more on the detect
path (kernels/README.md, "Chained binary layers"): read and write packed sign bits (`BitsConv`,
`BitsPool`) or run the maxpool after them, straight to bits (`PoolingConv`) or to its floats
(`FloatPoolingConv`). The NumPy reference
has none of these abilities, so a layer asks its kernel once, when it is prepared, with
isinstance against these runtime-checkable protocols, and keeps the answer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .. import ops


class Kernel(Protocol):
    """A prepared convolution or pool: float (C,H,W) in, float out."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class BitsConv(Protocol):
    """A binary convolution that reads its input as packed sign bits (uint64 words, the layout
    of kernels/README.md) and can write its output as such bits too."""

    emits_bits: bool  # whether run() can write output bits

    @property
    def packed_shape(self) -> tuple[int, int, int]:
        """(h + 2 pad, w + 2 pad, words) of the packed input it reads, border included."""
        ...

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def run(
        self,
        x: np.ndarray,
        bits: np.ndarray | None = None,
        bits_pad: int = 0,
        want_float: bool = True,
    ) -> np.ndarray | None:
        """Convolve x (floats, or bits in `packed_shape`); write the output's sign bits into
        `bits` (border `bits_pad`) when given; return the floats when `want_float`."""
        ...


@runtime_checkable
class BitsPool(Protocol):
    """A maxpool that writes its output as packed sign bits (the max of signs is the OR of
    their bits, so no float output is needed)."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def run_bits(self, x: np.ndarray, out: np.ndarray, out_pad: int = 0) -> np.ndarray: ...


@runtime_checkable
class PoolingConv(Protocol):
    """A float convolution that can run the maxpool after it and write that pool's output as
    sign bits, never storing its own float output."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def takes_pool(self, pool: BitsPool) -> bool:
        """Whether it can take over `pool` (a kernel of the same backend)."""
        ...

    def run_pooled_bits(
        self, x: np.ndarray, pool: BitsPool, out: np.ndarray, out_pad: int = 0
    ) -> np.ndarray: ...


@runtime_checkable
class FloatPoolingConv(PoolingConv, Protocol):
    """A float convolution that can also write the output of the maxpool after it as floats,
    never storing its own output (detector/pool_plan.py)."""

    def run_pooled(self, x: np.ndarray, pool: BitsPool) -> np.ndarray: ...


@runtime_checkable
class ByteConv(Protocol):
    """An int8 convolution that takes its input as bytes already quantised with its own scale
    and zero point (uint8 (C, H, W) in place of floats), and can hand its output on as the
    next int8 layer's bytes, optionally through a maxpool (detector/bytes_plan.py)."""

    emits_bytes: bool  # whether run_bytes works (a fused activation)

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def run_bytes(
        self,
        x: np.ndarray,
        out_scale: float,
        out_zero: int,
        pool: tuple[int, int, int, int, int, int] | None = None,
        out_top: int = 255,
    ) -> np.ndarray:
        """uint8 (F, out_h, out_w): the output quantised with out_scale / out_zero (largest
        byte out_top); with pool (size, stride_y, stride_x, padding, pool_h, pool_w),
        darknet's maxpool of it."""
        ...


class Backend(Protocol):
    """Builds the kernels a network runs; `threads` is how many threads they use."""

    name: str
    threads: int

    @property
    def path(self) -> str:
        """The arithmetic its kernels run: "reference" or the SIMD path (avx512, neon, ...)."""
        ...

    def float_conv(
        self, weights: np.ndarray, bias: np.ndarray, spec: ops.ConvSpec, activation: str
    ) -> Kernel: ...

    def int8_conv(
        self,
        qweights: np.ndarray,
        w_scale: np.ndarray,
        bias: np.ndarray,
        spec: ops.ConvSpec,
        in_scale: float,
        in_zero: int,
        activation: str,
        in_top: int = 255,
    ) -> Kernel:
        """The int8 convolution of detector/quantize.py: int8 weights (F, K) with per-filter
        scales, the input quantised with `in_scale` / `in_zero` (bytes up to `in_top`), int32
        sums, float output."""
        ...

    def binary_conv(
        self,
        signs: np.ndarray,
        scale: np.ndarray,
        bias: np.ndarray,
        spec: ops.ConvSpec,
        activation: str,
    ) -> Kernel: ...

    def maxpool(
        self,
        in_shape: tuple[int, int, int],
        size: int,
        stride_y: int,
        stride_x: int,
        padding: int,
        out_h: int,
        out_w: int,
    ) -> Kernel:
        """Darknet maxpool (ops.maxpool) over a (C,H,W) input."""
        ...
