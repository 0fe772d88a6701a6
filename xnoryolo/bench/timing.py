"""Timing on the path `Detector.detect` takes: per layer, per frame part, and the popcount peak
sampled between the timed runs. All results are raw seconds (or Gbit-MAC/s samples); the
report takes medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from xnoryolo.detector import Detector

BLOCK = 10  # frames per block when the 1-thread twin is timed in turn


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000.0


class PeakSampler:
    """Gbit-MAC/s of xor+popcount+add on L1-resident data (the kernels' formulation, same SIMD
    path), `threads` threads at once, sampled for ~1 ms between the timed runs: the median of
    the samples is the peak the layers' medians are shared against, so both are taken under
    the same machine load (a best-of peak, measured apart, made every share look worse
    whenever the shared machine was busy)."""

    def __init__(self, isa: str, threads: int) -> None:
        from xnoryolo.kernels import xconv

        self._run = xconv.popcount_peak
        self._isa = isa
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
        self.samples: list[float] = []
        # calibrate on one thread: reps for ~1 ms per sample
        self._reps = 20_000
        seconds = min(self._timed_run()[1] for _ in range(3))
        self._reps = max(1_000, int(self._reps * 1e-3 / seconds))

    def _timed_run(self, _: int = 0) -> tuple[int, float]:
        # the loop times itself: a pool hand-off or the buffer's set-up would otherwise be a
        # tenth of a sample
        bits, seconds, _checksum = self._run(self._isa, 64, self._reps)
        return bits, seconds

    def _measure(self) -> float:
        if self._pool is None:
            runs = [self._timed_run()]
        else:
            runs = list(self._pool.map(self._timed_run, range(self._threads)))
        return sum(bits / dt for bits, dt in runs) / 1e9

    def sample(self) -> None:
        self.samples.append(self._measure())

    def peak(self) -> float:
        """The median sample: the peak the layers are shared against."""
        return statistics.median(self.samples)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def time_layers(
    detector: Detector, frame: np.ndarray, warmup: int, runs: int, sampler: PeakSampler | None
) -> list[list[float]]:
    """Seconds of every layer in every timed run: the Detector.detect path with a timestamp
    after every layer (so they add up to the frame's network time); a peak sample after each
    timed run."""
    network = detector.network
    layers = network.layers
    per_layer: list[list[float]] = [[] for _ in layers]
    marks = [0.0] * len(layers)

    def mark(i: int) -> None:
        marks[i] = time.perf_counter()

    for r in range(warmup + runs):
        x = detector.network_input(frame)
        start = time.perf_counter()
        network.forward(x, keep=False, on_layer=mark)
        if r >= warmup:
            for i in range(len(layers)):
                per_layer[i].append(marks[i] - (marks[i - 1] if i else start))
            if sampler is not None:
                sampler.sample()
    return per_layer


@dataclass(frozen=True)
class FrameTimes:
    """Seconds per timed frame: its parts, the whole, and the 1-thread twin's whole frames
    (empty without a twin)."""

    preprocess: list[float]
    network: list[float]
    decode_nms: list[float]
    frame: list[float]
    frame_1_thread: list[float]


def time_frame(detector: Detector, frame: np.ndarray) -> tuple[float, float, float]:
    """Seconds of preprocess, network and decode + NMS for one frame, as detect runs them
    (outputs dropped once nothing reads them)."""
    t0 = time.perf_counter()
    x = detector.network_input(frame)
    t1 = time.perf_counter()
    outputs = detector.network.forward(x, keep=False)
    t2 = time.perf_counter()
    detector.postprocess(outputs, frame.shape[1], frame.shape[0]).detections()
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def time_frames(
    detector: Detector,
    detector_1_thread: Detector | None,
    frame: np.ndarray,
    warmup: int,
    runs: int,
) -> FrameTimes:
    """Whole frames on the detect path. With a 1-thread twin, blocks of frames alternate with
    blocks on the twin (both see the same machine load; a block's first frame re-warms the
    caches, untimed)."""
    pre_s: list[float] = []
    net_s: list[float] = []
    post_s: list[float] = []
    frame_s: list[float] = []
    frame1_s: list[float] = []
    for _ in range(warmup):
        time_frame(detector, frame)
    done = 0
    while done < runs:
        block = min(BLOCK, runs - done)
        if detector_1_thread is not None:
            time_frame(detector, frame)
        for _ in range(block):
            pre, net, post = time_frame(detector, frame)
            pre_s.append(pre)
            net_s.append(net)
            post_s.append(post)
            frame_s.append(pre + net + post)
        if detector_1_thread is not None:
            time_frame(detector_1_thread, frame)
            frame1_s.extend(sum(time_frame(detector_1_thread, frame)) for _ in range(block))
        done += block
    return FrameTimes(pre_s, net_s, post_s, frame_s, frame1_s)
