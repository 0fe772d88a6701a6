"""Which weights a run ends with: an average of the recent steps, and the best check.

A binary student's weights can swing between two checks a few minutes apart (a latent
weight near zero flips sign and a whole head's class moves), so the last step is a lottery.
Two remedies, each optional:

* `WeightAverage` - an exponential moving average of every parameter (the latent weights of
  binary layers included: their sign is then a vote over the recent steps). It is what the
  checks evaluate and what is exported.
* `BestCheck` - the weights of the check that scored best on the validation frames (cut
  from the end of the training frames, never from the held-out ones), restored at the end
  when they beat the final weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

# the average's decay ramps up over about this many steps, so that early on it follows the
# weights instead of remembering the start
RAMP_STEPS = 100


class WeightAverage:
    """Exponential moving average of a module's parameters."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"average decay {decay}: must be in (0, 1)")
        self.decay = decay
        self.params = [p for p in module.parameters()]
        self.avg = [p.detach().clone() for p in self.params]
        self.updates = 0

    def rate(self) -> float:
        """The decay of the next update: `decay`, ramped up over the first steps."""
        return self.decay * (1 - math.exp(-(self.updates + 1) / RAMP_STEPS))

    def update(self) -> None:
        d = self.rate()
        self.updates += 1
        with torch.no_grad():
            for a, p in zip(self.avg, self.params, strict=True):
                a.lerp_(p.detach(), 1 - d)

    def _swap(self) -> None:
        with torch.no_grad():
            for a, p in zip(self.avg, self.params, strict=True):
                held = p.detach().clone()
                p.copy_(a)
                a.copy_(held)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The module runs the averaged weights inside; its own ones come back after."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def apply_for_good(self) -> None:
        """The module keeps the averaged weights (the end of training)."""
        with torch.no_grad():
            for a, p in zip(self.avg, self.params, strict=True):
                p.copy_(a)

    def state_dict(self) -> dict[str, Any]:
        return {"avg": [a.clone() for a in self.avg], "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for a, s in zip(self.avg, state["avg"], strict=True):
                a.copy_(s)
        self.updates = int(state["updates"])


class BestCheck:
    """The weights of the best-scoring check so far (higher is better; None = undefined)."""

    def __init__(self) -> None:
        self.score: float | None = None
        self.step: int | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.history: list[tuple[int, float | None]] = []

    def offer(self, module: nn.Module, step: int, score: float | None) -> bool:
        """Record a check; keep the module's weights if they beat the best. True if kept."""
        self.history.append((step, score))
        if score is None or (self.score is not None and score <= self.score):
            return False
        self.score, self.step = score, step
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return True

    def restore_if_better(self, module: nn.Module, final: float | None) -> bool:
        """Load the best check's weights if they score above `final` (the weights the module
        ends with). True if loaded."""
        if self.state is None or self.score is None:
            return False
        if final is not None and final >= self.score:
            return False
        module.load_state_dict(self.state)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "step": self.step,
            "state": self.state,
            "history": [list(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.score, self.step, self.state = state["score"], state["step"], state["state"]
        self.history = [(int(s), v) for s, v in state["history"]]
