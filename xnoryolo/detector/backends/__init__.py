"""Convolution backends: `NumpyBackend` is the reference (detector.ops); the fast backend runs
the compiled kernels of xnoryolo.kernels. `protocols` says what the detector needs of both."""

from __future__ import annotations

import warnings

from ..errors import ReferenceBackendWarning
from .fast import fast_backend
from .numpy import NumpyBackend
from .protocols import (
    Backend,
    BitsConv,
    BitsPool,
    ByteConv,
    FloatPoolingConv,
    Kernel,
    PoolingConv,
)

__all__ = [
    "Backend",
    "BitsConv",
    "BitsPool",
    "ByteConv",
    "FloatPoolingConv",
    "Kernel",
    "NumpyBackend",
    "PoolingConv",
    "get_backend",
]


def get_backend(name: str = "auto", threads: int | None = None) -> Backend:
    """'numpy' (reference), 'fast' (compiled kernels; ImportError if not built) or 'auto' (the
    fast one; the reference with a ReferenceBackendWarning when the kernels are not built)."""
    if name == "numpy":
        return NumpyBackend()
    if name not in ("fast", "auto"):
        raise ValueError(f"unknown backend {name!r}: use auto, fast or numpy")
    try:
        return fast_backend(threads)
    except ImportError as exc:
        if name == "fast":
            raise
        warnings.warn(
            f"xnoryolo's compiled kernels are not built ({exc}): running the NumPy reference "
            "backend, about 10x slower. Reinstall xnoryolo where a C compiler is present "
            "(pip install -e . in a checkout) to build them, or ask for backend 'numpy' to "
            "run the reference without this warning.",
            ReferenceBackendWarning,
            stacklevel=2,
        )
        return NumpyBackend()
