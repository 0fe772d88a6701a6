"""`NumpyBackend`: the reference, kernels straight from detector.ops (the written contract)."""

from __future__ import annotations

from functools import partial

import numpy as np

from .. import ops, quantize
from .protocols import Kernel


class NumpyBackend:
    """Reference kernels: plain floats in and out, no packed-bits abilities, one thread."""

    name = "numpy"
    threads = 1
    path = "reference"

    def float_conv(
        self, weights: np.ndarray, bias: np.ndarray, spec: ops.ConvSpec, activation: str
    ) -> Kernel:
        return partial(ops.float_conv, weights=weights, bias=bias, spec=spec, activation=activation)

    def int8_conv(
        self,
        qweights: np.ndarray,
        w_scale: np.ndarray,
        bias: np.ndarray,
        spec: ops.ConvSpec,
        in_scale: float,
        in_zero: int,
        activation: str,
        in_top: int = 255,
    ) -> Kernel:
        return partial(
            quantize.int8_conv,
            qweights=qweights,
            w_scale=w_scale,
            bias=bias,
            spec=spec,
            quant=quantize.ActQuant(in_scale, in_zero, in_top),
            activation=activation,
        )

    def binary_conv(
        self,
        signs: np.ndarray,
        scale: np.ndarray,
        bias: np.ndarray,
        spec: ops.ConvSpec,
        activation: str,
    ) -> Kernel:
        return partial(
            ops.binary_conv, signs=signs, scale=scale, bias=bias, spec=spec, activation=activation
        )

    def maxpool(
        self,
        in_shape: tuple[int, int, int],
        size: int,
        stride_y: int,
        stride_x: int,
        padding: int,
        out_h: int,
        out_w: int,
    ) -> Kernel:
        return partial(
            ops.maxpool,
            size=size,
            stride_y=stride_y,
            stride_x=stride_x,
            padding=padding,
            out_h=out_h,
            out_w=out_w,
        )
