"""int8 calibration: the scale and zero point of every non-binary conv's input, measured on
real frames with the network in f32 (detector/quantize.py says how they are used).

The network input needs no measuring: it is byte / 255, so its quantisation is the pixel grid
(`quantize.input_quant`). Every other input gets the range [lo, hi] (always holding 0.0, so
that padding is exact) from the mean over frames of each frame's `percentile` / 100 -
`percentile` percentiles, mapped onto 0..top (255; 127 for 7-bit activations, `bits=7`):
scale = (hi - lo) / top, zero = round(-lo / scale). The network input stays 8 bits (pixels);
at 7 bits the first conv's weights go to -64 .. 64 instead, which keeps its products in
vpmaddubsw's range as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .layers import ConvolutionalLayer
from .quantize import ACT_TOPS, ActQuant, input_quant

if TYPE_CHECKING:
    from .network import Network

DEFAULT_PERCENTILE = 99.99


def _targets(network: Network) -> list[ConvolutionalLayer]:
    return [ly for ly in network.layers if isinstance(ly, ConvolutionalLayer) and not ly.xnor]


def range_quant(lo: float, hi: float, top: int = 255) -> ActQuant:
    """The quantisation of [min(lo, 0), max(hi, 0)] onto bytes 0..top."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not hi > lo:
        return ActQuant(1.0, 0, top)
    scale = float(np.float32((hi - lo) / float(top)))
    zero = int(np.clip(round(-lo / scale), 0, top))
    return ActQuant(scale, zero, top)


def measure(
    network: Network,
    tensors: Iterable[np.ndarray],
    percentile: float = DEFAULT_PERCENTILE,
    bits: int = 8,
) -> tuple[dict[int, ActQuant], int]:
    """(quantisation per non-binary conv index, frames used) from network input tensors
    ((c, h, w) float32, as Detector.preprocess makes them); the network runs as prepared
    (prepare it f32 first). `bits`: 8, or 7 for every input but the network's own (whose
    conv then takes weights up to 64)."""
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile {percentile} must be in (50, 100]")
    first = input_quant(bits)  # refuses bits other than 8 and 7 before any frame runs
    targets = _targets(network)
    lows: dict[int, list[float]] = {ly.index: [] for ly in targets}
    highs: dict[int, list[float]] = {ly.index: [] for ly in targets}
    frames = 0
    for tensor in tensors:
        outputs = network.forward(tensor, keep=True)
        frames += 1
        for ly in targets:
            if ly.index == 0:
                continue
            x = outputs[ly.index - 1].ravel()
            lo, hi = np.percentile(x, [100.0 - percentile, percentile])
            lows[ly.index].append(float(lo))
            highs[ly.index].append(float(hi))
    if frames == 0:
        raise ValueError("no frames to calibrate on")
    quants = {}
    for ly in targets:
        if ly.index == 0:
            quants[0] = first
        else:
            quants[ly.index] = range_quant(
                float(np.mean(lows[ly.index])), float(np.mean(highs[ly.index])), ACT_TOPS[bits]
            )
    return quants, frames


def apply(network: Network, quants: dict[int, ActQuant]) -> None:
    """Give the convs their input quantisation (prepare() again to build int8 kernels)."""
    for ly in _targets(network):
        ly.act_quant = quants.get(ly.index)


def calibrate(
    network: Network,
    tensors: Iterable[np.ndarray],
    percentile: float = DEFAULT_PERCENTILE,
    precision: str = "int8",
    bits: int = 8,
) -> int:
    """Calibrate a prepared network on input tensors and prepare it again in `precision`
    (same backend); returns how many frames were used. What `xnoryolo pack --calibrate` and
    distillation call."""
    backend = network.backend
    assert backend is not None, "prepare() the network first"
    if network.precision != "f32":
        network.prepare(backend, precision="f32")
    quants, frames = measure(network, tensors, percentile, bits)
    apply(network, quants)
    network.prepare(backend, precision=precision)
    return frames
