"""Random darknet weights for a network: bench times do not depend on the values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from xnoryolo.detector import Network


def random_weights(network: Network, seed: int = 0) -> bytes:
    """A darknet .weights file for the network: He-scaled conv weights, sane BN statistics."""
    from xnoryolo.detector.layers import ConvolutionalLayer

    rng = np.random.default_rng(seed)
    parts = [np.array([0, 2, 5], "<i4").tobytes(), np.zeros(1, "<u8").tobytes()]
    heads = {d.index - 1 for d in network.detection_layers}
    for layer in network.layers:
        count = layer.weight_floats()
        if not count:
            continue
        if isinstance(layer, ConvolutionalLayer) and not layer.dontload:
            n, k = layer.spec.filters, layer.spec.k
            head = layer.index in heads
            # heads: small logits and a negative bias, so few boxes pass (as with real weights)
            chunks = [np.full(n, -6.0) if head else rng.normal(0, 0.1, n)]
            if layer.batch_normalize and not layer.dontloadscales:
                chunks += [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)]
                chunks.append(rng.uniform(0.5, 1.5, n))
            std = 0.25 / k**0.5 if head else (2.0 / k) ** 0.5
            chunks.append(rng.normal(0, std, n * k))
            values = np.concatenate(chunks)
        else:
            values = rng.uniform(0.5, 1.5, count)
        assert values.size == count
        parts.append(values.astype("<f4").tobytes())
    return b"".join(parts)
