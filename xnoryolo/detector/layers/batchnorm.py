"""[batchnorm]: a standalone batch normalization layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..cfg import Section
from .base import F32, BuildContext, FloatSource, Layer


@dataclass
class BatchnormLayer(Layer):
    type: ClassVar[str] = "batchnorm"
    params: tuple[np.ndarray, ...] | None = None

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> BatchnormLayer:
        return cls(ctx.index, section, ctx.in_shape, ctx.in_shape)

    def weight_floats(self) -> int:
        return 4 * self.in_shape[0]

    def load(self, reader: FloatSource) -> None:
        c = self.in_shape[0]
        self.params = tuple(
            reader.read(c, what)
            for what in ("biases", "scales", "rolling_mean", "rolling_variance")
        )

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        if self.params is None:
            return x.copy()
        bias, scales, mean, var = (p[:, None, None] for p in self.params)
        return ((x - mean) / (np.sqrt(var) + F32(0.000001)) * scales + bias).astype(F32)
