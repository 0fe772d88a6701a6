"""What the kernels take from their caller, declared here so the kernels import nothing of the
rest of the project: a convolution's geometry, and the activation fallback for activations the
kernels do not fuse (linear, leaky, relu and logistic are computed natively)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

__all__ = ["Activate", "ConvGeometry"]

# (pre-activation output, darknet activation name) -> activated output, same shape, float32
Activate = Callable[[np.ndarray, str], np.ndarray]


class ConvGeometry(Protocol):
    """Geometry of one convolution (read-only attributes suffice: a frozen dataclass fits).
    out_h / out_w follow darknet's formula; the kernels do not recompute them."""

    @property
    def c(self) -> int: ...
    @property
    def h(self) -> int: ...
    @property
    def w(self) -> int: ...
    @property
    def filters(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def stride_y(self) -> int: ...
    @property
    def stride_x(self) -> int: ...
    @property
    def padding(self) -> int: ...
    @property
    def dilation(self) -> int: ...
    @property
    def groups(self) -> int: ...
    @property
    def out_h(self) -> int: ...
    @property
    def out_w(self) -> int: ...
