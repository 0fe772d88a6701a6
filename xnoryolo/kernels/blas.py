"""Thread count of the BLAS that numpy's matmul calls (float layers on the portable path).

OpenBLAS reads OPENBLAS_NUM_THREADS only when it loads, and its thread pool busy-waits after
each call, which starves the OpenMP team on small machines. The kernels therefore hold it at
one thread: this finds the OpenBLAS that numpy loaded (Linux: from /proc/self/maps) and calls
its set_num_threads. Where none is found it does nothing, and `blas_threads` returns False so
callers can say so.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import numpy as np  # noqa: F401  (loads numpy's BLAS before it is looked up)

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_setter: Callable[[int], None] | None = None
_searched = False
_current: int | None = None


def _find_setter() -> Callable[[int], None] | None:
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return None
    paths = {
        line.split()[-1]
        for line in maps.read_text(errors="replace").splitlines()
        if "openblas" in line.lower() and line.split()[-1].startswith("/")
    }
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            func = getattr(lib, name, None)
            if func is not None:
                func.argtypes = [ctypes.c_int]
                func.restype = None
                return func
    return None


def blas_threads(threads: int) -> bool:
    """Make numpy's BLAS use `threads` threads; False if its BLAS could not be controlled."""
    global _setter, _searched, _current
    if not _searched:
        _setter = _find_setter()
        _searched = True
    if _setter is None:
        return False
    if _current != threads:
        _setter(threads)
        _current = threads
    return True
