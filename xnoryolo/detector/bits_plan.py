"""The bits plan: which layers hand packed sign bits on instead of floats on the detect path
(`Network.forward(keep=False)`; kernels/README.md, "Chained binary layers").

Public API:

* `plan_bits(layers) -> BitsPlan`: the plan for a network's prepared layers. It depends on
  the kernels' abilities (backends.protocols), so it is made after prepare();
  `Network.bits_plan` keeps it for the network's current kernels.
* `BitsPlan`: layer index -> `BitsStep`; a layer not in it runs on floats.
* `BitsStep`: how one planned layer runs (the layout of the bits it writes, whether its floats
  are kept, whether the next layer reads its bits, a pool it runs itself or that was done).
* `Layout` and `natural_layout(shape)`: where packed bits go, ((h, w, words), border).

`BitsStep`, `Layout` and `natural_layout` are defined with the layers (layers.base), which
run the steps; they are re-exported here with the planner that makes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .layers import (
    BitsStep,
    ConvolutionalLayer,
    Layer,
    Layout,
    RegionLayer,
    RouteLayer,
    UpsampleLayer,
    YoloLayer,
    natural_layout,
)

__all__ = ["BitsPlan", "BitsStep", "Layout", "natural_layout", "plan_bits"]

BitsPlan = dict[int, BitsStep]


def readers_of(layers: Sequence[Layer]) -> tuple[dict[int, list[tuple[int, bool]]], set[int]]:
    """Who reads each layer's output, as (reader, whether as its input x rather than through
    a route/shortcut), and the layers whose outputs leave the network (heads, the last)."""
    readers: dict[int, list[tuple[int, bool]]] = {i: [] for i in range(len(layers))}
    for layer in layers:
        if layer.index > 0 and not isinstance(layer, RouteLayer):
            readers[layer.index - 1].append((layer.index, True))
        for src in layer.reads:
            readers[src].append((layer.index, False))
    external = {ly.index for ly in layers if isinstance(ly, YoloLayer | RegionLayer)}
    external.add(len(layers) - 1)
    return readers, external


def plan_bits(layers: Sequence[Layer]) -> BitsPlan:
    """The layers that hand sign bits on instead of floats (kernels/README.md, "Chained
    binary layers"). A layer emits bits when some reader takes them: a binary conv (its
    input), or a maxpool, upsample or route that itself emits bits. Only a binary conv may
    also keep its floats for other readers (a float or int8 conv writes bits only where
    every reader takes them); an upsample needs bits in, a route bits from every source.
    Found as a fixed point: start from every layer that could, drop those no reader wants
    (or whose inputs are floats) until nothing changes. A float or int8 conv whose only
    reader is such a pool runs the pool itself (the pool's step is then `done`)."""
    n = len(layers)
    readers, external = readers_of(layers)
    emit = {layer.index for layer in layers if layer.emits_bits}

    def takes_bits(j: int, via_x: bool) -> bool:
        reader = layers[j]
        if isinstance(reader, ConvolutionalLayer):
            return via_x and reader.bits_input is not None
        return j in emit and (via_x == (reader.bits_input is not None))

    changed = True
    while changed:
        changed = False
        for i in sorted(emit):
            layer = layers[i]
            wanted = [r for r in readers[i] if takes_bits(*r)]
            floats = i in external or len(wanted) < len(readers[i])
            keep = bool(wanted) and (
                not floats or (isinstance(layer, ConvolutionalLayer) and layer.bits_with_floats)
            )
            if isinstance(layer, UpsampleLayer) and i - 1 not in emit:
                keep = False
            if isinstance(layer, RouteLayer) and not set(layer.sources) <= emit:
                keep = False
            if not keep:
                emit.discard(i)
                changed = True
    plan: BitsPlan = {}
    for i in sorted(emit):
        wanted = [r for r in readers[i] if takes_bits(*r)]
        layout = layers[wanted[0][0]].bits_input if len(wanted) == 1 else None
        plan[i] = BitsStep(
            layout if layout is not None else natural_layout(layers[i].out_shape),
            want_float=i in external or len(wanted) < len(readers[i]),
            next_bits=(i + 1, True) in wanted,
        )
    for i in range(n - 1):
        step = plan.get(i + 1)
        if (
            step is not None
            and (i not in plan or not _keeps_floats(layers[i]))
            and i not in external
            and readers[i] == [(i + 1, True)]
            and _takes_pool(layers[i], layers[i + 1])
        ):
            plan[i] = BitsStep(step.layout, pool=layers[i + 1])
            plan[i + 1] = BitsStep(step.layout, done=True)
    return plan


def _keeps_floats(layer: Layer) -> bool:
    return isinstance(layer, ConvolutionalLayer) and layer.bits_with_floats


def _takes_pool(layer: Layer, pool: Layer) -> bool:
    return isinstance(layer, ConvolutionalLayer) and layer.takes_pool(pool, floats=False)
