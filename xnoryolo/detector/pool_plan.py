"""The pool plan: float convolutions that run the maxpool after them themselves on the detect
path (`Network.forward(keep=False)`). The conv rows under one pooled row are computed and
pooled while in cache, so the conv's own output, the largest tensor of a tiny-YOLO (16 x 416 x
416 floats, 11 MB, for the first conv), is never written to memory and read back. The floats
are those of the two layers run apart (kernels/README.md, "Float conv + maxpool").

Public API:

* `plan_pools(layers, taken) -> PoolPlan`: made after prepare(), from the kernels' abilities
  (backends.FloatPoolingConv); layers in `taken` (the bits and bytes plans') keep theirs.
* `PoolPlan`: conv index -> the pool it runs, and that pool's index -> None (done).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .bits_plan import readers_of
from .layers import ConvolutionalLayer, Layer, MaxpoolLayer

__all__ = ["PoolPlan", "plan_pools"]

PoolPlan = dict[int, MaxpoolLayer | None]


def plan_pools(layers: Sequence[Layer], taken: Collection[int]) -> PoolPlan:
    """A float conv whose only reader is the maxpool after it, which it can run, runs it."""
    readers, external = readers_of(layers)
    plan: PoolPlan = {}
    for i, layer in enumerate(layers[:-1]):
        pool = layers[i + 1]
        if (
            isinstance(layer, ConvolutionalLayer)
            and isinstance(pool, MaxpoolLayer)
            and i not in taken
            and i + 1 not in taken
            and i not in external
            and readers[i] == [(i + 1, True)]
            and layer.takes_pool(pool, floats=True)
        ):
            plan[i], plan[i + 1] = pool, None
    return plan
