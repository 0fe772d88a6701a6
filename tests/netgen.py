"""Small synthetic darknet models for tests: cfg text plus a matching random weights file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from xnoryolo.detector import Network


def write_model(
    tmp: Path, cfg_text: str, seed: int = 0, header: tuple[int, int, int] = (0, 2, 5)
) -> tuple[Path, Path]:
    """Write cfg and weights whose size fits the cfg exactly (values ~N(0, 0.5), BN sane)."""
    cfg = tmp / "model.cfg"
    cfg.write_text(cfg_text)
    net = Network.from_cfg(cfg)
    rng = np.random.default_rng(seed)
    parts = []
    for layer in net.layers:
        n = layer.weight_floats()
        if not n:
            continue
        vals = rng.normal(0, 0.5, n).astype(np.float32)
        bn = getattr(layer, "batch_normalize", False)
        if bn:
            f = layer.out_shape[0]
            vals[f : 2 * f] = rng.uniform(0.5, 1.5, f)  # scales
            vals[3 * f : 4 * f] = rng.uniform(0.5, 2.0, f)  # variance > 0
        parts.append(vals)
    weights = tmp / "model.weights"
    major, minor, rev = header
    head = struct.pack("<3i", major, minor, rev)
    head += struct.pack("<Q", 7) if major * 10 + minor >= 2 else struct.pack("<I", 7)
    body = np.concatenate(parts).tobytes() if parts else b""
    weights.write_bytes(head + body)
    return cfg, weights


TINY = """[net]
width=32
height=24
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=18
size=1
activation=linear

[yolo]
mask=0,1
anchors=4,5, 8,9, 12,14
classes=4
num=3
"""
