"""Counting lines and dwell zones over tracks.

A line counts a track when its anchor point (bottom centre or centre of the box) moves from
one side of the segment A→B to the other across the segment itself, and at least
`HYSTERESIS` box heights past it; each track counts at most once each way per line, so a box
jittering on the line is not counted again and again. A
zone knows which tracks are inside; entering, leaving and the time inside are its events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

import numpy as np

from .events import AnalysisEvent, LineCrossed, ZoneEntered, ZoneLeft
from .spec import Anchor, LineSpec, ZoneSpec

# A line counts a track once its anchor is this many box heights past it (see LineCounter).
HYSTERESIS = 0.05


@dataclass
class Observations:
    """The tracked boxes of one inferred frame, one row each: track ids, class ids, boxes
    (N, 4: x0 y0 x1 y1 pixels) and the class names (only read for events and class filters).
    Anchor points and selections are computed once per frame, whatever reads them."""

    track_ids: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray
    names: Sequence[str]

    def __post_init__(self) -> None:
        # the kernels read float64 rows in C order (a no-op for the tracker's own arrays)
        self.boxes = np.ascontiguousarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self._anchors: dict[str, np.ndarray] = {}
        self._rows: dict[frozenset[str], np.ndarray] = {}
        self._heights: np.ndarray | None = None
        self.id_list: list[int] = self.track_ids.tolist()

    @property
    def heights(self) -> np.ndarray:
        if self._heights is None:
            self._heights = self.boxes[:, 3] - self.boxes[:, 1]
        return self._heights

    def anchors(self, anchor: Anchor) -> np.ndarray:
        pts = self._anchors.get(anchor)
        if pts is None:
            b = self.boxes
            pts = self._anchors[anchor] = np.empty((len(b), 2))
            pts[:, 0] = (b[:, 0] + b[:, 2]) / 2
            pts[:, 1] = b[:, 3] if anchor == "bottom" else (b[:, 1] + b[:, 3]) / 2
        return pts

    def select(self, classes: frozenset[str] | None) -> np.ndarray | None:
        """The rows of `classes` (None: every row)."""
        if classes is None:
            return None
        rows = self._rows.get(classes)
        if rows is None:
            rows = self._rows[classes] = np.flatnonzero(
                np.fromiter((n in classes for n in self.names), bool, len(self.names))
            )
        return rows


def _cross(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> float:
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def segments_cross(
    p: Sequence[float], q: Sequence[float], a: Sequence[float], b: Sequence[float]
) -> bool:
    """Whether segment p-q crosses segment a-b (touching at an end point counts)."""
    d1 = _cross(*a, *b, *p)
    d2 = _cross(*a, *b, *q)
    d3 = _cross(*p, *q, *a)
    d4 = _cross(*p, *q, *b)
    return d1 * d2 <= 0 and d3 * d4 <= 0 and not (d1 == 0 and d2 == 0)


Edges = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def polygon_edges(poly: np.ndarray) -> Edges:
    """What `points_in_polygon` needs of a polygon (K, 2), computed once per polygon."""
    poly = np.asarray(poly, dtype=np.float64)
    xs, ys = poly[:, 0], poly[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)  # previous vertex
    return xs, ys, yj, xj - xs, np.where(yj == ys, 1e-12, yj - ys)


def points_inside(
    points: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    yj: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    inside: np.ndarray,
) -> None:
    """Even-odd rule for every point (N, 2) at once against a polygon's edges
    (`polygon_edges`): inside (N, uint8) 1 or 0."""
    px, py = points[:, :1], points[:, 1:]
    crossing = ((ys > py) != (yj > py)) & (px < dx * (py - ys) / dy + xs)
    inside[:] = np.logical_xor.reduce(crossing, axis=1)  # an odd number of crossings


def line_crossings(
    points: np.ndarray,
    heights: np.ndarray,
    ax: float,
    ay: float,
    bx: float,
    by: float,
    norm: float,
    hysteresis: float,
    slots: np.ndarray,
    last: np.ndarray,
    last_side: np.ndarray,
    sides: np.ndarray,
    crossed: np.ndarray,
) -> int:
    """sides (N, int8): +1 where point i is more than hysteresis * heights[i] right of the
    line A->B on the picture (y down; norm is |B - A|), -1 as far left, else 0. Point i's
    memory is slot slots[i] of last (N', 2: the point) and last_side (its side; 0: none
    yet): where a point is off the line and its last side was the other one, crossed[i] = 1
    if the move crosses the segment A-B; then the memory takes the point. Returns the number
    of crossings."""
    dist = ((bx - ax) * (points[:, 1] - ay) - (by - ay) * (points[:, 0] - ax)) / norm
    margin = hysteresis * heights
    sides[:] = (dist > margin).view(np.int8) - (dist < -margin).view(np.int8)
    crossed[:] = 0
    n = 0
    a, b = (ax, ay), (bx, by)
    for j, (k, p, s1) in enumerate(
        zip(slots.tolist(), points.tolist(), sides.tolist(), strict=True)
    ):
        if s1 == 0:
            continue
        s0, prev = int(last_side[k]), last[k].tolist()
        last[k], last_side[k] = p, s1
        if s0 != 0 and s0 != s1 and segments_cross(prev, p, a, b):
            crossed[j] = 1
            n += 1
    return n


try:
    from xnoryolo.kernels import track as _compiled
except ImportError:  # kernels not built: the references do the same, slower
    POINTS_INSIDE, LINE_CROSSINGS = points_inside, line_crossings
else:
    POINTS_INSIDE, LINE_CROSSINGS = _compiled.points_inside, _compiled.line_crossings


def points_in_polygon(points: np.ndarray, poly: np.ndarray | Edges) -> np.ndarray:
    """Even-odd rule for every point (N, 2) at once; poly (K, 2) pixels, or its edges."""
    edges = polygon_edges(poly) if isinstance(poly, np.ndarray) else poly
    inside = np.empty(len(points), dtype=np.uint8)
    POINTS_INSIDE(np.ascontiguousarray(points, dtype=np.float64), *edges, inside)
    return inside.view(bool)


def point_in_polygon(x: float, y: float, poly: np.ndarray) -> bool:
    return bool(points_in_polygon(np.array([[x, y]], dtype=np.float64), poly)[0])


@dataclass
class LineCounter:
    spec: LineSpec
    counts: dict[str, Counter[str]] = field(
        default_factory=lambda: {"in": Counter(), "out": Counter()}
    )

    def __post_init__(self) -> None:
        # per track a slot of two arrays: its anchor and side when last seen off the line
        # (side 0: not yet); the arithmetic over all tracks is one kernel call a frame
        self._slot: dict[int, int] = {}
        self._free: list[int] = []
        self._last = np.zeros((64, 2))
        self._last_side = np.zeros(64, dtype=np.int8)
        self._counted: set[tuple[int, str]] = set()
        self._classes = frozenset(self.spec.classes) if self.spec.classes else None
        self._size: tuple[int, int] | None = None
        self._segment = (0.0, 0.0, 0.0, 0.0, 1.0)

    def _geometry(self, size: tuple[int, int]) -> tuple[float, float, float, float, float]:
        """A, B in pixels and |B - A|, computed once per frame size."""
        if size != self._size:
            w, h = size
            (ax, ay), (bx, by) = ((x * w, y * h) for x, y in self.spec.points)
            norm = max(1e-9, float(np.hypot(bx - ax, by - ay)))
            self._size, self._segment = size, (ax, ay, bx, by, norm)
        return self._segment

    def _slots(self, ids: list[int]) -> np.ndarray:
        slot_of = self._slot
        slots = [slot_of.get(tid, -1) for tid in ids]
        if -1 in slots:
            for j, k in enumerate(slots):
                if k < 0:
                    slots[j] = slot_of[ids[j]] = self._new_slot()
        return np.array(slots, dtype=np.int64)

    def _new_slot(self) -> int:
        if self._free:
            k = self._free.pop()
        else:
            k = len(self._slot)
            if k == len(self._last_side):
                self._last = np.concatenate([self._last, np.zeros_like(self._last)])
                self._last_side = np.concatenate([self._last_side, np.zeros_like(self._last_side)])
        self._last_side[k] = 0
        return k

    def observe(
        self, obs: Observations, size: tuple[int, int], frame: int, t: float
    ) -> list[AnalysisEvent]:
        ax, ay, bx, by, norm = self._geometry(size)
        out: list[AnalysisEvent] = []
        rows = obs.select(self._classes)
        pts, heights, ids = obs.anchors(self.spec.anchor), obs.heights, obs.id_list
        if rows is not None:
            pts, heights, ids = pts[rows], heights[rows], [ids[r] for r in rows.tolist()]
        # signed distance to the line; within HYSTERESIS box heights of it a track keeps the
        # side it had, so a box wobbling on the line is not counted across and back
        # y grows downwards: a positive cross product is the right of A->B on the picture
        sides = np.empty(len(ids), dtype=np.int8)
        crossed = np.empty(len(ids), dtype=np.uint8)
        n = LINE_CROSSINGS(
            pts,
            heights,
            ax,
            ay,
            bx,
            by,
            norm,
            HYSTERESIS,
            self._slots(ids),
            self._last,
            self._last_side,
            sides,
            crossed,
        )
        if not n:
            return out
        for j in crossed.nonzero()[0].tolist():
            tid = ids[j]
            direction = "in" if sides[j] > 0 else "out"
            if (tid, direction) in self._counted:
                continue
            self._counted.add((tid, direction))
            r = j if rows is None else int(rows[j])
            name = obs.names[r]
            self.counts[direction][name] += 1
            out.append(
                LineCrossed(self.spec.name, direction, tid, int(obs.class_ids[r]), name, frame, t)
            )
        return out

    def forget(self, track_id: int) -> None:
        k = self._slot.pop(track_id, None)
        if k is not None:
            self._free.append(k)

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


@dataclass
class ZoneWatcher:
    spec: ZoneSpec
    entered: Counter[str] = field(default_factory=Counter)
    left: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._inside: dict[int, _Visit] = {}
        # per track inside: the frame and time it was last seen there
        self._seen: dict[int, tuple[int, float]] = {}
        self._classes = frozenset(self.spec.classes) if self.spec.classes else None
        self._dwell_sum = 0.0
        self._dwell_max = 0.0
        self._size: tuple[int, int] | None = None
        self._edges: Edges | None = None

    def _polygon(self, size: tuple[int, int]) -> Edges:
        if size != self._size or self._edges is None:
            self._size = size
            self._edges = polygon_edges(np.array(self.spec.points, dtype=np.float64) * size)
        return self._edges

    def observe(
        self, obs: Observations, size: tuple[int, int], frame: int, t: float
    ) -> list[AnalysisEvent]:
        edges = self._polygon(size)
        out: list[AnalysisEvent] = []
        rows = obs.select(self._classes)
        pts, ids = obs.anchors(self.spec.anchor), obs.id_list
        if rows is not None:
            pts, ids = pts[rows], [ids[r] for r in rows.tolist()]
        inside = np.empty(len(ids), dtype=np.uint8)
        POINTS_INSIDE(pts, *edges, inside)
        # set operations over the ids (no loop a track): who stays, comes in, goes out
        visits = self._inside
        now = set(compress(ids, inside.tolist()))
        stay = now & visits.keys()
        if stay:
            self._seen.update(dict.fromkeys(stay, (frame, t)))
        entering = now - stay
        leaving = (visits.keys() & set(ids)) - now
        if not entering and not leaving:
            return out
        for j, tid in enumerate(ids):  # the events in the order of the boxes
            if tid in entering:
                r = j if rows is None else int(rows[j])
                name, class_id = obs.names[r], int(obs.class_ids[r])
                visits[tid] = _Visit(class_id, name, t)
                self._seen[tid] = (frame, t)
                self.entered[name] += 1
                out.append(ZoneEntered(self.spec.name, tid, class_id, name, frame, t))
            elif tid in leaving:
                out.append(self._leave(tid, frame, t, "exited"))
        return out

    def _leave(self, track_id: int, frame: int, t: float, reason: str) -> ZoneLeft:
        visit = self._inside.pop(track_id)
        del self._seen[track_id]
        dwell = max(0.0, t - visit.since)
        self.left[visit.name] += 1
        self._dwell_sum += dwell
        self._dwell_max = max(self._dwell_max, dwell)
        return ZoneLeft(
            self.spec.name, track_id, visit.class_id, visit.name, frame, t, dwell, reason
        )

    def forget(self, track_id: int) -> list[AnalysisEvent]:
        """The track ended: it left where it was last seen."""
        if track_id not in self._inside:
            return []
        frame, t = self._seen[track_id]
        return [self._leave(track_id, frame, t, "lost")]

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
