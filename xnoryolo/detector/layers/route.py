"""[route] and [shortcut]: the layers that read earlier layers' outputs by index."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..activations import DARKNET_CPU_ZERO_SHORTCUT, activate
from ..backends import Backend
from ..cfg import Section
from .base import (
    F32,
    BitsStep,
    BuildContext,
    FloatSource,
    Layer,
    activation_option,
    diverge,
    positive,
)


def layer_refs(section: Section, key: str, ctx: BuildContext, required: bool) -> list[int]:
    refs = section.get_ints(key)
    if refs is None:
        if required:
            raise section.error(f"[{section.name}] needs {key}=")
        return []
    out = []
    for r in refs:
        idx = ctx.index + r if r < 0 else r
        if not 0 <= idx < ctx.index:
            raise section.error(
                f"{key}={r} refers to layer {idx}, but only layers 0..{ctx.index - 1} come before "
                f"layer {ctx.index}",
                key,
            )
        out.append(idx)
    return out


@dataclass
class RouteLayer(Layer):
    type: ClassVar[str] = "route"
    sources: list[int] = field(default_factory=list)
    groups: int = 1
    group_id: int = 0
    source_channels: tuple[int, ...] = ()

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> RouteLayer:
        sources = layer_refs(section, "layers", ctx, required=True)
        groups = positive(section, "groups", section.get_int("groups", 1))
        group_id = section.get_int("group_id", 0)
        if not 0 <= group_id < groups:
            raise section.error(f"group_id={group_id} must be in 0..{groups - 1}", "group_id")
        shapes = [ctx.layers[i].out_shape for i in sources]
        h, w = shapes[0][1], shapes[0][2]
        for i, s in zip(sources, shapes, strict=True):
            if (s[1], s[2]) != (h, w):
                raise section.error(
                    f"layers={section.options['layers'].value}: layer {i} is {s[2]}x{s[1]} but "
                    f"layer {sources[0]} is {w}x{h}; routed layers must have the same size",
                    "layers",
                )
            if s[0] % groups:
                raise section.error(
                    f"groups={groups} does not divide the {s[0]} channels of layer {i}", "groups"
                )
        out_c = sum(s[0] for s in shapes) // groups
        channels = tuple(s[0] for s in shapes)
        return cls(
            ctx.index, section, ctx.in_shape, (out_c, h, w), sources, groups, group_id, channels
        )

    @property
    def reads(self) -> tuple[int, ...]:
        return tuple(self.sources)

    @property
    def emits_bits(self) -> bool:
        # sign bits concatenate as whole 64-channel words: every source but the last must
        # end on a word boundary (groups would slice inside words)
        return self.groups == 1 and all(c % 64 == 0 for c in self.source_channels[:-1])

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        shape, pad = step.layout
        _, h, w = self.out_shape
        out = np.zeros(shape, dtype=np.uint64)
        word = 0
        for i in self.sources:  # each source's bits in their natural layout
            src = bits[i]
            out[pad : pad + h, pad : pad + w, word : word + src.shape[2]] = src
            word += src.shape[2]
        return None, out

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        parts = []
        for i in self.sources:
            src = outputs[i]
            part = src.shape[0] // self.groups
            parts.append(src[self.group_id * part : (self.group_id + 1) * part])
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts, axis=0)


@dataclass
class ShortcutLayer(Layer):
    type: ClassVar[str] = "shortcut"
    sources: list[int] = field(default_factory=list)
    activation: str = "linear"
    weights_type: str = "none"
    normalization: str = "none"
    weights: np.ndarray | None = None

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> ShortcutLayer:
        sources = layer_refs(section, "from", ctx, required=True)
        activation = activation_option(section, "linear")
        wtype = section.get_str("weights_type", "none")
        norm = section.get_str("weights_normalization", "none")
        if wtype not in ("none", "per_feature", "per_layer", "per_channel"):
            raise section.error(f"unknown weights_type={wtype}", "weights_type")
        if norm not in ("none", "relu", "avg_relu", "softmax"):
            raise section.error(f"unknown weights_normalization={norm}", "weights_normalization")
        if wtype != "none" and norm == "none":
            raise section.error(
                "weights_type needs weights_normalization=relu|avg_relu|softmax",
                "weights_normalization",
            )
        if activation in DARKNET_CPU_ZERO_SHORTCUT:
            diverge(
                section,
                f"darknet's CPU shortcut outputs 0 for activation={activation}; "
                "xnoryolo computes the real function",
            )
        return cls(ctx.index, section, ctx.in_shape, ctx.in_shape, sources, activation, wtype, norm)

    @property
    def reads(self) -> tuple[int, ...]:
        return tuple(self.sources)

    def weight_floats(self) -> int:
        n = len(self.sources)
        if self.weights_type == "none":
            return 0
        if self.weights_type == "per_channel":
            return (n + 1) * self.out_shape[0]
        return n + 1

    def load(self, reader: FloatSource) -> None:
        if self.weight_floats():
            self.weights = reader.read(self.weight_floats(), "shortcut weights")

    def prepare(self, backend: Backend) -> None:
        if self.weights is None or self.normalization == "none":
            return
        # Darknet folds the normalization into the weights once (fuse_conv_batchnorm).
        n1 = len(self.sources) + 1
        w = self.weights.reshape(n1, -1).astype(F32)
        if self.normalization == "softmax":
            e = np.exp(w - w.max(axis=0))
            w = e / (F32(0.0001) + e.sum(axis=0))
        else:
            lr = np.maximum(w, F32(0.001))
            w = lr / (F32(0.0001) + lr.sum(axis=0))
        self.weights = w.astype(F32)

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        w = self.weights
        weight_map = None
        if w is not None:
            # block k weighs source k (0 = previous layer) per output position's channel
            weight_map = np.broadcast_to(
                w[:, :, None, None] if w.shape[1] > 1 else w[:, :1, None, None],
                (w.shape[0], *self.out_shape),
            ).reshape(w.shape[0], -1)
        flat = x.reshape(-1).astype(F32, copy=True)
        if weight_map is not None:
            flat *= weight_map[0]
        for k, i in enumerate(self.sources, start=1):
            src = outputs[i].reshape(-1)
            n = min(src.size, flat.size)  # darknet adds by flat index, extra values ignored
            flat[:n] += src[:n] if weight_map is None else src[:n] * weight_map[k, :n]
        return activate(flat.reshape(self.out_shape), self.activation)
