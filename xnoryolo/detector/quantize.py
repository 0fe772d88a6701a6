"""int8 arithmetic of the non-binary convolutions: the written contract and NumPy reference of
`xnoryolo.kernels.qconv.Int8Conv` (same signature, same integers, same floats).

* Weights: per output channel, symmetric: `w_scale[f] = max|w'[f]| / wtop` (1 where a filter
  is all zero), `qw = clip(rint(w' / w_scale), -wtop, wtop)` as int8, computed once from the
  BN-folded float32 weights (so a packed file needs only its float weights and the scales).
  `wtop` (`ActQuant.weight_top`) is 127, or 64 for the first conv of a model calibrated to 7
  bits: products of 8-bit pixels and weights up to 64 fit vpmaddubsw's int16 pairs too
  (2 * 255 * 64 = 32640 <= 32767), so the whole network runs that tile.
* Activations: one scale and zero point per layer input (`ActQuant`), calibrated on frames
  (`xnoryolo.detector.calibrate`): `q = clamp(floor(x * (1 / scale) + 0.5) + zero, 0, top)`,
  float32 arithmetic. `top` is 255 (8 bits), or 127 for a layer calibrated to 7 bits: products
  of 7-bit bytes and int8 weights fit vpmaddubsw's int16 pairs, which CPUs without VNNI then
  run exactly at twice the rate of widened bytes (kernels/README.md). The network input
  (x = byte / 255) uses scale 1/255, zero 0, top 255: its bytes are the pixels themselves
  (the letterbox's 0.5 grey becomes 127: 1 / float32(1/255) is a hair under 255).
* Sums: `acc[f, p] = sum_taps qw[f, tap] * (q[tap] - zero)`, int32; padding taps are q = zero
  (the float 0.0), so they add nothing.
* Output: `y = float32(acc) * (w_scale[f] * scale) + bias[f]` (two float32 roundings, no FMA),
  then the activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import activate
from .ops import ConvSpec, im2col, maxpool

F32 = np.float32
PRECISIONS = ("f32", "int8")
# Activation bits -> the largest byte.
ACT_TOPS = {8: 255, 7: 127}
# Largest int8 weight: 127, or PAIR_WEIGHT_TOP where 8-bit bytes must fit vpmaddubsw's pairs.
WEIGHT_TOP = 127
PAIR_WEIGHT_TOP = 64
WEIGHT_TOPS = (WEIGHT_TOP, PAIR_WEIGHT_TOP)
# The network input: byte / 255, so its bytes are exact integers of this scale.
INPUT_SCALE = float(F32(1) / F32(255))


@dataclass(frozen=True)
class ActQuant:
    """How one int8 layer quantises: its float input to uint8, q = round(x / scale) + zero, at
    most `top` (255, or 127 for 7 bits), and its weights to -weight_top .. weight_top."""

    scale: float
    zero: int
    top: int = 255
    weight_top: int = WEIGHT_TOP

    def __post_init__(self) -> None:
        if not (self.scale > 0 and np.isfinite(self.scale)):
            raise ValueError(f"activation scale {self.scale} must be a positive finite number")
        if self.top not in ACT_TOPS.values():
            raise ValueError(f"largest byte {self.top}: 255 (8 bits) or 127 (7 bits)")
        if not 0 <= self.zero <= self.top:
            raise ValueError(f"zero point {self.zero} is not in 0..{self.top}")
        if self.weight_top not in WEIGHT_TOPS:
            raise ValueError(f"largest weight {self.weight_top}: one of {WEIGHT_TOPS}")

    def same_bytes(self, other: ActQuant) -> bool:
        """Whether both quantise a float input to the same bytes (weights aside)."""
        return (self.scale, self.zero, self.top) == (other.scale, other.zero, other.top)

    def to_json(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"scale": float(self.scale), "zero": int(self.zero)}
        if self.top != 255:
            out["top"] = int(self.top)
        if self.weight_top != WEIGHT_TOP:
            out["weight_top"] = int(self.weight_top)
        return out


INPUT_QUANT = ActQuant(INPUT_SCALE, 0)


def input_quant(bits: int) -> ActQuant:
    """The network input's quantisation in a model calibrated to `bits` activation bits: the
    pixels themselves; at 7 bits with weights up to PAIR_WEIGHT_TOP, so that the first conv
    runs the same vpmaddubsw tile as the 7-bit layers."""
    if bits not in ACT_TOPS:
        raise ValueError(f"activation bits {bits}: use 8 or 7")
    return INPUT_QUANT if bits == 8 else ActQuant(INPUT_SCALE, 0, 255, PAIR_WEIGHT_TOP)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


def quantize_weights(folded: np.ndarray, top: int = WEIGHT_TOP) -> tuple[np.ndarray, np.ndarray]:
    """BN-folded float weights (F, ...) -> (int8 (F, K) in (c, ky, kx) order, scale f32 (F,)),
    weights in -top .. top."""
    if top not in WEIGHT_TOPS:
        raise ValueError(f"largest weight {top}: one of {WEIGHT_TOPS}")
    w = np.asarray(folded, F32).reshape(folded.shape[0], -1)
    peak = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0], F32)
    scale = np.where(peak > 0, peak / F32(top), F32(1)).astype(F32)
    q = np.clip(np.rint(w / scale[:, None]), -top, top).astype(np.int8)
    return q, scale


def quantize_activations(x: np.ndarray, quant: ActQuant) -> np.ndarray:
    """float32 x -> uint8 q = clamp(floor(x * (1/scale) + 0.5) + zero, 0, top)."""
    inv = F32(1) / F32(quant.scale)
    u = np.asarray(x, F32) * inv + F32(0.5)
    u = np.nan_to_num(u, nan=-np.inf)
    f = np.clip(np.floor(u), -quant.zero, quant.top - quant.zero)
    return (f + quant.zero).astype(np.uint8)


def int8_sums(x: np.ndarray, qweights: np.ndarray, quant: ActQuant, spec: ConvSpec) -> np.ndarray:
    """int32 (F, out_h, out_w): sum of qw * (q - zero) over each window (padding: q = zero).
    x: float32, or uint8 already quantised with `quant`."""
    q = x if x.dtype == np.uint8 else quantize_activations(x, quant)
    q = q.astype(np.float64) - quant.zero
    g = spec.groups
    cg, fg = spec.c // g, spec.filters // g
    wmat = np.asarray(qweights, np.float64).reshape(spec.filters, -1)
    out = np.empty((spec.filters, spec.out_h * spec.out_w), np.float64)
    for j in range(g):
        cols = im2col(
            q[j * cg : (j + 1) * cg], spec, 0.0, spec.padding * spec.dilation, spec.dilation
        )
        # float64 sums of integers below 2**53 are exact
        np.matmul(wmat[j * fg : (j + 1) * fg], cols, out=out[j * fg : (j + 1) * fg])
    return out.astype(np.int32).reshape(spec.filters, spec.out_h, spec.out_w)


def int8_multipliers(w_scale: np.ndarray, quant: ActQuant) -> np.ndarray:
    """w_scale[f] * scale in float32: what turns a filter's sums back into floats."""
    return np.asarray(w_scale, F32) * F32(quant.scale)


def int8_output_transform(
    sums: np.ndarray, mult: np.ndarray, bias: np.ndarray, activation: str
) -> np.ndarray:
    y = sums.astype(F32) * mult[:, None, None]
    y = y + np.asarray(bias, F32)[:, None, None]
    return activate(y, activation)


def int8_conv(
    x: np.ndarray,
    qweights: np.ndarray,
    w_scale: np.ndarray,
    bias: np.ndarray,
    spec: ConvSpec,
    quant: ActQuant,
    activation: str,
) -> np.ndarray:
    """The reference int8 convolution: x (C,H,W) f32 -> (F, out_h, out_w) f32."""
    sums = int8_sums(x, qweights, quant, spec)
    return int8_output_transform(sums, int8_multipliers(w_scale, quant), bias, activation)


def int8_conv_bytes(
    x: np.ndarray,
    qweights: np.ndarray,
    w_scale: np.ndarray,
    bias: np.ndarray,
    spec: ConvSpec,
    quant: ActQuant,
    activation: str,
    out_quant: ActQuant,
    pool: tuple[int, int, int, int, int, int] | None = None,
) -> np.ndarray:
    """The bytes hand-off between int8 layers: int8_conv's floats, darknet's maxpool of them
    when `pool` = (size, stride_y, stride_x, padding, pool_h, pool_w) is given, quantised with
    the next layer's `out_quant` (Int8Conv.run_bytes pools the bytes instead: quantisation is
    monotone, so the max of the bytes is the byte of the max)."""
    y = int8_conv(x, qweights, w_scale, bias, spec, quant, activation)
    if pool is not None:
        y = maxpool(y, *pool)
    return quantize_activations(y, out_quant)
