"""Layers that pass their input on at inference: [dropout] and sections darknet does not know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..cfg import Section
from .base import BuildContext, Layer


@dataclass
class DropoutLayer(Layer):
    """Identity at inference."""

    type: ClassVar[str] = "dropout"
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"probability", "dropblock", "dropblock_size_rel", "dropblock_size_abs"}
    )

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> DropoutLayer:
        return cls(ctx.index, section, ctx.in_shape, ctx.in_shape)

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        return x


@dataclass
class UnknownLayer(Layer):
    """A section darknet does not know: it keeps its index (routes count it) and passes data on."""

    type: ClassVar[str] = "unknown"

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        return x
