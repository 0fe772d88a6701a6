"""One video's or stream's analysis beyond boxes: motion gating before inference, then
tracks, line counts and zone visits after it. Thread-safe (a stream's frames may be inferred
by several workers; a frame older than the newest one tracked is passed through untracked)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from xnoryolo.detector import Detection

from .bytetrack import Tracker
from .counting import LineCounter, Observation, Observations, ZoneWatcher
from .events import AnalysisEvent
from .motion import MotionGate
from .spec import AnalysisSpec


def _with_track(d: Detection, track_id: int) -> Detection:
    # the constructor spelled out: dataclasses.replace costs ~4x as much, per box per frame
    return Detection(
        d.class_id,
        d.name,
        d.prob,
        d.x,
        d.y,
        d.w,
        d.h,
        d.left,
        d.top,
        d.width,
        d.height,
        d.objectness,
        d.best_class,
        track_id,
    )


class FrameAnalysis:
    def __init__(self, spec: AnalysisSpec | None = None) -> None:
        self.spec = spec or AnalysisSpec()
        self.tracker = Tracker(self.spec.tracking) if self.spec.tracking.enabled else None
        self.lines = [LineCounter(s) for s in self.spec.lines]
        self.zones = [ZoneWatcher(s) for s in self.spec.zones]
        self.gate = MotionGate(self.spec.motion) if self.spec.motion.enabled else None
        self._lock = threading.Lock()
        self._newest = -1
        self._ids: set[int] = set()

    @property
    def tracking(self) -> bool:
        return self.tracker is not None

    @property
    def active(self) -> bool:
        """Whether it does anything at all (tracking, counting or gating)."""
        return self.tracker is not None or self.gate is not None

    def wants_inference(self, image: np.ndarray, t: float) -> bool:
        """Motion gating: False for a frame that can go without inference."""
        if self.gate is None:
            return True
        with self._lock:
            return self.gate.check(image, t)

    def hold(self, t: float) -> None:
        """A frame the gate skipped: tracks carried through it unchanged."""
        if self.tracker is not None:
            with self._lock:
                self.tracker.hold(t)

    def update(
        self, size: tuple[int, int], detections: Sequence[Detection], t: float, frame: int
    ) -> tuple[list[Detection], list[AnalysisEvent]]:
        """The detections of inferred frame `frame` (at t s, size (w, h)) with track ids, and
        the line and zone events they caused."""
        dets = list(detections)
        if self.tracker is None:
            return dets, []
        with self._lock:
            if frame <= self._newest:
                return dets, []
            self._newest = frame
            best = [d for d in dets if d.best_class]
            boxes = np.array(
                [[d.left, d.top, d.left + d.width, d.top + d.height] for d in best], np.float64
            )
            result = self.tracker.update(
                boxes, np.array([d.prob for d in best]), np.array([d.class_id for d in best]), t
            )
            by_box: dict[tuple[int, int, int, int], int] = {}
            items: list[Observation] = []
            for d, tid, box in zip(best, result.ids.tolist(), boxes.tolist(), strict=True):
                if tid >= 0:
                    by_box[(d.left, d.top, d.width, d.height)] = tid
                    items.append(Observation(tid, d.class_id, d.name, tuple(box)))
                    self._ids.add(tid)
            obs = Observations(items, boxes[result.ids >= 0])
            events: list[AnalysisEvent] = []
            for counter in self.lines:
                events += counter.observe(obs, size, frame, t)
            for zone in self.zones:
                events += zone.observe(obs, size, frame, t)
            for tid in result.ended:
                for counter in self.lines:
                    counter.forget(tid)
                for zone in self.zones:
                    events += zone.forget(tid)
            out = [
                _with_track(d, by_box[key])
                if (key := (d.left, d.top, d.width, d.height)) in by_box
                else d
                for d in dets
            ]
            return out, events

    def finish(self) -> list[AnalysisEvent]:
        """The end of a video: tracks still inside zones leave where they were last seen."""
        with self._lock:
            events: list[AnalysisEvent] = []
            for zone in self.zones:
                for tid in zone.inside_ids():
                    events += zone.forget(tid)
            return events

    def summary(self) -> dict[str, Any]:
        """Cumulative counters: per line in/out per class, per zone entries, exits, who is
        inside and dwell times, tracks seen, frames the gate skipped."""
        with self._lock:
            return {
                "tracks": len(self._ids) if self.tracker is not None else None,
                "lines": {c.spec.name: c.summary() for c in self.lines},
                "zones": {z.spec.name: z.summary() for z in self.zones},
                "motion": None
                if self.gate is None
                else {"inferred": self.gate.inferred, "skipped": self.gate.skipped},
            }
