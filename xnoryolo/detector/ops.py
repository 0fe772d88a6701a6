"""NumPy reference arithmetic of darknet's convolutions: the contract every fast kernel matches.

Binary (XNOR) convention, as darknet's CPU bit path computes it (SEMANTICS.md §4.2):
  * sign(v) = +1 if v > 0 else -1, for inputs and for the BN-folded weights w' (so 0 and -0 are -1);
  * padding taps are input -1 (bit 0), never 0;
  * per-filter scale m[f] = mean(|w'[f]|); no input scaling;
  * y[f, p] = float(dot_f,p) * m[f] + bias'[f], where dot = sum over taps of sign(w')*sign(x)
    = 2*popcount(xnor) - K; then the activation;
  * dilation is ignored by the bit path (output size never includes it).
Float convolution: zero padding of `padding * dilation` taps, dilation honoured, groups, then
bias and activation (darknet's im2col_cpu_ext + gemm + add_bias + activate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import activate

F32 = np.float32


@dataclass(frozen=True)
class ConvSpec:
    """Geometry of one convolution; output size uses darknet's formula (no dilation in it)."""

    c: int
    h: int
    w: int
    filters: int
    size: int
    stride_y: int = 1
    stride_x: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def out_h(self) -> int:
        return (self.h + 2 * self.padding - self.size) // self.stride_y + 1

    @property
    def out_w(self) -> int:
        return (self.w + 2 * self.padding - self.size) // self.stride_x + 1

    @property
    def k(self) -> int:
        """Taps per filter (per group)."""
        return (self.c // self.groups) * self.size * self.size


def im2col(x: np.ndarray, spec: ConvSpec, pad_value: float, pad: int, dilation: int) -> np.ndarray:
    """(C, H, W) -> (C*size*size, out_h*out_w), row order (c, ky, kx) like darknet's im2col."""
    c, h, w = x.shape
    oh, ow, k = spec.out_h, spec.out_w, spec.size
    need_h = (oh - 1) * spec.stride_y + (k - 1) * dilation + 1
    need_w = (ow - 1) * spec.stride_x + (k - 1) * dilation + 1
    bottom = max(0, need_h - pad - h)
    right = max(0, need_w - pad - w)
    xp = np.pad(x, ((0, 0), (pad, bottom), (pad, right)), constant_values=pad_value)
    cols = np.empty((c, k, k, oh, ow), dtype=x.dtype)
    for ky in range(k):
        y0 = ky * dilation
        for kx in range(k):
            x0 = kx * dilation
            cols[:, ky, kx] = xp[
                :,
                y0 : y0 + (oh - 1) * spec.stride_y + 1 : spec.stride_y,
                x0 : x0 + (ow - 1) * spec.stride_x + 1 : spec.stride_x,
            ]
    return cols.reshape(c * k * k, oh * ow)


def float_conv(
    x: np.ndarray, weights: np.ndarray, bias: np.ndarray, spec: ConvSpec, activation: str
) -> np.ndarray:
    """Float convolution: x (C,H,W) f32, weights (F, C/groups, k, k) f32 (BN folded), bias (F,)."""
    g = spec.groups
    cg, fg = spec.c // g, spec.filters // g
    out = np.empty((spec.filters, spec.out_h * spec.out_w), dtype=F32)
    wmat = weights.reshape(spec.filters, -1)
    for j in range(g):
        cols = im2col(
            x[j * cg : (j + 1) * cg], spec, 0.0, spec.padding * spec.dilation, spec.dilation
        )
        np.matmul(wmat[j * fg : (j + 1) * fg], cols, out=out[j * fg : (j + 1) * fg])
    out += bias[:, None]
    return activate(out, activation).reshape(spec.filters, spec.out_h, spec.out_w)


def binarize_weights(folded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BN-folded float weights (F, C, k, k) -> (signs int8 (F, C, k, k) in {-1,+1}, scale f32 (F,)).

    scale = mean|w'| per filter (darknet sums in float; the sum here is in double, then rounded,
    which stays within darknet's own rounding noise)."""
    f = folded.shape[0]
    flat = folded.reshape(f, -1)
    scale = (np.abs(flat.astype(np.float64)).sum(axis=1) / flat.shape[1]).astype(F32)
    signs = np.where(folded > 0, 1, -1).astype(np.int8)
    return signs, scale


def binary_dot(x: np.ndarray, signs: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Integer part of the XNOR conv: (F, out_h*out_w) int32 = sum of sign(w')*sign(x)."""
    xb = np.where(x > 0, F32(1), F32(-1))
    cols = im2col(xb, spec, -1.0, spec.padding, 1)
    # +-1 products summed in float32 are exact integers for K < 2**24.
    dot = signs.reshape(spec.filters, -1).astype(F32) @ cols
    return dot.astype(np.int32)


def binary_output_transform(
    dot: np.ndarray, scale: np.ndarray, bias: np.ndarray, activation: str
) -> np.ndarray:
    """dot (F, N) int -> activation(float(dot) * scale[f] + bias[f]) as float32 (F, N)."""
    y = dot.astype(F32) * scale[:, None]
    y += bias[:, None]
    return activate(y, activation)


def binary_conv(
    x: np.ndarray,
    signs: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    spec: ConvSpec,
    activation: str,
) -> np.ndarray:
    """XNOR convolution of x (C,H,W) f32 with sign weights (F,C,k,k) int8; returns (F,oh,ow) f32."""
    dot = binary_dot(x, signs, spec)
    y = binary_output_transform(dot, scale, bias, activation)
    return y.reshape(spec.filters, spec.out_h, spec.out_w)


def maxpool(
    x: np.ndarray, size: int, stride_y: int, stride_x: int, padding: int, out_h: int, out_w: int
) -> np.ndarray:
    """Darknet maxpool: window origin -padding/2, taps outside the image ignored (-FLT_MAX)."""
    c, h, w = x.shape
    off = padding // 2
    need_h = (out_h - 1) * stride_y + size
    need_w = (out_w - 1) * stride_x + size
    xp = np.pad(
        x,
        ((0, 0), (off, max(0, need_h - off - h)), (off, max(0, need_w - off - w))),
        constant_values=-np.finfo(F32).max,
    )
    out = np.full((c, out_h, out_w), -np.finfo(F32).max, dtype=F32)
    for ky in range(size):
        for kx in range(size):
            np.maximum(
                out,
                xp[
                    :,
                    ky : ky + (out_h - 1) * stride_y + 1 : stride_y,
                    kx : kx + (out_w - 1) * stride_x + 1 : stride_x,
                ],
                out=out,
            )
    return out


def pack_signs(x: np.ndarray, shape: tuple[int, int, int], pad: int) -> np.ndarray:
    """Reference for the kernels' packed sign bits (kernels/README.md): uint64 image `shape`
    (hp, wp, ceil(C/64)) with pixel (y, x) of x (C, H, W) at (y + pad, x + pad); bit c % 64 of
    word c // 64 is 1 iff x[c] > 0; border and tail bits 0 (= input -1)."""
    c, h, w = x.shape
    hp, wp, cw = shape
    if cw != (c + 63) // 64 or hp < h + pad or wp < w + pad:
        raise ValueError(f"shape {shape} (pad {pad}) cannot hold {x.shape}")
    bits = np.zeros((h, w, cw * 64), dtype=np.uint8)
    bits[:, :, :c] = (x > 0).transpose(1, 2, 0)
    out = np.zeros(shape, dtype=np.uint64)
    out[pad : pad + h, pad : pad + w] = np.packbits(bits, axis=2, bitorder="little").view("<u8")
    return out
