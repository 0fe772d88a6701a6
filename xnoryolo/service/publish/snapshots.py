"""Annotated JPEGs of detection results, encoded at most once per frame however many
MJPEG and snapshot clients ask for it."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

import cv2
import numpy as np

from xnoryolo.detector.draw import draw_detections

from ..streams.events import DetectionEvent


class SnapshotCache:
    def __init__(
        self, quality: int = 80, annotate: Callable[[DetectionEvent], np.ndarray] | None = None
    ) -> None:
        self.quality = quality
        # boxes only by default; the pipeline adds each stream's lines and zones
        self._annotate = annotate or (lambda e: draw_detections(e.frame.image, e.detections))
        self._cache: dict[str, tuple[int, bytes]] = {}
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def jpeg(self, event: DetectionEvent) -> bytes:
        with self._locks[event.stream]:
            hit = self._cache.get(event.stream)
            if hit is not None and hit[0] == event.frame.seq:
                return hit[1]
            image = self._annotate(event)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise ValueError("JPEG encoding failed")
            data = buf.tobytes()
            if hit is None or hit[0] < event.frame.seq:
                self._cache[event.stream] = (event.frame.seq, data)
            return data

    def forget(self, stream: str) -> None:
        self._cache.pop(stream, None)
        self._locks.pop(stream, None)
