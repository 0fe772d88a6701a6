"""Backend selection: 'auto' takes the compiled kernels, and says so loudly when it cannot."""

from __future__ import annotations

import sys

import pytest

from xnoryolo.detector.backends import (
    BitsConv,
    BitsPool,
    NumpyBackend,
    PoolingConv,
    get_backend,
)
from xnoryolo.detector.errors import ReferenceBackendWarning
from xnoryolo.detector.ops import ConvSpec


def test_auto_without_kernels_warns_and_runs_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry makes `import xnoryolo.kernels.backend` raise ImportError, as when unbuilt
    monkeypatch.setitem(sys.modules, "xnoryolo.kernels.backend", None)
    with pytest.warns(ReferenceBackendWarning, match=r"not built .* about 10x slower"):
        backend = get_backend("auto", threads=2)
    assert isinstance(backend, NumpyBackend)
    with pytest.raises(ImportError):
        get_backend("fast")


def test_explicit_choices() -> None:
    assert get_backend("numpy").name == "numpy"
    assert get_backend("auto").name == "fast"  # the suite runs with the kernels built
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("gpu")


def test_only_the_fast_kernels_have_the_bits_abilities() -> None:
    import numpy as np

    spec = ConvSpec(64, 8, 8, 64, 3, padding=1)
    signs = np.ones((64, 64, 3, 3), bool)
    ones = np.ones(64, np.float32)
    weights = np.ones((64, 64, 3, 3), np.float32)
    for name, abilities in (("numpy", False), ("fast", True)):
        backend = get_backend(name, threads=1)
        binary = backend.binary_conv(signs, ones, ones, spec, "linear")
        floats = backend.float_conv(weights, ones, spec, "leaky")
        pool = backend.maxpool((64, 8, 8), 2, 2, 2, 1, 4, 4)
        assert isinstance(binary, BitsConv) is abilities
        assert isinstance(floats, PoolingConv) is abilities
        assert isinstance(pool, BitsPool) is abilities
