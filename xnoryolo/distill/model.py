"""A PyTorch module built from an engine `Network`, computing darknet's inference arithmetic.

Every convolution holds its weights in BN-folded form (w', b'): that is what darknet runs after
`fuse_conv_batchnorm`, so training w' directly means the exported file reproduces the trained
network exactly. BatchNorm statistics are therefore frozen (inference mode), as in fine-tuning.

XNOR layers (SEMANTICS.md §4.2.4): y = mean|w'_f| * conv(pad(sign(x), -1), sign(w')) + b'_f with
sign(v) = +1 iff v > 0, padding taps -1, no input scaling, dilation ignored. Gradients pass the
signs by the straight-through estimator (identity, clipped to |v| <= 1); the per-filter scale is
differentiated normally. `bin_output` is honoured through the engine's effective activation.

`export_weights` writes a darknet `.weights` file (header 0.2.5 + uint64 seen). For layers with
`batch_normalize` the BN arrays are written as scales=1, mean=0 and a variance whose darknet fold
factor 1/sqrt(var + 1e-5) rounds every float32 weight back to itself, so darknet's (and the
engine's) fold reproduces the trained w', b' bit for bit.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xnoryolo.detector import Network

# scales=1, mean=0 and this variance make darknet's BN fold an exact no-op
from xnoryolo.detector.layers import (
    ConvolutionalLayer,
    DropoutLayer,
    Layer,
    MaxpoolLayer,
    RegionLayer,
    RouteLayer,
    ShortcutLayer,
    UnknownLayer,
    UpsampleLayer,
    YoloLayer,
)
from xnoryolo.detector.packed import IDENTITY_VARIANCE


class DistillError(ValueError):
    """A network the distiller cannot train or export exactly."""


class SignSTE(torch.autograd.Function):
    """sign(v) = +1 if v > 0 else -1 forward; clipped identity backward: the gradient passes
    where |v| <= window (a number, or a tensor broadcast against v)."""

    @staticmethod
    def forward(ctx, x: Tensor, window: Tensor | float = 1.0) -> Tensor:
        ctx.save_for_backward(x)
        ctx.window = window
        return torch.where(x > 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.window).to(grad.dtype), None


def sign_ste(x: Tensor, window: Tensor | float = 1.0) -> Tensor:
    return SignSTE.apply(x, window)


def channel_window(x: Tensor, width: float) -> Tensor:
    """`width` standard deviations of each channel of x (N, C, H, W) over the batch, as the
    STE window of sign(x). With BN folded into the previous layer, a binary layer's input has
    whatever scale the teacher's BN gave it (median |x| 0.4-5 across yolov3-tiny's layers), so
    a fixed window of 1 blocks most of the gradient on the wide layers and little on others."""
    return (width * x.detach().std(dim=(0, 2, 3), keepdim=True)).clamp_min(1e-6)


def _softplus(x: Tensor) -> Tensor:
    return torch.where(x > 20, x, torch.where(x < -20, torch.exp(x), torch.log1p(torch.exp(x))))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "leaky": lambda x: torch.where(x > 0, x, 0.1 * x),
    "revleaky": lambda x: torch.where(x > 0, x, 0.1 * x),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "relu6": lambda x: x.clamp(0, 6),
    "logistic": torch.sigmoid,
    "tanh": torch.tanh,
    "mish": lambda x: x * torch.tanh(_softplus(x)),
    "swish": lambda x: x * torch.sigmoid(x),
    "hard_mish": lambda x: torch.where(
        x > 0, x, torch.where(x > -2, x * x / 2 + x, torch.zeros_like(x))
    ),
    "elu": lambda x: torch.where(x >= 0, x, torch.exp(x) - 1),
    "relie": lambda x: torch.where(x > 0, x, 0.01 * x),
    "hardtan": lambda x: x.clamp(-1, 1),
    "loggy": lambda x: 2 * torch.sigmoid(x) - 1,
}


def _act(name: str, where: str) -> Callable[[Tensor], Tensor]:
    fn = ACTIVATIONS.get(name)
    if fn is None:
        raise DistillError(f"{where}: activation {name} is not supported for distillation")
    return fn


def conv_out(size: int, pad: int, k: int, stride: int) -> int:
    return (size + 2 * pad - k) // stride + 1


class Conv(nn.Module):
    """Darknet convolution with folded weights; XNOR when the layer has xnor=1."""

    def __init__(self, layer: ConvolutionalLayer) -> None:
        super().__init__()
        s = layer.spec
        if layer.dontload or (layer.batch_normalize and layer.dontloadscales):
            raise DistillError(f"{layer.where}: dontload/dontloadscales cannot be exported")
        self.spec = s
        self.xnor = layer.xnor
        # progressive binarization: an XNOR layer may run in float (its latent weights, the
        # cfg's own activation) until its turn comes; export needs every one of them binary
        self.binary = layer.xnor
        self.act = _act(layer.effective_activation, layer.where)
        self.float_act = _act(layer.activation, layer.where)
        # STE window of the input signs: None = |x| <= 1, else this many per-channel stds
        self.ste_width: float | None = None
        # the last pre-activation output, kept while `record` is set (feature matching)
        self.record = False
        self.pre: Tensor | None = None
        # float layers may train float16-exact weights (see DarknetModule): lossless f2 packing
        self.float16 = False
        self.weight = nn.Parameter(torch.zeros(s.filters, s.c // s.groups, s.size, s.size))
        self.bias = nn.Parameter(torch.zeros(s.filters))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def scale(self) -> Tensor:
        """Per-filter mean|w'|: summed in double like the engine, then rounded to float32."""
        k = self.weight[0].numel()
        return (self.weight.double().abs().sum(dim=(1, 2, 3)) / k).float()

    def effective_weight(self) -> Tensor:
        """The weights the layer runs (and exports): float16-rounded if `float16` (STE)."""
        w: Tensor = self.weight
        if self.float16 and not self.xnor:
            w = w + (w.half().float() - w).detach()
        return w

    def forward(self, x: Tensor) -> Tensor:
        s = self.spec
        _, _, h, w = x.shape
        oh, ow = (
            conv_out(h, s.padding, s.size, s.stride_y),
            conv_out(w, s.padding, s.size, s.stride_x),
        )
        if self.binary:
            # darknet's bit path: dilation ignored, padding taps are bit 0 = input -1
            bottom = max(0, (oh - 1) * s.stride_y + s.size - s.padding - h)
            right = max(0, (ow - 1) * s.stride_x + s.size - s.padding - w)
            win = 1.0 if self.ste_width is None else channel_window(x, self.ste_width)
            xb = F.pad(sign_ste(x, win), (s.padding, right, s.padding, bottom), value=-1.0)
            dot = F.conv2d(xb, sign_ste(self.weight), stride=(s.stride_y, s.stride_x))
            dot = dot[:, :, :oh, :ow]
            # +-1 sums are integers; rounding guards against any non-direct conv algorithm
            dot = dot + (torch.round(dot) - dot).detach()
            y = dot * self.scale().view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        else:
            p, d = s.padding * s.dilation, s.dilation
            bottom = max(0, (oh - 1) * s.stride_y + (s.size - 1) * d + 1 - p - h)
            right = max(0, (ow - 1) * s.stride_x + (s.size - 1) * d + 1 - p - w)
            xp = F.pad(x, (p, right, p, bottom))
            wt = self.effective_weight()
            y = F.conv2d(xp, wt, self.bias, (s.stride_y, s.stride_x), 0, d, s.groups)
            y = y[:, :, :oh, :ow]
        if self.record:
            self.pre = y
        return self.act(y) if self.binary or not self.xnor else self.float_act(y)


class Maxpool(nn.Module):
    """Window origin -padding/2; taps outside the image never win."""

    def __init__(self, layer: MaxpoolLayer) -> None:
        super().__init__()
        self.size, self.sy, self.sx = layer.size, layer.stride_y, layer.stride_x
        self.padding, self.depth = layer.padding, layer.depth
        self.out_c = layer.out_shape[0]

    def forward(self, x: Tensor) -> Tensor:
        if self.depth:
            c = x.shape[1]
            parts = [x[:, g :: self.out_c].amax(dim=1) for g in range(min(self.out_c, c))]
            return torch.stack(parts, dim=1)
        _, _, h, w = x.shape
        oh = (h + self.padding - self.size) // self.sy + 1
        ow = (w + self.padding - self.size) // self.sx + 1
        off = self.padding // 2
        bottom = max(0, (oh - 1) * self.sy + self.size - off - h)
        right = max(0, (ow - 1) * self.sx + self.size - off - w)
        xp = F.pad(x, (off, right, off, bottom), value=-3.4028234663852886e38)
        return F.max_pool2d(xp, self.size, (self.sy, self.sx))[:, :, :oh, :ow]


class Upsample(nn.Module):
    def __init__(self, layer: UpsampleLayer) -> None:
        super().__init__()
        self.stride, self.scale, self.reverse = layer.stride, layer.scale, layer.reverse

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        if self.reverse:
            b, c, h, w = x.shape
            oh, ow = h // s, w // s
            y = x[:, :, : oh * s, : ow * s].reshape(b, c, oh, s, ow, s).sum(dim=(3, 5))
        else:
            y = x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
        return y if self.scale == 1.0 else y * self.scale


class Yolo(nn.Module):
    def __init__(self, layer: YoloLayer) -> None:
        super().__init__()
        self.n, self.classes = len(layer.mask), layer.classes
        self.new_coords, self.scale_x_y = layer.new_coords, layer.scale_x_y

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        p = x.view(b, self.n, self.classes + 5, h, w)
        if not self.new_coords:
            p = torch.cat([torch.sigmoid(p[:, :, :2]), p[:, :, 2:4], torch.sigmoid(p[:, :, 4:])], 2)
        if self.scale_x_y != 1.0:
            s = self.scale_x_y
            p = torch.cat([p[:, :, :2] * s - 0.5 * (s - 1), p[:, :, 2:]], 2)
        return p.reshape(x.shape)


class Region(nn.Module):
    """Output in darknet's HWC-flattened layout (h, w, anchor, entry) per batch item."""

    def __init__(self, layer: RegionLayer) -> None:
        super().__init__()
        self.num, self.size, self.softmax = (
            layer.num,
            layer.coords + 1 + layer.classes,
            layer.softmax,
        )

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        p = x.view(b, self.num, self.size, h, w).permute(0, 3, 4, 1, 2)
        cls = torch.softmax(p[..., 5:], dim=-1) if self.softmax else p[..., 5:]
        return torch.cat([p[..., :4], torch.sigmoid(p[..., 4:5]), cls], dim=-1)


class DarknetModule(nn.Module):
    """Torch twin of an engine Network; `forward` returns every layer's output (NCHW batches)."""

    def __init__(self, network: Network, float16: bool = False) -> None:
        """float16: float convs run (and export) float16-representable weights, trained with
        float32 master weights; a packed .xnor then stores them in half the bytes, exactly."""
        super().__init__()
        self.network = network
        mods: list[nn.Module] = []
        for layer in network.layers:
            mods.append(self._build(layer))
        self.mods = nn.ModuleList(mods)
        for m in self.mods:
            if isinstance(m, Conv):
                m.float16 = float16

    @staticmethod
    def _build(layer: Layer) -> nn.Module:
        if isinstance(layer, ConvolutionalLayer):
            return Conv(layer)
        if isinstance(layer, MaxpoolLayer):
            return Maxpool(layer)
        if isinstance(layer, UpsampleLayer):
            return Upsample(layer)
        if isinstance(layer, YoloLayer):
            return Yolo(layer)
        if isinstance(layer, RegionLayer):
            return Region(layer)
        if isinstance(layer, RouteLayer | DropoutLayer | UnknownLayer):
            return nn.Identity()
        if isinstance(layer, ShortcutLayer):
            if layer.weights_type != "none":
                raise DistillError(f"{layer.where}: weighted shortcuts are not supported")
            _act(layer.activation, layer.where)
            return nn.Identity()
        raise DistillError(f"{layer.where}: [{layer.type}] is not supported for distillation")

    @property
    def convs(self) -> list[tuple[ConvolutionalLayer, Conv]]:
        return [
            (ly, m)
            for ly, m in zip(self.network.layers, self.mods, strict=True)
            if isinstance(ly, ConvolutionalLayer) and isinstance(m, Conv)
        ]

    def forward_layer(self, i: int, x: Tensor, outputs: list[Tensor]) -> Tensor:
        layer, mod = self.network.layers[i], self.mods[i]
        if isinstance(layer, RouteLayer):
            parts = []
            for j in layer.sources:
                src = outputs[j]
                part = src.shape[1] // layer.groups
                parts.append(src[:, layer.group_id * part : (layer.group_id + 1) * part])
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if isinstance(layer, ShortcutLayer):
            # darknet adds flat buffers; a smaller `from` only covers the first elements
            b = x.shape[0]
            flat = x.reshape(b, -1)
            for j in layer.sources:
                src = outputs[j].reshape(b, -1)
                n = min(src.shape[1], flat.shape[1])
                flat = torch.cat([flat[:, :n] + src[:, :n], flat[:, n:]], dim=1)
            return _act(layer.activation, layer.where)(flat.view_as(x))
        return mod(x)

    def forward(self, x: Tensor, upto: int | None = None) -> list[Tensor]:
        """Every layer's output; with `upto`, layers 0..upto only (a prefix)."""
        outputs: list[Tensor] = []
        for i in range(len(self.mods) if upto is None else upto + 1):
            x = self.forward_layer(i, x, outputs)
            outputs.append(x)
        return outputs

    # ------------------------------------------------------------------------ weights
    def load_from(self, network: Network) -> None:
        """Copy BN-folded conv weights from an engine network (loaded, prepared or not)."""
        src_convs = [ly for ly in network.layers if isinstance(ly, ConvolutionalLayer)]
        if len(src_convs) != len(self.convs):
            raise DistillError(
                f"{network.path} has {len(src_convs)} conv layers, the student {len(self.convs)}"
            )
        for src, (dst_layer, mod) in zip(src_convs, self.convs, strict=True):
            if src.weights is None or src.biases is None:
                raise DistillError(f"{src.where}: no weights loaded")
            if src.folded_bias is not None:  # prepared: weights are already folded
                w, b = src.weights, src.folded_bias
            else:
                w, b = src.fold_batchnorm()
            if tuple(w.shape) != tuple(mod.weight.shape):
                raise DistillError(
                    f"{src.where}: weights {tuple(w.shape)} do not fit {dst_layer.where} "
                    f"{tuple(mod.weight.shape)}"
                )
            with torch.no_grad():
                mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w, np.float32)))
                mod.bias.copy_(torch.from_numpy(np.ascontiguousarray(b, np.float32)))

    def weights_bytes(self, seen: int = 0) -> bytes:
        """Darknet .weights bytes whose fold gives exactly this module's w', b'."""
        pending = [ly.where for ly, m in self.convs if m.xnor and not m.binary]
        if pending:
            raise DistillError(f"XNOR layers still trained in float: {', '.join(pending)}")
        parts = [struct.pack("<3iQ", 0, 2, 5, seen)]
        for layer, mod in self.convs:
            n = layer.spec.filters
            parts.append(mod.bias.detach().float().numpy().astype("<f4").tobytes())
            if layer.batch_normalize:
                parts.append(np.ones(n, "<f4").tobytes())
                parts.append(np.zeros(n, "<f4").tobytes())
                parts.append(np.full(n, IDENTITY_VARIANCE, "<f4").tobytes())
            parts.append(mod.effective_weight().detach().numpy().astype("<f4").tobytes())
        return b"".join(parts)

    def export_weights(self, path: str | Path, seen: int = 0) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_bytes(self.weights_bytes(seen))
        tmp.replace(p)
        return p


def build_student(
    network: Network, init: Network | None = None, float16: bool = False
) -> DarknetModule:
    """Module for `network` (a parsed cfg), initialised from `init` (e.g. the teacher)."""
    module = DarknetModule(network, float16)
    if init is not None:
        module.load_from(init)
    return module
