"""Darknet layers for the tiny YOLO families, built from cfg sections with shapes known up front.

Each builder gets the section and the shape of its input and returns a layer that knows its
output shape and how many floats it reads from the weights file; `LAYERS` maps every section
name (with darknet's aliases) to its builder.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import ops
from .activations import ACTIVATIONS, DARKNET_CPU_ZERO, DARKNET_CPU_ZERO_SHORTCUT, activate
from .cfg import Section
from .errors import CfgError, CfgWarning, DarknetDivergenceWarning
from .weights import WeightsReader

F32 = np.float32
Shape = tuple[int, int, int]  # (c, h, w)
# packed sign bits (kernels/README.md): uint64 (hp, wp, ceil(c/64)) with a border of `pad`
Layout = tuple[tuple[int, int, int], int]


def natural_layout(shape: Shape) -> Layout:
    """Packed bits of a (c, h, w) output with no border."""
    c, h, w = shape
    return ((h, w, (c + 63) // 64), 0)


@dataclass(frozen=True)
class BitsStep:
    """How one layer runs on the detect path when sign bits are handed on (Network plans)."""

    layout: Layout  # where its bits go: its bits reader's input layout, else natural
    want_float: bool = False  # the float output is read too (a binary conv only)
    next_bits: bool = True  # the next layer reads the bits (else the floats) as its input
    pool: Layer | None = None  # a float conv that runs the following maxpool itself
    done: bool = False  # a maxpool whose work the previous layer did


@dataclass(frozen=True)
class NetParams:
    width: int
    height: int
    channels: int
    letter_box: bool


@dataclass
class BuildContext:
    index: int
    in_shape: Shape
    layers: list[Layer]
    net: NetParams


def diverge(section: Section, message: str) -> None:
    """Warn (once, at load) that darknet's CPU path is defective here and what xnoryolo does."""
    warnings.warn(
        f"{section.path}:{section.line}: [{section.name}] {message}",
        DarknetDivergenceWarning,
        stacklevel=3,
    )


def cfg_warn(section: Section, message: str) -> None:
    warnings.warn(
        f"{section.path}:{section.line}: [{section.name}] {message}", CfgWarning, stacklevel=3
    )


def _activation(section: Section, default: str) -> str:
    name = section.get_str("activation", default)
    if name not in ACTIVATIONS:
        hint = difflib.get_close_matches(name, ACTIVATIONS, n=1)
        more = f" (did you mean {hint[0]}?)" if hint else ""
        raise section.error(f"unknown activation {name!r}{more}", "activation")
    return name


def _positive(section: Section, key: str, value: int) -> int:
    if value < 1:
        raise section.error(f"{key}={value} must be >= 1", key)
    return value


@dataclass
class Layer:
    """Base: identity geometry, no weights. Subclasses set `type` and override what they need."""

    type: ClassVar[str] = "layer"
    index: int
    section: Section
    in_shape: Shape
    out_shape: Shape

    # Training-only keys darknet reads for this section; never reported as unknown.
    IGNORED: ClassVar[frozenset[str]] = frozenset()

    @property
    def where(self) -> str:
        return f"layer {self.index} ({self.type}, {self.section.path}:{self.section.line})"

    @property
    def outputs(self) -> int:
        c, h, w = self.out_shape
        return c * h * w

    def weight_floats(self) -> int:
        return 0

    def load(self, reader: WeightsReader) -> None:
        """Read this layer's arrays; the reader was already size-checked against the cfg."""

    def prepare(self, backend: Any) -> None:
        """Fold BN, binarize, pack: whatever turns loaded arrays into inference form."""

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    # Chained binary layers (kernels/README.md): layers whose readers are binary layers may
    # hand them sign bits, packed, instead of floats; Network plans which (BitsStep).
    @property
    def bits_input(self) -> Layout | None:
        """The packed layout this layer reads its input `x` in when given bits, or None."""
        return None

    @property
    def emits_bits(self) -> bool:
        """Whether this layer can produce its output as sign bits (given bits inputs where it
        reads any)."""
        return False

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """(float output or None, output sign bits in step.layout); `bits` holds the bits
        earlier layers emitted."""
        raise NotImplementedError

    def summary(self) -> str:
        c, h, w = self.in_shape
        oc, oh, ow = self.out_shape
        return (
            f"{self.index:4d} {self.type:<14s} {w:4d} x{h:4d} x{c:5d} -> {ow:4d} x{oh:4d} x{oc:5d}"
        )


# --------------------------------------------------------------------------------------------
@dataclass
class ConvolutionalLayer(Layer):
    type: ClassVar[str] = "convolutional"
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {"stopbackward", "train_only_bn", "learning_rate", "assisted_excitation", "binary"}
    )
    spec: ops.ConvSpec = field(default=ops.ConvSpec(1, 1, 1, 1, 1))
    batch_normalize: bool = False
    activation: str = "logistic"
    xnor: bool = False
    bin_output: bool = False
    dontload: bool = False
    dontloadscales: bool = False
    weights: np.ndarray | None = None
    biases: np.ndarray | None = None
    bn: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # scales, mean, variance
    kernel: Callable[[np.ndarray], np.ndarray] | None = None
    signs: np.ndarray | None = None
    scale: np.ndarray | None = None
    folded_bias: np.ndarray | None = None

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> ConvolutionalLayer:
        c, h, w = ctx.in_shape
        filters = _positive(section, "filters", section.get_int("filters", 1))
        size = _positive(section, "size", section.get_int("size", 1))
        stride = _positive(section, "stride", section.get_int("stride", 1))
        stride_x = section.get_int("stride_x", -1)
        stride_y = section.get_int("stride_y", -1)
        stride_x = stride_x if stride_x >= 1 else stride
        stride_y = stride_y if stride_y >= 1 else stride
        dilation = _positive(section, "dilation", section.get_int("dilation", 1))
        if size == 1:
            dilation = 1
        pad = section.get_int("pad", 0)
        padding = section.get_int("padding", 0)
        if pad:
            padding = size // 2
        if padding < 0:
            raise section.error(f"padding={padding} must be >= 0", "padding")
        groups = _positive(section, "groups", section.get_int("groups", 1))
        xnor = bool(section.get_int("xnor", 0))
        bin_output = bool(section.get_int("bin_output", 0))
        activation = _activation(section, "logistic")
        batch_normalize = bool(section.get_int("batch_normalize", 0))
        if section.get_int("cbn", 0):
            batch_normalize = True
        for key in (
            "share_index",
            "antialiasing",
            "deform",
            "sway",
            "rotate",
            "stretch",
            "stretch_sway",
            "coordconv",
        ):
            if section.has(key) and section.get_str(key, "0") not in ("0", "-1000000000"):
                raise section.error(f"{key}= is not supported by xnoryolo", key)
        if xnor and groups != 1:
            cfg_warn(section, f"groups={groups} is ignored for xnor=1 layers (darknet forces 1)")
            groups = 1
        if c % groups:
            raise section.error(f"groups={groups} does not divide the {c} input channels", "groups")
        if filters % groups:
            raise section.error(f"groups={groups} does not divide filters={filters}", "filters")
        spec = ops.ConvSpec(c, h, w, filters, size, stride_y, stride_x, padding, dilation, groups)
        if h + 2 * padding < size or w + 2 * padding < size:
            raise section.error(
                f"a {size}x{size} kernel does not fit the {w}x{h} input with padding {padding}"
            )
        layer = cls(
            index=ctx.index,
            section=section,
            in_shape=ctx.in_shape,
            out_shape=(filters, spec.out_h, spec.out_w),
            spec=spec,
            batch_normalize=batch_normalize,
            activation=activation,
            xnor=xnor,
            bin_output=bin_output,
            dontload=bool(section.get_int("dontload", 0)),
            dontloadscales=bool(section.get_int("dontloadscales", 0)),
        )
        layer._check_darknet_defects()
        return layer

    def _check_darknet_defects(self) -> None:
        s, sec = self.spec, self.section
        if self.activation in DARKNET_CPU_ZERO:
            diverge(
                sec,
                f"darknet's CPU forward outputs 0 for activation={self.activation}; "
                "xnoryolo computes the real function",
            )
        if not self.xnor:
            return
        if s.stride_x != s.stride_y:
            diverge(
                sec,
                "darknet runs an xnor=1 layer with stride_x != stride_y as a float "
                "convolution; xnoryolo binarizes it like every other xnor layer",
            )
        elif s.c % 32 and not (
            self.out_shape[1:] == (s.h, s.w) and s.stride_x == 1 and s.padding == 1
        ):
            diverge(
                sec,
                f"darknet's CPU bit path has no code for c={s.c} (not a multiple of 32) "
                "with this size/stride/padding and outputs a per-filter constant; "
                "xnoryolo computes the XNOR convolution",
            )
        if s.dilation != 1:
            cfg_warn(sec, "dilation is ignored by darknet's XNOR path; xnoryolo ignores it too")

    @property
    def effective_activation(self) -> str:
        return "linear" if self.xnor and self.bin_output else self.activation

    def weight_floats(self) -> int:
        if self.dontload:
            return 0
        n = self.spec.filters
        bn = 3 * n if self.batch_normalize and not self.dontloadscales else 0
        return n + bn + n * self.spec.k

    def load(self, reader: WeightsReader) -> None:
        n, s = self.spec.filters, self.spec
        if self.dontload:
            self._init_unloaded()
            return
        self.biases = reader.read(n, "biases")
        if self.batch_normalize:
            if self.dontloadscales:
                self.bn = (np.ones(n, F32), np.zeros(n, F32), np.zeros(n, F32))
            else:
                scales = reader.read(n, "scales")
                mean = reader.read(n, "rolling_mean")
                var = reader.read(n, "rolling_variance")
                self.bn = (scales, mean, var)
        self.weights = reader.read(n * s.k, "weights").reshape(n, s.c // s.groups, s.size, s.size)

    def _init_unloaded(self) -> None:
        n, s = self.spec.filters, self.spec
        self.biases = np.zeros(n, F32)
        self.weights = np.zeros((n, s.c // s.groups, s.size, s.size), F32)
        if self.batch_normalize:
            self.bn = (np.ones(n, F32), np.zeros(n, F32), np.zeros(n, F32))

    def fold_batchnorm(self) -> tuple[np.ndarray, np.ndarray]:
        """Darknet's fuse_conv_batchnorm, in double, stored as float (eps .00001)."""
        assert self.weights is not None and self.biases is not None
        if not self.batch_normalize or self.bn is None:
            return self.weights, self.biases
        scales, mean, var = (a.astype(np.float64) for a in self.bn)
        std = np.sqrt(var + 0.00001)
        bias = (self.biases.astype(np.float64) - scales * mean / std).astype(F32)
        factor = scales / std
        w = (self.weights.astype(np.float64) * factor[:, None, None, None]).astype(F32)
        return w, bias

    def prepare(self, backend: Any) -> None:
        if self.weights is None:
            self._init_unloaded()
        weights, bias = self.fold_batchnorm()
        self.folded_bias = bias
        act = self.effective_activation
        if self.xnor:
            self.signs, self.scale = ops.binarize_weights(weights)
            self.kernel = backend.binary_conv(self.signs, self.scale, bias, self.spec, act)
        else:
            self.kernel = backend.float_conv(weights, bias, self.spec, act)
        self.weights = weights  # keep the folded form only

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        assert self.kernel is not None, "prepare() not called"
        return self.kernel(x)

    @property
    def bits_input(self) -> Layout | None:
        shape = getattr(self.kernel, "packed_shape", None) if self.xnor else None
        return None if shape is None else (shape, self.spec.padding)

    @property
    def emits_bits(self) -> bool:
        return self.xnor and bool(getattr(self.kernel, "emits_bits", False))

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        assert self.kernel is not None, "prepare() not called"
        shape, pad = step.layout
        out = np.zeros(shape, dtype=np.uint64)  # zero border = -1 padding for the reader
        if step.pool is not None:
            assert isinstance(step.pool, MaxpoolLayer) and not step.want_float
            self.kernel.run_pooled_bits(x, step.pool.kernel, out, pad)  # type: ignore[attr-defined]
            return None, out
        y = self.kernel.run(x, bits=out, bits_pad=pad, want_float=step.want_float)  # type: ignore[attr-defined]
        return y, out


# --------------------------------------------------------------------------------------------
@dataclass
class MaxpoolLayer(Layer):
    type: ClassVar[str] = "maxpool"
    size: int = 2
    stride_x: int = 2
    stride_y: int = 2
    padding: int = 1
    depth: bool = False
    kernel: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> MaxpoolLayer:
        c, h, w = ctx.in_shape
        stride = _positive(section, "stride", section.get_int("stride", 1))
        stride_x = section.get_int("stride_x", stride)
        stride_y = section.get_int("stride_y", stride)
        _positive(section, "stride_x", stride_x)
        _positive(section, "stride_y", stride_y)
        size = _positive(section, "size", section.get_int("size", stride))
        padding = section.get_int("padding", size - 1)
        if padding < 0:
            raise section.error(f"padding={padding} must be >= 0", "padding")
        depth = bool(section.get_int("maxpool_depth", 0))
        out_channels = _positive(section, "out_channels", section.get_int("out_channels", 1))
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

    def prepare(self, backend: Any) -> None:
        # backends may offer a maxpool kernel (optional: not part of the Backend protocol)
        if not self.depth and hasattr(backend, "maxpool"):
            _, oh, ow = self.out_shape
            self.kernel = backend.maxpool(
                self.in_shape, self.size, self.stride_y, self.stride_x, self.padding, oh, ow
            )

    @property
    def bits_input(self) -> Layout | None:
        return natural_layout(self.in_shape) if self.emits_bits else None

    @property
    def emits_bits(self) -> bool:
        return hasattr(self.kernel, "run_bits")

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        # max of signs = OR of bits: the pooled signs are exact without the pooled floats
        assert self.kernel is not None and not step.want_float
        shape, pad = step.layout
        out = np.zeros(shape, dtype=np.uint64)
        self.kernel.run_bits(x, out, pad)  # type: ignore[attr-defined]
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


# --------------------------------------------------------------------------------------------
def _layer_refs(section: Section, key: str, ctx: BuildContext, required: bool) -> list[int]:
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
        sources = _layer_refs(section, "layers", ctx, required=True)
        groups = _positive(section, "groups", section.get_int("groups", 1))
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


# --------------------------------------------------------------------------------------------
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
        sources = _layer_refs(section, "from", ctx, required=True)
        activation = _activation(section, "linear")
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

    def weight_floats(self) -> int:
        n = len(self.sources)
        if self.weights_type == "none":
            return 0
        if self.weights_type == "per_channel":
            return (n + 1) * self.out_shape[0]
        return n + 1

    def load(self, reader: WeightsReader) -> None:
        if self.weight_floats():
            self.weights = reader.read(self.weight_floats(), "shortcut weights")

    def prepare(self, backend: Any) -> None:
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


# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
@dataclass
class YoloLayer(Layer):
    type: ClassVar[str] = "yolo"
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "jitter",
            "ignore_thresh",
            "truth_thresh",
            "random",
            "resize",
            "iou_normalizer",
            "obj_normalizer",
            "cls_normalizer",
            "delta_normalizer",
            "iou_loss",
            "iou_thresh_kind",
            "iou_thresh",
            "max_delta",
            "counters_per_class",
            "label_smooth_eps",
            "focal_loss",
            "max",
            "map",
            "objectness_smooth",
            "track_history_size",
            "sim_thresh",
            "dets_for_track",
            "dets_for_show",
            "track_ciou_norm",
            "embedding_layer",
            "random_anchors",
        }
    )
    classes: int = 20
    mask: list[int] = field(default_factory=list)
    anchors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), F32))
    scale_x_y: float = 1.0
    new_coords: bool = False
    nms_kind: str = "default"
    beta_nms: float = 0.6

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> YoloLayer:
        c = ctx.in_shape[0]
        classes = _positive(section, "classes", section.get_int("classes", 20))
        num = _positive(section, "num", section.get_int("num", 1))
        mask = section.get_ints("mask") or list(range(num))
        for m in mask:
            if not 0 <= m < num:
                raise section.error(
                    f"mask entry {m} is not an anchor index 0..{num - 1} (num={num})", "mask"
                )
        anchors = section.get_floats("anchors")
        if anchors is None:
            raise section.error("[yolo] needs anchors=")
        if len(anchors) != 2 * num:
            raise section.error(
                f"anchors= has {len(anchors)} values but num={num} needs {2 * num}", "anchors"
            )
        n = len(mask)
        if c != n * (classes + 5):
            raise section.error(
                f"the layer before [yolo] outputs {c} channels but {n} masked anchors x "
                f"(classes={classes} + 5) = {n * (classes + 5)} are needed"
            )
        kind = section.get_str("nms_kind", "default")
        if kind not in ("default", "greedynms", "diounms", "cornersnms"):
            kind = "default"  # darknet's fallback for any other name
        return cls(
            ctx.index,
            section,
            ctx.in_shape,
            ctx.in_shape,
            classes,
            mask,
            np.asarray(anchors, F32).reshape(num, 2),
            section.get_float("scale_x_y", 1.0),
            bool(section.get_int("new_coords", 0)),
            kind,
            section.get_float("beta_nms", 0.6),
        )

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        n = len(self.mask)
        _, h, w = self.in_shape
        if self.new_coords:
            out = x.reshape(n, self.classes + 5, h, w).copy()
        else:
            # logistic 1 / (1 + exp(-x)) in float32 (activations.py's order of operations) over
            # the whole tensor in place, then the raw w, h entries put back: a few contiguous
            # passes instead of strided slices and temporaries
            with np.errstate(over="ignore", under="ignore"):
                flat = np.negative(x, dtype=F32)
                np.exp(flat, out=flat)
                flat += F32(1)
                np.divide(F32(1), flat, out=flat)
            out = flat.reshape(n, self.classes + 5, h, w)
            out[:, 2:4] = x.reshape(n, self.classes + 5, h, w)[:, 2:4]
        if self.scale_x_y != 1.0:
            s = F32(self.scale_x_y)
            out[:, 0:2] = out[:, 0:2] * s - F32(0.5) * (s - F32(1))
        return out.reshape(self.out_shape)


# --------------------------------------------------------------------------------------------
@dataclass
class RegionLayer(Layer):
    type: ClassVar[str] = "region"
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "jitter",
            "rescore",
            "object_scale",
            "noobject_scale",
            "class_scale",
            "coord_scale",
            "thresh",
            "random",
            "bias_match",
            "absolute",
            "log",
            "sqrt",
            "focal_loss",
        }
    )
    classes: int = 20
    coords: int = 4
    num: int = 1
    softmax: bool = False
    anchors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), F32))
    nms_kind: str = "default"
    beta_nms: float = 0.6

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> RegionLayer:
        c = ctx.in_shape[0]
        classes = _positive(section, "classes", section.get_int("classes", 20))
        coords = section.get_int("coords", 4)
        if coords != 4:
            raise section.error(f"coords={coords}: only 4 is supported", "coords")
        num = _positive(section, "num", section.get_int("num", 1))
        for key in ("tree", "map"):
            if section.has(key):
                raise section.error(f"{key}= (YOLO9000) is not supported by xnoryolo", key)
        anchors = section.get_floats("anchors")
        if anchors is None:
            anchors = [0.5] * (2 * num)  # darknet's biases default
        if len(anchors) != 2 * num:
            raise section.error(
                f"anchors= has {len(anchors)} values but num={num} needs {2 * num}", "anchors"
            )
        if c != num * (coords + 1 + classes):
            raise section.error(
                f"the layer before [region] outputs {c} channels but num={num} x (coords={coords}"
                f" + 1 + classes={classes}) = {num * (coords + 1 + classes)} are needed"
            )
        return cls(
            ctx.index,
            section,
            ctx.in_shape,
            ctx.in_shape,
            classes,
            coords,
            num,
            bool(section.get_int("softmax", 0)),
            np.asarray(anchors, F32).reshape(num, 2),
        )

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        _, h, w = self.in_shape
        size = self.coords + 1 + self.classes
        # darknet flattens CHW to HWC: (h, w, anchor, entry)
        out = x.reshape(self.num, size, h, w).transpose(2, 3, 0, 1).copy()
        out[..., 4] = activate(out[..., 4], "logistic")
        if self.softmax:
            cls_ = out[..., 5:].astype(np.float64)
            e = np.exp(cls_ - cls_.max(axis=-1, keepdims=True))
            out[..., 5:] = (e / e.sum(axis=-1, keepdims=True)).astype(F32)
        return out


# --------------------------------------------------------------------------------------------
@dataclass
class BatchnormLayer(Layer):
    type: ClassVar[str] = "batchnorm"
    params: tuple[np.ndarray, ...] | None = None

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> BatchnormLayer:
        return cls(ctx.index, section, ctx.in_shape, ctx.in_shape)

    def weight_floats(self) -> int:
        return 4 * self.in_shape[0]

    def load(self, reader: WeightsReader) -> None:
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


Builder = Callable[[Section, BuildContext], Layer]

LAYERS: dict[str, Builder] = {
    "convolutional": ConvolutionalLayer.build,
    "conv": ConvolutionalLayer.build,
    "maxpool": MaxpoolLayer.build,
    "max": MaxpoolLayer.build,
    "route": RouteLayer.build,
    "shortcut": ShortcutLayer.build,
    "upsample": UpsampleLayer.build,
    "yolo": YoloLayer.build,
    "region": RegionLayer.build,
    "batchnorm": BatchnormLayer.build,
    "dropout": DropoutLayer.build,
}

# Sections darknet knows but xnoryolo does not run: a clear error instead of a wrong network.
UNSUPPORTED = {
    "local",
    "activation",
    "crnn",
    "gru",
    "lstm",
    "conv_lstm",
    "history",
    "rnn",
    "conn",
    "connected",
    "crop",
    "cost",
    "detection",
    "local_avg",
    "local_avgpool",
    "reorg3d",
    "reorg",
    "avg",
    "avgpool",
    "lrn",
    "normalization",
    "soft",
    "softmax",
    "scale_channels",
    "sam",
    "Gaussian_yolo",
    "empty",
    "silence",
    "implicit_add",
    "implicit_mul",
    "contrastive",
}


def build_layer(section: Section, ctx: BuildContext) -> Layer:
    builder = LAYERS.get(section.name)
    if builder is not None:
        layer = builder(section, ctx)
        _check_out_shape(layer)
        return layer
    if section.name in UNSUPPORTED:
        raise CfgError(
            section.path, section.line, f"[{section.name}] layers are not supported by xnoryolo"
        )
    if section.name in ("net", "network"):
        raise CfgError(
            section.path, section.line, f"[{section.name}] may only be the first section"
        )
    hint = difflib.get_close_matches(section.name, list(LAYERS) + sorted(UNSUPPORTED), n=1)
    more = f" (did you mean [{hint[0]}]?)" if hint else ""
    warnings.warn(
        f"{section.path}:{section.line}: unknown section [{section.name}]{more}; darknet makes it "
        "an empty layer, xnoryolo passes its input through",
        CfgWarning,
        stacklevel=2,
    )
    return UnknownLayer(ctx.index, section, ctx.in_shape, ctx.in_shape)


def _check_out_shape(layer: Layer) -> None:
    if min(layer.out_shape) < 1:
        raise CfgError(
            layer.section.path,
            layer.section.line,
            f"[{layer.section.name}] output shape {layer.out_shape} (c, h, w) is empty for input "
            f"{layer.in_shape}",
        )
