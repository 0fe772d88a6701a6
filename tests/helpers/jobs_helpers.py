"""Helpers for the jobs tests: short cuts of real footage and a fast stand-in detector."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from xnoryolo.detector import Detection, DetectionTable


def cut_video(src: Path, dest: Path, frames: int, fourcc: str = "MJPG") -> Path:
    """The first `frames` frames of `src`, re-encoded with OpenCV (media is never committed)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    writer = None
    try:
        for _ in range(frames):
            ok, frame = cap.read()
            assert ok, f"{src} has fewer than {frames} frames"
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(dest), cv2.VideoWriter.fourcc(*fourcc), fps, size)
                assert writer.isOpened()
            writer.write(frame)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    return dest


def frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


class FakeDetector:
    """Two boxes per frame (a person twice, as two classes, and a car), optionally slow."""

    names: ClassVar[list[str]] = ["person", "bicycle", "car"]

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable:
        with self.lock:
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        h, w = image.shape[:2]
        t = 0.5 if thresh is None else thresh
        return DetectionTable.from_detections(
            [
                Detection(0, "person", 0.9, 0.1, 0.2, 0.1, 0.2, -5, 20, 40, 60),
                Detection(
                    1, "bicycle", max(t, 0.3), 0.1, 0.2, 0.1, 0.2, -5, 20, 40, 60, 0.9, False
                ),
                Detection(2, "car", 0.7, 0.5, 0.5, 0.2, 0.1, w // 2, h // 2, w, 30),
            ]
        )
