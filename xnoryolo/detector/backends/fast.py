"""The fast backend: the compiled kernels of xnoryolo.kernels (built at install time)."""

from __future__ import annotations

from .protocols import Backend


def fast_backend(threads: int | None) -> Backend:
    """The kernels' FastBackend on `threads` threads (None: XNORYOLO_THREADS, else all cores);
    ImportError when the kernels are not built."""
    from xnoryolo.kernels.backend import FastBackend

    # The kernels import nothing of the project, so the detector hands them its activation
    # function: FastBackend(threads=threads, activate=activations.activate) once it takes it.
    return FastBackend(threads=threads)
