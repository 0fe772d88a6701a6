"""Inference: the detector protocol the service needs, the worker pool shared by every stream,
and the live-activity gauge that lets video jobs yield the CPU to live inference."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from xnoryolo.detector import Detection, DetectionTable
from xnoryolo.tracking import AnalysisEvent

from .streams.events import DetectionEvent, Frame
from .streams.manager import DetectParams
from .streams.scheduler import FrameScheduler

log = logging.getLogger("xnoryolo.service.inference")


class DetectorLike(Protocol):
    names: list[str]

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable: ...


@runtime_checkable
class DescribedDetector(Protocol):
    """A detector that can say what runs (the engine's Detector; test doubles need not)."""

    def info(self) -> dict[str, Any]: ...


class MotionGated(Protocol):
    def wants_inference(self, image: np.ndarray, t: float) -> bool: ...


class LiveActivity:
    """The detector as live streams and image requests see it: it counts the calls in flight,
    so that job workers can wait for them."""

    def __init__(self, detector: DetectorLike) -> None:
        self.detector = detector
        self.names = detector.names
        self._busy = 0
        self._cond = threading.Condition()

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable:
        with self._cond:
            self._busy += 1
        try:
            return self.detector.detect_table(image, thresh=thresh, nms=nms)
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def detect(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> list[Detection]:
        return self.detect_table(image, thresh, nms).detections()

    def __getattr__(self, name: str) -> Any:
        if name == "detector":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.detector, name)

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)


class InferencePool:
    """`workers` threads take frames from the scheduler (round-robin over streams), run the
    detector and hand each DetectionEvent to `on_result`."""

    def __init__(
        self,
        detector: DetectorLike,
        scheduler: FrameScheduler,
        params: Callable[[str], DetectParams | None],
        on_result: Callable[[DetectionEvent, list[AnalysisEvent]], None],
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_held: Callable[[Frame], None] | None = None,
    ) -> None:
        self.detector = detector
        self._on_held = on_held
        self.scheduler = scheduler
        self._params = params
        self._on_result = on_result
        self._clock = clock
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"inference-{i}", daemon=True)
            for i in range(max(1, workers))
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.scheduler.close()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    def _wanted(self, frame: Frame, gate: MotionGated) -> bool:
        """The motion gate's answer; a frame it lets go is handed to `on_held`. A gate that
        fails infers (and says so), it never stops the worker."""
        t = frame.pts if frame.pts is not None else frame.captured
        try:
            if gate.wants_inference(frame.image, t):
                return True
            if self._on_held is not None:
                self._on_held(frame)
        except Exception:
            log.exception("%s: motion gating failed on frame %d", frame.stream, frame.seq)
            return True
        return False

    def _work(self) -> None:
        while not self._stop.is_set():
            frame = self.scheduler.take(timeout=0.25)
            if frame is None:
                continue
            params = self._params(frame.stream)
            if params is None:  # the stream was removed meanwhile
                continue
            if params.analysis is not None and not self._wanted(frame, params.analysis):
                continue
            t0 = self._clock()
            try:
                found = self.detector.detect_table(frame.image, thresh=params.threshold)
            except Exception:
                log.exception("%s: inference failed on frame %d", frame.stream, frame.seq)
                continue
            done = self._clock()
            try:
                detections, happened = params.detections(frame, found)
                event = DetectionEvent(
                    stream=frame.stream,
                    frame=frame,
                    detections=detections,
                    latency_ms=(done - frame.captured) * 1000.0,
                    inference_ms=(done - t0) * 1000.0,
                )
                self._on_result(event, happened)
            except Exception:
                log.exception("%s: tracking or publishing a result failed", frame.stream)
