"""One video's or stream's analysis beyond boxes: motion gating before inference, then
tracks, line counts and zone visits after it. Thread-safe (a stream's frames may be inferred
by several workers; a frame older than the newest one tracked is passed through untracked)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from xnoryolo.detector import DetectionTable

from .bytetrack import Tracker
from .counting import Counting, LineCounter, ZoneWatcher
from .events import AnalysisEvent
from .motion import MotionGate
from .spec import AnalysisSpec


class FrameAnalysis:
    def __init__(self, spec: AnalysisSpec | None = None) -> None:
        self.spec = spec or AnalysisSpec()
        self.tracker = Tracker(self.spec.tracking) if self.spec.tracking.enabled else None
        self.lines = [LineCounter(s) for s in self.spec.lines]
        self.zones = [ZoneWatcher(s) for s in self.spec.zones]
        self._counting = Counting(self.lines, self.zones)
        self.gate = MotionGate(self.spec.motion) if self.spec.motion.enabled else None
        self._lock = threading.Lock()
        self._newest = -1

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
        self, size: tuple[int, int], table: DetectionTable, t: float, frame: int
    ) -> tuple[np.ndarray | None, list[AnalysisEvent]]:
        """The track ids of the rows of inferred frame `frame`'s detections (at t s, size
        (w, h); -1: none; a box's other classes get its best class's id), None where nothing
        tracks it (no tracker, or a frame older than the newest one tracked), and the line
        and zone events they caused. `table.detections(ids)` are the boxes with their ids."""
        if self.tracker is None:
            return None, []
        with self._lock:
            if frame <= self._newest:
                return None, []
            self._newest = frame
            best = table.best
            every = bool(best.all())
            if every:
                boxes, scores, classes = table.corners, table.probs, table.class_ids
            else:
                boxes = np.ascontiguousarray(table.corners[best])
                scores, classes = table.probs[best], table.class_ids[best]
            result = self.tracker.update_arrays(boxes, scores, classes, t)
            events: list[AnalysisEvent] = []
            if self.lines or self.zones:
                assert result.slots is not None
                events = self._counting.observe(
                    result.slots,
                    result.slots_used,
                    boxes,
                    result.ids,
                    classes,
                    table.names,
                    size,
                    frame,
                    t,
                )
            if result.ended:
                for tid, slot in zip(result.ended, result.ended_slots, strict=True):
                    events += self._counting.forget(tid, slot)
            if every:
                return result.ids, events
            # a box's other classes (rows after its best one) get the id of its best one
            by_box = {
                tuple(box): tid
                for box, tid in zip(boxes.tolist(), result.ids.tolist(), strict=True)
                if tid >= 0
            }
            ids = np.full(len(table), -1, np.int64)
            ids[best] = result.ids
            for r in np.flatnonzero(~best).tolist():
                ids[r] = by_box.get(tuple(table.corners[r].tolist()), -1)
            return ids, events

    def finish(self) -> list[AnalysisEvent]:
        """The end of a video: tracks still inside zones leave where they were last seen."""
        with self._lock:
            return self._counting.finish()

    def summary(self) -> dict[str, Any]:
        """Cumulative counters: per line in/out per class, per zone entries, exits, who is
        inside and dwell times, tracks seen, frames the gate skipped."""
        with self._lock:
            return {
                # every id given appears on a box: the ids seen are 1 .. ids_issued
                "tracks": self.tracker.ids_issued if self.tracker is not None else None,
                "lines": {c.spec.name: c.summary() for c in self.lines},
                "zones": {z.spec.name: z.summary() for z in self.zones},
                "motion": None
                if self.gate is None
                else {"inferred": self.gate.inferred, "skipped": self.gate.skipped},
            }
