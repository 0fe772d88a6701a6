"""The fast backend: the compiled kernels of xnoryolo.kernels (built at install time)."""

from __future__ import annotations

from .. import activations
from .protocols import Backend


def fast_backend(threads: int | None, simd: str | None = None, int8: str | None = None) -> Backend:
    """The kernels' FastBackend on `threads` threads (None: XNORYOLO_THREADS, else all cores)
    and SIMD path `simd` (None: XNORYOLO_SIMD, else the best this CPU has); its int8 kernels
    run `int8` (portable, avx2, avxvnni, avx512vnni, neon, neondot; None: XNORYOLO_INT8_SIMD,
    else the best of the SIMD tier). ImportError when the kernels are not built."""
    from xnoryolo.kernels.backend import FastBackend

    # The kernels import nothing of the project: the detector hands them the activations
    # they do not compute themselves.
    return FastBackend(threads=threads, simd=simd, activate=activations.activate, int8=int8)
