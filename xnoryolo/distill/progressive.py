"""Binarizing a student a layer at a time, and keeping its binary layers close to the teacher.

* `feature_loss`: every binarized layer's pre-activation (the value darknet signs, or hands on)
  matched to the teacher's at the same layer, per channel, in units of the teacher's spread
  (same architecture, one to one: Real-to-Binary, LWS-Det);
* `recalibrate`: BN statistics re-estimated under the binary forward. Darknet folds BN into
  (w', b'); an XNOR layer computes mean|w'_f| * dot + b'_f, so multiplying a filter's latent
  weights by a > 0 (signs unchanged) scales its output exactly and b'_f moves its mean. Each
  channel's mean and spread are set to the teacher's on the same crops, layer after layer;
* `Progression`: when each XNOR layer of the cfg leaves float (evenly over the first part of
  the budget, input to output), each one recalibrated and warm-started on its own;
* `SignFlips`: the fraction of latent-weight signs that changed since the last look, per layer
  (a learning rate too high flips many each step, one too low none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .model import Conv, DarknetModule


def xnor_layers(module: DarknetModule) -> list[int]:
    """Indices of the cfg's XNOR convolutions, input to output."""
    return [ly.index for ly, m in module.convs if m.xnor]


def _conv(module: DarknetModule, i: int) -> Conv:
    mod = module.mods[i]
    assert isinstance(mod, Conv)
    return mod


def set_binary(module: DarknetModule, i: int, on: bool = True) -> None:
    _conv(module, i).binary = on


def record(module: DarknetModule, layers: Sequence[int], on: bool) -> None:
    for i in layers:
        c = _conv(module, i)
        c.record = on
        if not on:
            c.pre = None


def feature_loss(
    student: DarknetModule, teacher: DarknetModule, layers: Sequence[int]
) -> tuple[Tensor, dict[str, float]]:
    """Mean over `layers` (recorded in both modules by their last forward) of the squared
    pre-activation error per element, divided by the teacher's per-channel variance."""
    total: Tensor | None = None
    n = 0
    for i in layers:
        s, t = _conv(student, i).pre, _conv(teacher, i).pre
        if s is None or t is None:
            continue
        t = t.detach()
        var = t.var(dim=(0, 2, 3), keepdim=True) + 1e-4
        term = ((s - t) ** 2 / var).mean()
        total = term if total is None else total + term
        n += 1
    if total is None:
        z = torch.zeros(())
        return z, {"feat": 0.0}
    total = total / n
    return total, {"feat": float(total.detach())}


@torch.no_grad()
def recalibrate(
    student: DarknetModule,
    teacher: DarknetModule,
    layers: Sequence[int],
    batches: Sequence[Tensor],
    max_gain: float = 20.0,
) -> None:
    """Per channel of each binary layer in `layers` (in order, so later layers see the
    recalibrated earlier ones): mean and standard deviation of the pre-activation under the
    binary forward set to the teacher's on `batches`."""
    for i in sorted(layers):
        conv = _conv(student, i)
        if not conv.binary:
            continue
        t_conv = _conv(teacher, i)
        conv.record = t_conv.record = True
        s_sum = s_sq = t_sum = t_sq = None
        count = 0
        for x in batches:
            student(x, upto=i)
            teacher(x, upto=i)
            assert conv.pre is not None and t_conv.pre is not None
            s, t = conv.pre.double(), t_conv.pre.double()
            d = (0, 2, 3)
            parts = (s.sum(d), (s * s).sum(d), t.sum(d), (t * t).sum(d))
            if s_sum is None or s_sq is None or t_sum is None or t_sq is None:
                s_sum, s_sq, t_sum, t_sq = parts
            else:
                s_sum, s_sq = s_sum + parts[0], s_sq + parts[1]
                t_sum, t_sq = t_sum + parts[2], t_sq + parts[3]
            count += s.shape[0] * s.shape[2] * s.shape[3]
        conv.record = t_conv.record = False
        conv.pre = t_conv.pre = None
        if s_sum is None or s_sq is None or t_sum is None or t_sq is None:
            return
        s_mean, t_mean = s_sum / count, t_sum / count
        s_std = (s_sq / count - s_mean**2).clamp(min=0).sqrt()
        t_std = (t_sq / count - t_mean**2).clamp(min=0).sqrt()
        gain = (t_std / s_std.clamp(min=1e-8)).clamp(1 / max_gain, max_gain)
        gain = torch.where(s_std > 1e-8, gain, torch.ones_like(gain))
        bias = conv.bias.double()
        new_bias = t_mean - gain * (s_mean - bias)
        conv.weight.mul_(gain.view(-1, 1, 1, 1).to(conv.weight.dtype))
        conv.bias.copy_(new_bias.to(conv.bias.dtype))


def warm_start(
    student: DarknetModule,
    teacher: DarknetModule,
    i: int,
    batches: Callable[[], Tensor],
    steps: int,
    lr: float,
) -> float:
    """Train layer i alone to reproduce the teacher's pre-activation there from the input the
    (partly binary) student prefix gives it. Returns the last feature loss."""
    conv = _conv(student, i)
    t_conv = _conv(teacher, i)
    opt = torch.optim.Adam([conv.weight, conv.bias], lr=lr)
    last = 0.0
    conv.record = t_conv.record = True
    try:
        for _ in range(steps):
            x = batches()
            with torch.no_grad():
                inp = student(x, upto=i - 1)[-1] if i > 0 else x
                teacher(x, upto=i)
            conv(inp)
            loss, _ = feature_loss(student, teacher, [i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            last = float(loss.detach())
    finally:
        conv.record = t_conv.record = False
        conv.pre = t_conv.pre = None
    return last


class Progression:
    """Which XNOR layers run binary at a point of the budget: the cfg's XNOR layers leave float
    one by one, input to output, evenly over the first `until` fraction (all at once if 0)."""

    def __init__(self, module: DarknetModule, until: float, already: Sequence[int] = ()) -> None:
        """`already`: layers binary from the start (e.g. trained binary by an earlier run);
        the others leave float in turn."""
        self.layers = xnor_layers(module)
        self.until = until
        self.module = module
        self.pending = [i for i in self.layers if i not in set(already)]
        if until > 0:
            for i in self.pending:
                _conv(module, i).binary = False

    def due(self, frac: float) -> list[int]:
        """Layers that should be binary at `frac` but are not yet (in order)."""
        n = len(self.pending)
        out = []
        for k, i in enumerate(self.pending):
            at = 0.0 if self.until <= 0 else self.until * k / max(1, n)
            if frac >= at and not _conv(self.module, i).binary:
                out.append(i)
        return out

    def binary(self) -> list[int]:
        return [i for i in self.layers if _conv(self.module, i).binary]

    def finish(self) -> list[int]:
        """Every layer still float turned binary (end of budget); returns them."""
        rest = [i for i in self.layers if not _conv(self.module, i).binary]
        for i in rest:
            _conv(self.module, i).binary = True
        return rest


class SignFlips:
    """Fraction of each XNOR layer's latent-weight signs changed since the previous look."""

    def __init__(self, module: DarknetModule) -> None:
        self.module = module
        self.layers = xnor_layers(module)
        self.last = {i: self._signs(i) for i in self.layers}

    def _signs(self, i: int) -> Tensor:
        return _conv(self.module, i).weight.detach() > 0

    def rates(self) -> dict[int, float]:
        out = {}
        for i in self.layers:
            now = self._signs(i)
            out[i] = float((now != self.last[i]).float().mean())
            self.last[i] = now
        return out
