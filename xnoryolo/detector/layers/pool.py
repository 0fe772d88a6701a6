"""[maxpool]: spatial and channel-depth max pooling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import ops
from ..backends import Backend, BitsPool, Kernel
from ..cfg import Section
from .base import F32, BitsStep, BuildContext, Layer, Layout, diverge, natural_layout, positive


@dataclass
class MaxpoolLayer(Layer):
    type: ClassVar[str] = "maxpool"
    size: int = 2
    stride_x: int = 2
    stride_y: int = 2
    padding: int = 1
    depth: bool = False
    kernel: Kernel | None = None  # None for a depth maxpool
    bits_kernel: BitsPool | None = None  # the kernel again where it can write bits

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> MaxpoolLayer:
        c, h, w = ctx.in_shape
        stride = positive(section, "stride", section.get_int("stride", 1))
        stride_x = section.get_int("stride_x", stride)
        stride_y = section.get_int("stride_y", stride)
        positive(section, "stride_x", stride_x)
        positive(section, "stride_y", stride_y)
        size = positive(section, "size", section.get_int("size", stride))
        padding = section.get_int("padding", size - 1)
        if padding < 0:
            raise section.error(f"padding={padding} must be >= 0", "padding")
        depth = bool(section.get_int("maxpool_depth", 0))
        out_channels = positive(section, "out_channels", section.get_int("out_channels", 1))
        for key in ("antialiasing",):
            if section.get_int(key, 0):
                raise section.error(f"{key}= is not supported by xnoryolo", key)
        if depth:
            out_shape = (out_channels, h, w)
        else:
            if w + padding < size or h + padding < size:
                raise section.error(f"a {size}x{size} window does not fit the {w}x{h} input")
            out_shape = (
                c,
                (h + padding - size) // stride_y + 1,
                (w + padding - size) // stride_x + 1,
            )
        layer = cls(
            ctx.index, section, ctx.in_shape, out_shape, size, stride_x, stride_y, padding, depth
        )
        if (
            not depth
            and stride_x == stride_y == 1
            and padding // 2 > 0
            and out_shape[2] > 8 + size - 1
        ):
            diverge(
                section,
                "darknet's AVX maxpool skips real taps left of columns 1..7 for "
                "stride-1 windows with an offset; xnoryolo computes the true maximum "
                "(as darknet's portable build does)",
            )
        return layer

    def prepare(self, backend: Backend) -> None:
        if self.depth:  # pools across channels: no backend kernel, forward() does it
            return
        _, oh, ow = self.out_shape
        kernel = backend.maxpool(
            self.in_shape, self.size, self.stride_y, self.stride_x, self.padding, oh, ow
        )
        self.kernel = kernel
        self.bits_kernel = kernel if isinstance(kernel, BitsPool) else None

    @property
    def bits_input(self) -> Layout | None:
        return natural_layout(self.in_shape) if self.emits_bits else None

    @property
    def emits_bits(self) -> bool:
        return self.bits_kernel is not None

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        # max of signs = OR of bits: the pooled signs are exact without the pooled floats
        assert self.bits_kernel is not None and not step.want_float
        shape, pad = step.layout
        out = np.zeros(shape, dtype=np.uint64)
        self.bits_kernel.run_bits(x, out, pad)
        return None, out

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        if self.kernel is not None:
            return self.kernel(x)
        if self.depth:
            oc = self.out_shape[0]
            c = x.shape[0]
            out = np.full(self.out_shape, -np.finfo(F32).max, dtype=F32)
            for g in range(oc):
                if g < c:
                    out[g] = x[g::oc].max(axis=0)
            return out
        _, oh, ow = self.out_shape
        return ops.maxpool(x, self.size, self.stride_y, self.stride_x, self.padding, oh, ow)
