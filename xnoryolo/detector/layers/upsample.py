"""[upsample]: nearest-neighbour upsampling (a negative stride downsamples by summing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..cfg import Section
from .base import F32, BitsStep, BuildContext, Layer, Layout, natural_layout


@dataclass
class UpsampleLayer(Layer):
    type: ClassVar[str] = "upsample"
    stride: int = 2
    scale: float = 1.0
    reverse: bool = False

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> UpsampleLayer:
        c, h, w = ctx.in_shape
        stride = section.get_int("stride", 2)
        scale = section.get_float("scale", 1.0)
        if stride == 0:
            raise section.error("stride=0 is not allowed", "stride")
        reverse = stride < 0
        stride = abs(stride)
        if reverse:
            if h < stride or w < stride:
                raise section.error(f"downsample by {stride} does not fit the {w}x{h} input")
            out = (c, h // stride, w // stride)
        else:
            out = (c, h * stride, w * stride)
        return cls(ctx.index, section, ctx.in_shape, out, stride, scale, reverse)

    @property
    def bits_input(self) -> Layout | None:
        return natural_layout(self.in_shape) if self.emits_bits else None

    @property
    def emits_bits(self) -> bool:
        # copies keep signs; so does a positive scale (sign(scale * v) = sign(v))
        return not self.reverse and self.scale > 0

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        shape, pad = step.layout
        _, oh, ow = self.out_shape
        s = self.stride
        out = np.zeros(shape, dtype=np.uint64)
        out[pad : pad + oh, pad : pad + ow] = np.repeat(np.repeat(x, s, axis=0), s, axis=1)
        return None, out

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        s = self.stride
        if self.reverse:
            c, oh, ow = self.out_shape
            blocks = x[:, : oh * s, : ow * s].reshape(c, oh, s, ow, s)
            return (blocks * F32(self.scale)).sum(axis=(2, 4), dtype=F32)
        c, h, w = x.shape
        wide = np.repeat(x, s, axis=2)
        up = np.empty((c, h, s, w * s), dtype=F32)
        up[...] = wide[:, :, None, :]  # rows copied whole: cheaper than a second np.repeat
        up = up.reshape(c, h * s, w * s)
        return up if self.scale == 1.0 else (up * F32(self.scale)).astype(F32)
