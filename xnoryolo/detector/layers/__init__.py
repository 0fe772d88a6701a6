"""Darknet layers for the tiny YOLO families, built from cfg sections with shapes known up front.

Each builder gets the section and the shape of its input and returns a layer that knows its
output shape and how many floats it reads from the weights file; `LAYERS` maps every section
name (with darknet's aliases) to its builder. One module per kind of layer; `base` holds what
they share.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable

from ..cfg import Section
from ..errors import CfgError, CfgWarning
from .base import (
    BitsStep,
    BuildContext,
    FloatSource,
    Layer,
    Layout,
    NetParams,
    Shape,
    natural_layout,
)
from .batchnorm import BatchnormLayer
from .conv import ConvolutionalLayer
from .heads import Logits, RegionLayer, YoloLayer
from .passthrough import DropoutLayer, UnknownLayer
from .pool import MaxpoolLayer
from .route import RouteLayer, ShortcutLayer
from .upsample import UpsampleLayer

__all__ = [
    "LAYERS",
    "UNSUPPORTED",
    "BatchnormLayer",
    "BitsStep",
    "BuildContext",
    "ConvolutionalLayer",
    "DropoutLayer",
    "FloatSource",
    "Layer",
    "Layout",
    "Logits",
    "MaxpoolLayer",
    "NetParams",
    "RegionLayer",
    "RouteLayer",
    "Shape",
    "ShortcutLayer",
    "UnknownLayer",
    "UpsampleLayer",
    "YoloLayer",
    "build_layer",
    "natural_layout",
]

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
