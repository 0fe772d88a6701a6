"""The peer bench compares against: OpenCV DNN running the float twin of the cfg with the same
weights on the same frame, in the same process (its own preprocess, forward, decode and NMS)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cfg import float_twin
from .timing import median_ms

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class PeerTimes:
    """Median whole-frame and forward-only ms, or None with the reason in `note`."""

    frame_ms: float | None
    network_ms: float | None
    note: str | None

    @classmethod
    def skipped(cls, note: str) -> PeerTimes:
        return cls(None, None, note)


def opencv_frame(
    cfg_text: str,
    weights: bytes,
    frame: np.ndarray,
    size: int,
    thresh: float,
    warmup: int,
    runs: int,
) -> PeerTimes:
    """OpenCV DNN on the float twin of cfg_text (the cfg bench runs, at its size)."""
    import cv2
    import numpy as np

    # opencv-python 5 has no darknet importer
    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
        return PeerTimes.skipped("this OpenCV has no darknet importer")
    with tempfile.TemporaryDirectory(prefix="xnoryolo-bench-") as tmp:
        cfg_path = Path(tmp) / "twin.cfg"
        w_path = Path(tmp) / "twin.weights"
        cfg_path.write_text(float_twin(cfg_text), encoding="utf-8")
        w_path.write_bytes(weights)
        try:
            net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(w_path))
        except cv2.error as exc:
            return PeerTimes.skipped(f"OpenCV could not load the float twin: {exc}")
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    names = net.getUnconnectedOutLayersNames()
    h, w = frame.shape[:2]

    def once() -> tuple[float, float]:
        t0 = time.perf_counter()
        blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (size, size), swapRB=True)
        net.setInput(blob)
        t1 = time.perf_counter()
        outs = net.forward(names)
        t2 = time.perf_counter()
        rows = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outs])
        scores = rows[:, 5:] * rows[:, 4:5]
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(rows)), cls]
        keep = best > thresh
        boxes = [
            [float((r[0] - r[2] / 2) * w), float((r[1] - r[3] / 2) * h), float(r[2] * w),
             float(r[3] * h)]
            for r in rows[keep]
        ]  # fmt: skip
        cv2.dnn.NMSBoxes(boxes, best[keep].tolist(), thresh, 0.45)
        t3 = time.perf_counter()
        return t3 - t0, t2 - t1

    for _ in range(warmup):
        once()
    samples = [once() for _ in range(runs)]
    return PeerTimes(median_ms([s[0] for s in samples]), median_ms([s[1] for s in samples]), None)
