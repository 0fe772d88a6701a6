"""Darknet `.weights` files: the strict, cursor-based reader (SEMANTICS.md §1) and a
generator of random ones (benchmarks and tests).

Layout: int32 major, minor, revision; then `seen` as uint64 if major*10+minor >= 2, else uint32;
then float32 arrays layer by layer in cfg order, no padding. Darknet reads whatever is there and
keeps random weights for a short file; here the total size is checked against the cfg before a
single float is read, so a short, over-long or mismatched file fails with the layer named.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import WeightsError
from .files import UnreadableFile, open_regular
from .layers import ConvolutionalLayer, Layer, RegionLayer, YoloLayer


@dataclass(frozen=True)
class WeightsHeader:
    major: int
    minor: int
    revision: int
    seen: int

    @property
    def size(self) -> int:
        return 20 if self.major * 10 + self.minor >= 2 else 16

    def to_bytes(self) -> bytes:
        seen = struct.pack("<Q" if self.size == 20 else "<I", self.seen)
        return struct.pack("<3i", self.major, self.minor, self.revision) + seen


def parse_header(data: bytes | memoryview, path: str) -> WeightsHeader:
    if len(data) < 12:
        raise WeightsError(f"{path}: {len(data)} bytes is too short for a darknet weights header")
    major, minor, revision = (int(v) for v in np.frombuffer(data, "<i4", 3))
    if not (0 <= major <= 1000 and 0 <= minor <= 1000 and 0 <= revision <= 100000):
        raise WeightsError(
            f"{path}: bad header (version {major}.{minor}.{revision}): not a darknet weights file"
        )
    wide = major * 10 + minor >= 2
    size = 20 if wide else 16
    if len(data) < size:
        raise WeightsError(f"{path}: file ends inside the {size}-byte header")
    seen = int(np.frombuffer(data, "<u8" if wide else "<u4", 1, 12)[0])
    return WeightsHeader(major, minor, revision, seen)


class WeightsReader:
    """Hands out float32 arrays in order; knows which layer asks so errors can name it."""

    def __init__(self, data: bytes, path: str = "<weights>") -> None:
        self.path = path
        self.data = memoryview(data)
        self.header = parse_header(self.data, path)
        body = len(self.data) - self.header.size
        if body % 4:
            raise WeightsError(
                f"{path}: {body} bytes after the header is not a whole number of float32 values"
            )
        self.total = body // 4
        self.cursor = 0  # in floats
        self.owner = "?"

    @classmethod
    def open(
        cls, path: str | Path, per_layer: list[tuple[str, int]] | None = None
    ) -> WeightsReader:
        """The reader of a weights file; with `per_layer` (what the cfg needs, as for
        `check_size`) the file's size is checked from its header before the rest is read, so a
        huge or mismatched file fails at once."""
        p = Path(path)
        try:
            f = open_regular(p)
        except UnreadableFile as exc:
            raise WeightsError(f"{p}: {exc}: not a darknet weights file") from None
        except OSError as exc:
            raise WeightsError(f"{p}: cannot read weights: {exc.strerror or exc}") from None
        try:
            with f:
                st = os.fstat(f.fileno())
                if per_layer is not None:
                    head = parse_header(f.read(20), str(p))
                    sized = cls.__new__(cls)
                    sized.path, sized.header = str(p), head
                    sized.total = max(0, st.st_size - head.size) // 4
                    sized.check_size(per_layer)
                    f.seek(0)
                data = f.read()
        except OSError as exc:
            raise WeightsError(f"{p}: cannot read weights: {exc.strerror or exc}") from None
        return cls(data, str(p))

    def check_size(self, per_layer: list[tuple[str, int]]) -> None:
        """Compare the file with what the cfg needs; name the layer where a short file ends."""
        expected = sum(n for _, n in per_layer)
        if self.total == expected:
            return
        if self.total > expected:
            raise WeightsError(
                f"{self.path}: {self.total - expected} float32 values left over after the last "
                f"layer (the cfg needs {expected}, the file holds {self.total}): "
                "these weights do not belong to this cfg"
            )
        done = 0
        for name, n in per_layer:
            if done + n > self.total:
                raise WeightsError(
                    f"{self.path}: file ends inside {name} (it needs {n} floats from offset "
                    f"{done}, only {self.total - done} remain; cfg needs {expected} floats, "
                    f"file holds {self.total}): truncated file or wrong cfg"
                )
            done += n

    def read(self, n: int, what: str) -> np.ndarray:
        if self.cursor + n > self.total:
            raise WeightsError(
                f"{self.path}: {self.owner}: {what} needs {n} floats at offset {self.cursor}, "
                f"only {self.total - self.cursor} remain"
            )
        start = self.header.size + 4 * self.cursor
        arr = np.frombuffer(self.data, "<f4", n, start).astype(np.float32)
        self.cursor += n
        return arr

    def finish(self) -> None:
        if self.cursor != self.total:
            raise WeightsError(
                f"{self.path}: {self.total - self.cursor} float32 values left over after the "
                "last layer: these weights do not belong to this cfg"
            )


class BuiltNetwork(Protocol):
    """A network built from its cfg (a `Network`, which imports this module for its reader)."""

    @property
    def layers(self) -> Sequence[Layer]: ...


def random_weights(
    network: BuiltNetwork, seed: int = 0, header: WeightsHeader = WeightsHeader(0, 2, 5, 0)
) -> bytes:
    """A darknet .weights file for the network: He-scaled conv weights, sane BN statistics
    (scales and variances in 0.5..1.5); the convs before the detection layers get small
    weights and a bias of -6, so few boxes pass, as with real weights."""
    rng = np.random.default_rng(seed)
    parts = [header.to_bytes()]
    heads = {ly.index - 1 for ly in network.layers if isinstance(ly, YoloLayer | RegionLayer)}
    for layer in network.layers:
        count = layer.weight_floats()
        if not count:
            continue
        if isinstance(layer, ConvolutionalLayer) and not layer.dontload:
            n, k = layer.spec.filters, layer.spec.k
            head = layer.index in heads
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
