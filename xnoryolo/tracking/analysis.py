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
from .counting import Counting, LineCounter, ZoneWatcher
from .events import AnalysisEvent
from .motion import MotionGate
from .spec import AnalysisSpec

_new = object.__new__
_set = object.__setattr__


def _with_track(d: Detection, track_id: int) -> Detection:
    # a copy of the frozen dataclass's instance dict (it has no __slots__) with the id set,
    # given to a bare instance: through the generated __init__ (one object.__setattr__ per
    # field) the same copy costs ~5x as much, per box per frame
    values = d.__dict__.copy()
    values["track_id"] = track_id
    new = _new(Detection)
    _set(new, "__dict__", values)
    return new


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
            n = len(best)
            # x0, y0, x1, y1 (integer pixels: exact), score, class of every box in one array
            cols = np.fromiter(
                [
                    v
                    for d in best
                    for v in (
                        d.left,
                        d.top,
                        d.left + d.width,
                        d.top + d.height,
                        d.prob,
                        d.class_id,
                    )
                ],
                np.float64,
                6 * n,
            ).reshape(n, 6)
            boxes = cols[:, :4].copy()  # the kernels read boxes in C order
            classes = cols[:, 5].astype(np.int64)
            result = self.tracker.update_arrays(boxes, cols[:, 4], classes, t)
            ids = result.ids.tolist()
            events: list[AnalysisEvent] = []
            if self.lines or self.zones:
                assert result.slots is not None
                events = self._counting.observe(
                    result.slots, result.slots_used, boxes, ids, best, size, frame, t
                )
            for tid, slot in zip(result.ended, result.ended_slots, strict=True):
                events += self._counting.forget(tid, slot)
            if n == len(dets):
                out = []
                for d, tid in zip(dets, ids, strict=True):
                    if tid >= 0:  # _with_track, inline: once per box per frame
                        values = d.__dict__.copy()
                        values["track_id"] = tid
                        d = _new(Detection)
                        _set(d, "__dict__", values)
                    out.append(d)
            else:  # a box's other classes get the id of its best one
                by_box = {
                    (d.left, d.top, d.width, d.height): tid
                    for d, tid in zip(best, ids, strict=True)
                    if tid >= 0
                }
                best_ids = iter(ids)
                out = []
                for d in dets:
                    tid = (
                        next(best_ids)
                        if d.best_class
                        else by_box.get((d.left, d.top, d.width, d.height), -1)
                    )
                    out.append(_with_track(d, tid) if tid >= 0 else d)
            return out, events

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
