"""The bytes plan: which int8 convolutions hand their output to the next int8 convolution as
that layer's quantised input bytes instead of floats, on the detect path
(`Network.forward(keep=False)`; kernels/README.md, "int8 layers").

Public API:

* `plan_bytes(layers, bits_plan) -> BytesPlan`: made after prepare(), from the kernels'
  abilities (backends.ByteConv); `Network.bytes_plan` keeps it.
* `BytesStep`: how one planned layer runs.
* `run_step(layer, x, step)`: runs it.

The bytes are exactly those the reader would quantise the floats to (the writer applies the
reader's scale and zero point to the very floats it would have written), and a maxpool between
the two runs on the bytes (quantisation is monotone, so the max of the bytes is the byte of the
max): the network's outputs are the same as with floats, with a quarter of the traffic.
Route and upsample between int8 layers stay float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .backends import ByteConv
from .bits_plan import BitsPlan, readers_of
from .layers import ConvolutionalLayer, Layer, MaxpoolLayer
from .quantize import ActQuant

__all__ = ["BytesPlan", "BytesStep", "plan_bytes", "run_step"]


@dataclass(frozen=True)
class BytesStep:
    """An int8 conv writing the reader's bytes (`quant`), through `pool` if set (that pool's
    step is then `done`: the conv did its work)."""

    quant: ActQuant | None = None
    pool: MaxpoolLayer | None = None
    done: bool = False


BytesPlan = dict[int, BytesStep]


def _byte_conv(layer: Layer) -> ByteConv | None:
    if isinstance(layer, ConvolutionalLayer) and layer.int8 and isinstance(layer.kernel, ByteConv):
        return layer.kernel
    return None


def plan_bytes(layers: Sequence[Layer], bits_plan: BitsPlan) -> BytesPlan:
    """An int8 conv whose only reader is an int8 conv (directly, or through a maxpool whose
    only reader that conv is) writes that conv's bytes; layers of the bits plan keep theirs."""
    readers, external = readers_of(layers)

    def only_next(i: int) -> bool:
        return i not in external and i not in bits_plan and readers[i] == [(i + 1, True)]

    plan: BytesPlan = {}
    for i, layer in enumerate(layers):
        kernel = _byte_conv(layer)
        if kernel is None or not kernel.emits_bytes or not only_next(i):
            continue
        j, pool = i + 1, None
        nxt = layers[j]
        if isinstance(nxt, MaxpoolLayer) and not nxt.depth and only_next(j):
            j, pool = j + 1, nxt
        reader = layers[j]
        if _byte_conv(reader) is None or j in plan:
            continue
        assert isinstance(reader, ConvolutionalLayer) and reader.act_quant is not None
        plan[i] = BytesStep(reader.act_quant, pool)
        if pool is not None:
            plan[i + 1] = BytesStep(done=True)
    return plan


def run_step(layer: Layer, x: np.ndarray, step: BytesStep) -> np.ndarray:
    """The planned layer's bytes (or x itself for a pool that the conv before ran)."""
    if step.done:
        return x
    kernel = _byte_conv(layer)
    assert kernel is not None and step.quant is not None, "not a planned int8 conv"
    pool = step.pool
    geometry = None
    if pool is not None:
        _, ph, pw = pool.out_shape
        geometry = (pool.size, pool.stride_y, pool.stride_x, pool.padding, ph, pw)
    return kernel.run_bytes(x, step.quant.scale, step.quant.zero, geometry, step.quant.top)
