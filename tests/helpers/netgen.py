"""Small synthetic darknet models for tests: cfg text plus a matching random weights file."""

from __future__ import annotations

from pathlib import Path

from xnoryolo.detector import Network
from xnoryolo.detector.weights import WeightsHeader, random_weights


def write_model(
    tmp: Path, cfg_text: str, seed: int = 0, header: tuple[int, int, int] = (0, 2, 5)
) -> tuple[Path, Path]:
    """Write cfg and weights whose size fits the cfg exactly (detector.weights.random_weights,
    `seen` 7 in a header of the given version)."""
    cfg = tmp / "model.cfg"
    cfg.write_text(cfg_text)
    weights = tmp / "model.weights"
    net = Network.from_cfg(cfg)
    weights.write_bytes(random_weights(net, seed, WeightsHeader(*header, seen=7)))
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
