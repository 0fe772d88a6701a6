"""[convolutional]: float and binary (xnor=1) convolutions, BN folded at prepare."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .. import ops
from ..activations import DARKNET_CPU_ZERO
from ..backends import Backend, BitsConv, BitsPool, FloatPoolingConv, Kernel, PoolingConv
from ..cfg import Section
from ..quantize import ActQuant, quantize_weights
from .base import (
    F32,
    BitsStep,
    BuildContext,
    FloatSource,
    Layer,
    Layout,
    activation_option,
    cfg_warn,
    diverge,
    positive,
)
from .pool import MaxpoolLayer


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
    kernel: Kernel | None = None
    # the kernel again where it has these abilities (fast backend), else None
    bits_kernel: BitsConv | None = None
    pooling_kernel: PoolingConv | None = None
    # a 1x1 stride-1 maxpool (the identity) that pooling_kernel takes over: its sign bits at
    # full size, for binary readers (see emits_bits)
    sign_pool: BitsPool | None = None
    signs: np.ndarray | None = None
    scale: np.ndarray | None = None
    folded_bias: np.ndarray | None = None
    # int8 (non-binary convs): how its input is quantised (calibrated, or the exact pixel
    # grid for the network input), and whether prepare() builds the int8 kernel
    act_quant: ActQuant | None = None
    int8: bool = False

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> ConvolutionalLayer:
        c, h, w = ctx.in_shape
        filters = positive(section, "filters", section.get_int("filters", 1))
        size = positive(section, "size", section.get_int("size", 1))
        stride = positive(section, "stride", section.get_int("stride", 1))
        stride_x = section.get_int("stride_x", -1)
        stride_y = section.get_int("stride_y", -1)
        stride_x = stride_x if stride_x >= 1 else stride
        stride_y = stride_y if stride_y >= 1 else stride
        dilation = positive(section, "dilation", section.get_int("dilation", 1))
        if size == 1:
            dilation = 1
        pad = section.get_int("pad", 0)
        padding = section.get_int("padding", 0)
        if pad:
            padding = size // 2
        if padding < 0:
            raise section.error(f"padding={padding} must be >= 0", "padding")
        groups = positive(section, "groups", section.get_int("groups", 1))
        xnor = bool(section.get_int("xnor", 0))
        bin_output = bool(section.get_int("bin_output", 0))
        activation = activation_option(section, "logistic")
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

    def load(self, reader: FloatSource) -> None:
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

    def prepare(self, backend: Backend) -> None:
        if self.weights is None:
            self._init_unloaded()
        if self.folded_bias is not None:  # prepared before: weights hold the folded form
            assert self.weights is not None
            weights, bias = self.weights, self.folded_bias
        else:
            weights, bias = self.fold_batchnorm()
        self.folded_bias = bias
        act = self.effective_activation
        if self.xnor:
            self.signs, self.scale = ops.binarize_weights(weights)
            kernel = backend.binary_conv(self.signs, self.scale, bias, self.spec, act)
            self.bits_kernel = kernel if isinstance(kernel, BitsConv) else None
            self.pooling_kernel = None
        else:
            if self.int8:
                assert self.act_quant is not None, "int8 needs the input's quantisation"
                q = self.act_quant
                qw, w_scale = quantize_weights(weights, q.weight_top)
                kernel = backend.int8_conv(
                    qw, w_scale, bias, self.spec, q.scale, q.zero, act, q.top
                )
            else:
                kernel = backend.float_conv(weights, bias, self.spec, act)
            self.bits_kernel = None
            self.pooling_kernel = kernel if isinstance(kernel, PoolingConv) else None
        self.sign_pool = None
        if self.pooling_kernel is not None:
            _, oh, ow = self.out_shape
            ident = backend.maxpool(self.out_shape, 1, 1, 1, 0, oh, ow)
            if isinstance(ident, BitsPool) and self.pooling_kernel.takes_pool(ident):
                self.sign_pool = ident
        self.kernel = kernel
        self.weights = weights  # keep the folded form only

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        assert self.kernel is not None, "prepare() not called"
        return self.kernel(x)

    @property
    def bits_input(self) -> Layout | None:
        if self.bits_kernel is None:
            return None
        return (self.bits_kernel.packed_shape, self.spec.padding)

    @property
    def emits_bits(self) -> bool:
        """A binary conv writes sign bits beside its floats; a float or int8 conv whose kernel
        can run a pool after it writes its own sign bits instead of floats (the identity
        pool), for readers that only take signs."""
        if self.bits_kernel is not None:
            return self.bits_kernel.emits_bits
        return self.sign_pool is not None

    @property
    def bits_with_floats(self) -> bool:
        """Whether it can write its floats too when it writes bits (binary convs only)."""
        return self.bits_kernel is not None

    def forward_bits(
        self,
        x: np.ndarray,
        outputs: list[np.ndarray],
        step: BitsStep,
        bits: Mapping[int, np.ndarray],
    ) -> tuple[np.ndarray | None, np.ndarray]:
        shape, pad = step.layout
        out = np.zeros(shape, dtype=np.uint64)  # zero border = -1 padding for the reader
        if step.pool is not None:
            pool = step.pool
            assert isinstance(pool, MaxpoolLayer) and not step.want_float
            assert self.pooling_kernel is not None and pool.bits_kernel is not None
            self.pooling_kernel.run_pooled_bits(x, pool.bits_kernel, out, pad)
            return None, out
        if self.bits_kernel is None:  # its own sign bits, through the identity pool
            assert self.pooling_kernel is not None and self.sign_pool is not None
            assert not step.want_float, "a float or int8 conv writes bits or floats"
            self.pooling_kernel.run_pooled_bits(x, self.sign_pool, out, pad)
            return None, out
        assert self.bits_kernel is not None, "not a bits-reading kernel (see bits_input)"
        y = self.bits_kernel.run(x, bits=out, bits_pad=pad, want_float=step.want_float)
        return y, out

    def takes_pool(self, pool: Layer, floats: bool) -> bool:
        """Whether this layer can run `pool` (the layer after it) itself: writing its sign
        bits (forward_bits with a pooling step), or with `floats` its floats (forward_pooled)."""
        kernel = self.pooling_kernel
        return (
            kernel is not None
            and (not floats or isinstance(kernel, FloatPoolingConv))
            and isinstance(pool, MaxpoolLayer)
            and pool.bits_kernel is not None
            and kernel.takes_pool(pool.bits_kernel)
        )

    def forward_pooled(self, x: np.ndarray, pool: MaxpoolLayer) -> np.ndarray:
        """This layer then `pool`: the pool's output, this layer's own never stored."""
        assert isinstance(self.pooling_kernel, FloatPoolingConv) and pool.bits_kernel is not None
        return self.pooling_kernel.run_pooled(x, pool.bits_kernel)
