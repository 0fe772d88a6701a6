"""Counting lines and dwell zones over tracks.

A line counts a track when its anchor point (bottom centre or centre of the box) moves from
one side of the segment A→B to the other across the segment itself, and at least
`HYSTERESIS` box heights past it; each track counts at most once each way per line, so a box
jittering on the line is not counted again and again. A
zone knows which tracks are inside; entering, leaving and the time inside are its events."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .events import AnalysisEvent, LineCrossed, ZoneEntered, ZoneLeft
from .spec import Anchor, LineSpec, ZoneSpec

# A line counts a track once its anchor is this many box heights past it (see LineCounter).
HYSTERESIS = 0.05


@dataclass(frozen=True)
class Observation:
    """A tracked box on one inferred frame."""

    track_id: int
    class_id: int
    name: str
    box: tuple[float, float, float, float]  # x0 y0 x1 y1 pixels


@dataclass
class Observations:
    """The tracked boxes of one inferred frame, with both anchor points computed once."""

    items: list[Observation]
    boxes: np.ndarray  # (N, 4) x0 y0 x1 y1

    def __post_init__(self) -> None:
        b = self.boxes.reshape(-1, 4)
        cx = (b[:, 0] + b[:, 2]) / 2
        self._heights = b[:, 3] - b[:, 1]
        self._anchors = {
            "bottom": np.stack([cx, b[:, 3]], axis=1),
            "center": np.stack([cx, (b[:, 1] + b[:, 3]) / 2], axis=1),
        }

    def select(
        self, classes: frozenset[str] | None, anchor: Anchor
    ) -> tuple[list[Observation], np.ndarray, np.ndarray]:
        """The observations of `classes` (all where None), their anchors and box heights."""
        pts = self._anchors[anchor]
        heights = self._heights
        if classes is None:
            return self.items, pts, heights
        keep = [i for i, o in enumerate(self.items) if o.name in classes]
        return [self.items[i] for i in keep], pts[keep], heights[keep]


def _cross(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> float:
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def segments_cross(
    p: tuple[float, float], q: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> bool:
    """Whether segment p-q crosses segment a-b (touching at an end point counts)."""
    d1 = _cross(*a, *b, *p)
    d2 = _cross(*a, *b, *q)
    d3 = _cross(*p, *q, *a)
    d4 = _cross(*p, *q, *b)
    return d1 * d2 <= 0 and d3 * d4 <= 0 and not (d1 == 0 and d2 == 0)


def points_in_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule for every point (N, 2) at once; poly (K, 2) pixels."""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    xs, ys = poly[:, 0], poly[:, 1]
    xj, yj = xs[np.arange(-1, len(xs) - 1)], ys[np.arange(-1, len(ys) - 1)]  # previous vertex
    dy = np.where(yj == ys, 1e-12, yj - ys)
    px, py = points[:, :1], points[:, 1:]
    crossing = ((ys > py) != (yj > py)) & (px < (xj - xs) * (py - ys) / dy + xs)
    return np.count_nonzero(crossing, axis=1) % 2 == 1


def point_in_polygon(x: float, y: float, poly: np.ndarray) -> bool:
    return bool(points_in_polygon(np.array([[x, y]], dtype=np.float64), poly)[0])


@dataclass
class LineCounter:
    spec: LineSpec
    counts: dict[str, Counter[str]] = field(
        default_factory=lambda: {"in": Counter(), "out": Counter()}
    )

    def __post_init__(self) -> None:
        self._last: dict[int, tuple[tuple[float, float], float]] = {}  # anchor, side
        self._counted: set[tuple[int, str]] = set()
        self._classes = frozenset(self.spec.classes) if self.spec.classes else None

    def observe(
        self, obs: Observations, size: tuple[int, int], frame: int, t: float
    ) -> list[AnalysisEvent]:
        w, h = size
        (ax, ay), (bx, by) = ((x * w, y * h) for x, y in self.spec.points)
        out: list[AnalysisEvent] = []
        obs_list, pts, heights = obs.select(self._classes, self.spec.anchor)
        # signed distance to the line; within HYSTERESIS box heights of it a track keeps the
        # side it had, so a box wobbling on the line is not counted across and back
        norm = max(1e-9, float(np.hypot(bx - ax, by - ay)))
        dist = ((bx - ax) * (pts[:, 1] - ay) - (by - ay) * (pts[:, 0] - ax)) / norm
        sides = np.where(
            dist > HYSTERESIS * heights, 1.0, np.where(dist < -HYSTERESIS * heights, -1.0, 0.0)
        ).tolist()
        for o, p, s1 in zip(obs_list, map(tuple, pts.tolist()), sides, strict=True):
            if s1 == 0:
                continue
            last = self._last.get(o.track_id)
            self._last[o.track_id] = (p, s1)
            if last is None:
                continue
            prev, s0 = last
            if s0 == s1 or not segments_cross(prev, p, (ax, ay), (bx, by)):
                continue
            # y grows downwards: a positive cross product is the right of A→B on the picture
            direction = "in" if s1 > 0 else "out"
            if (o.track_id, direction) in self._counted:
                continue
            self._counted.add((o.track_id, direction))
            self.counts[direction][o.name] += 1
            out.append(
                LineCrossed(self.spec.name, direction, o.track_id, o.class_id, o.name, frame, t)
            )
        return out

    def forget(self, track_id: int) -> None:
        self._last.pop(track_id, None)

    def summary(self) -> dict[str, Any]:
        return {
            "points": [list(p) for p in self.spec.points],
            "in": dict(sorted(self.counts["in"].items())),
            "out": dict(sorted(self.counts["out"].items())),
            "total_in": sum(self.counts["in"].values()),
            "total_out": sum(self.counts["out"].values()),
        }


@dataclass
class _Visit:
    class_id: int
    name: str
    since: float
    last_seen: float
    last_frame: int


@dataclass
class ZoneWatcher:
    spec: ZoneSpec
    entered: Counter[str] = field(default_factory=Counter)
    left: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._inside: dict[int, _Visit] = {}
        self._classes = frozenset(self.spec.classes) if self.spec.classes else None
        self._dwell_sum = 0.0
        self._dwell_max = 0.0
        self._size: tuple[int, int] | None = None
        self._poly = np.zeros((0, 2))

    def _polygon(self, size: tuple[int, int]) -> np.ndarray:
        if size != self._size:
            self._size = size
            self._poly = np.array(self.spec.points, dtype=np.float64) * np.array(size)
        return self._poly

    def observe(
        self, obs: Observations, size: tuple[int, int], frame: int, t: float
    ) -> list[AnalysisEvent]:
        poly = self._polygon(size)
        out: list[AnalysisEvent] = []
        obs_list, pts, _ = obs.select(self._classes, self.spec.anchor)
        inside_all = points_in_polygon(pts, poly).tolist()
        for o, inside in zip(obs_list, inside_all, strict=True):
            visit = self._inside.get(o.track_id)
            if inside and visit is None:
                self._inside[o.track_id] = _Visit(o.class_id, o.name, t, t, frame)
                self.entered[o.name] += 1
                out.append(ZoneEntered(self.spec.name, o.track_id, o.class_id, o.name, frame, t))
            elif inside and visit is not None:
                visit.last_seen, visit.last_frame = t, frame
            elif visit is not None:
                out.append(self._leave(o.track_id, frame, t, "exited"))
        return out

    def _leave(self, track_id: int, frame: int, t: float, reason: str) -> ZoneLeft:
        visit = self._inside.pop(track_id)
        dwell = max(0.0, t - visit.since)
        self.left[visit.name] += 1
        self._dwell_sum += dwell
        self._dwell_max = max(self._dwell_max, dwell)
        return ZoneLeft(
            self.spec.name, track_id, visit.class_id, visit.name, frame, t, dwell, reason
        )

    def forget(self, track_id: int) -> list[AnalysisEvent]:
        """The track ended: it left where it was last seen."""
        visit = self._inside.get(track_id)
        if visit is None:
            return []
        return [self._leave(track_id, visit.last_frame, visit.last_seen, "lost")]

    def inside_ids(self) -> list[int]:
        return sorted(self._inside)

    def occupancy(self) -> Counter[str]:
        return Counter(v.name for v in self._inside.values())

    def summary(self) -> dict[str, Any]:
        n = sum(self.left.values())
        return {
            "points": [list(p) for p in self.spec.points],
            "entered": dict(sorted(self.entered.items())),
            "left": dict(sorted(self.left.items())),
            "inside": dict(sorted(self.occupancy().items())),
            "dwell_s": {
                "mean": round(self._dwell_sum / n, 3) if n else None,
                "max": round(self._dwell_max, 3) if n else None,
            },
        }
