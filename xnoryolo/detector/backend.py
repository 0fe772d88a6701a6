"""Former home of the convolution backends, which now live in `detector.backends`."""

from .backends import Backend, NumpyBackend, get_backend

__all__ = ["Backend", "NumpyBackend", "get_backend"]
