"""Convolution backends. A backend turns prepared (BN-folded) weights into a callable
`kernel(x: float32 (C,H,W)) -> float32 (F, out_h, out_w)`.

`NumpyBackend` is the reference (detector.ops); the fast Cython kernels in xnoryolo.kernels
provide the same two factory methods. `get_backend("auto")` picks the fast one when built.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

import numpy as np

from . import ops

Kernel = Callable[[np.ndarray], np.ndarray]


class Backend(Protocol):
    name: str

    def float_conv(
        self, weights: np.ndarray, bias: np.ndarray, spec: ops.ConvSpec, activation: str
    ) -> Kernel: ...

    def binary_conv(
        self,
        signs: np.ndarray,
        scale: np.ndarray,
        bias: np.ndarray,
        spec: ops.ConvSpec,
        activation: str,
    ) -> Kernel: ...


class NumpyBackend:
    name = "numpy"

    def float_conv(
        self, weights: np.ndarray, bias: np.ndarray, spec: ops.ConvSpec, activation: str
    ) -> Kernel:
        return partial(ops.float_conv, weights=weights, bias=bias, spec=spec, activation=activation)

    def binary_conv(
        self,
        signs: np.ndarray,
        scale: np.ndarray,
        bias: np.ndarray,
        spec: ops.ConvSpec,
        activation: str,
    ) -> Kernel:
        return partial(
            ops.binary_conv, signs=signs, scale=scale, bias=bias, spec=spec, activation=activation
        )


def get_backend(name: str = "auto", threads: int | None = None) -> Backend:
    """'numpy' (reference), 'fast' (Cython kernels; error if not built) or 'auto'."""
    if name == "numpy":
        return NumpyBackend()
    if name not in ("fast", "auto"):
        raise ValueError(f"unknown backend {name!r}: use auto, fast or numpy")
    try:
        from xnoryolo.kernels.backend import FastBackend
    except ImportError:
        if name == "fast":
            raise
        return NumpyBackend()
    return FastBackend(threads=threads)
