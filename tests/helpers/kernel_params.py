"""Parameters shared by the kernel tests: the channel and geometry sweeps the kernels issue asks
for, and one pytest param per SIMD path (skipped, with the reason, where the CPU lacks it)."""

from __future__ import annotations

import pytest

from xnoryolo.kernels import qconv, xconv

CHANNELS = [1, 3, 15, 16, 31, 32, 33, 63, 64, 65, 127, 128, 255]
# (size, stride, padding): 1x1 and 3x3, stride 1 and 2, borders of 0, 1 and 2
GEOMETRIES = [(1, 1, 0), (1, 2, 0), (3, 1, 1), (3, 2, 1), (3, 1, 0), (3, 2, 2), (3, 1, 2)]


def isa_params() -> list:
    out = []
    for name in xconv.isa_names():
        marks = (
            []
            if xconv.isa_supported(name)
            else [pytest.mark.skip(reason=f"this CPU (or build) has no {name} path")]
        )
        out.append(pytest.param(name, marks=marks, id=name))
    return out


ISAS = isa_params()


def int8_path_params() -> list:
    """One pytest param per int8 path (skipped, with the reason, where the CPU lacks it)."""
    out = []
    for name in qconv.path_names():
        marks = (
            []
            if qconv.path_supported(name)
            else [pytest.mark.skip(reason=f"this CPU (or build) has no int8 {name} path")]
        )
        out.append(pytest.param(name, marks=marks, id=name))
    return out


INT8_PATHS = int8_path_params()
