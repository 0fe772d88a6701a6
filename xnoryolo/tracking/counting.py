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
from typing import TYPE_CHECKING, Any

import numpy as np

from xnoryolo.detector.detections import Names

from .events import AnalysisEvent, LineCrossed, ZoneEntered, ZoneLeft

if TYPE_CHECKING:
    from xnoryolo.kernels import track as _track_kernels
from .spec import LineSpec, ZoneSpec

# A line counts a track once its anchor is this many box heights past it (see LineCounter).
HYSTERESIS = 0.05


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


def _anchors(boxes: np.ndarray, anchor: int) -> np.ndarray:
    """The anchor points (N, 2) of boxes: bottom centre (anchor 0) or centre."""
    pts = np.empty((len(boxes), 2))
    pts[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2
    pts[:, 1] = boxes[:, 3] if anchor == 0 else (boxes[:, 1] + boxes[:, 3]) / 2
    return pts


def observe_frame(
    boxes: np.ndarray,
    slots: np.ndarray,
    lines: np.ndarray,
    zones: np.ndarray,
    edges: np.ndarray,
    watch: np.ndarray | None,
    hysteresis: float,
    last: np.ndarray,
    last_side: np.ndarray,
    inside: np.ndarray,
    seen_frame: np.ndarray,
    seen_t: np.ndarray,
    frame: int,
    t: float,
    events: np.ndarray,
) -> int:
    """Every line and zone of a frame over its boxes (N, 4: x0 y0 x1 y1); box i is a track's
    where slots[i] >= 0 (its slot in the memories), and watched by line / zone r where
    watch[r, i] (rows: the lines, then the zones; None: all). Line l: lines[l] = A (x, y), B
    (x, y), |B - A|, anchor (0: bottom centre, 1: centre); where box i's anchor crosses the
    segment to its right / left side, more than hysteresis box heights past it, the event
    (l, i, +1 / -1) (the track's memory: last[l] / last_side[l] at its slot, as in
    `line_crossings`). Zone z: zones[z] = first edge, edges, anchor, the edges rows of edges
    (vertex x, y, previous vertex's y, dx, dy; `polygon_edges`); where box i's anchor is
    inside (even-odd rule), seen_frame / seen_t at its slot take frame / t and, if
    inside[z, slot] was 0, it becomes 1: the event (L + z, i, +1); outside where it was 1:
    0 and (L + z, i, -1). The events go to events (>= (L + Z) * N rows) in that order: the
    lines, then the zones, each in box order. Returns their number."""
    nl = len(lines)
    found: list[tuple[int, int, int]] = []
    tracked = slots >= 0
    for li, (ax, ay, bx, by, norm, anchor) in enumerate(lines.tolist()):
        rows = np.flatnonzero(tracked if watch is None else tracked & (watch[li] != 0))
        sides = np.empty(len(rows), dtype=np.int8)
        crossed = np.empty(len(rows), dtype=np.uint8)
        b = boxes[rows]
        line_crossings(
            _anchors(b, int(anchor)),
            b[:, 3] - b[:, 1],
            ax,
            ay,
            bx,
            by,
            norm,
            hysteresis,
            slots[rows],
            last[li],
            last_side[li],
            sides,
            crossed,
        )
        hits = zip(rows.tolist(), sides.tolist(), crossed.tolist(), strict=True)
        found += [(li, i, side) for i, side, c in hits if c]
    for z, (first, count, anchor) in enumerate(zones.tolist()):
        rows = np.flatnonzero(tracked if watch is None else tracked & (watch[nl + z] != 0))
        now = np.empty(len(rows), dtype=np.uint8)
        e = edges[first : first + count]
        points_inside(
            _anchors(boxes[rows], anchor), e[:, 0], e[:, 1], e[:, 2], e[:, 3], e[:, 4], now
        )
        for i, k, a in zip(rows.tolist(), slots[rows].tolist(), now.tolist(), strict=True):
            if a:
                seen_frame[z, k], seen_t[z, k] = frame, t
                if not inside[z, k]:
                    inside[z, k] = 1
                    found.append((nl + z, i, 1))
            elif inside[z, k]:
                inside[z, k] = 0
                found.append((nl + z, i, -1))
    if found:
        events[: len(found)] = found
    return len(found)


class ObserveArrays:
    """`observe_frame`'s lines, zones and memories bound once, so that a frame's call passes
    only its boxes, slots and filter (the reference of the compiled class; why:
    bytetrack.TrackArrays)."""

    def __init__(
        self,
        lines: np.ndarray,
        zones: np.ndarray,
        edges: np.ndarray,
        hysteresis: float,
        last: np.ndarray,
        last_side: np.ndarray,
        inside: np.ndarray,
        seen_frame: np.ndarray,
        seen_t: np.ndarray,
        events: np.ndarray,
    ) -> None:
        self.lines, self.zones, self.edges, self.hysteresis = lines, zones, edges, hysteresis
        self.last, self.last_side, self.inside = last, last_side, inside
        self.seen_frame, self.seen_t, self.events = seen_frame, seen_t, events

    def observe_frame(
        self, boxes: np.ndarray, slots: np.ndarray, watch: np.ndarray | None, frame: int, t: float
    ) -> int:
        return observe_frame(
            boxes,
            slots,
            self.lines,
            self.zones,
            self.edges,
            watch,
            self.hysteresis,
            self.last,
            self.last_side,
            self.inside,
            self.seen_frame,
            self.seen_t,
            frame,
            t,
            self.events,
        )


OBSERVE_ARRAYS: type[ObserveArrays] | type[_track_kernels.ObserveArrays]
try:
    from xnoryolo.kernels import track as _compiled
except ImportError:  # kernels not built: the references do the same, slower
    POINTS_INSIDE, OBSERVE_ARRAYS = points_inside, ObserveArrays
else:
    POINTS_INSIDE, OBSERVE_ARRAYS = _compiled.points_inside, _compiled.ObserveArrays


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
        # the tracks' memory (last point and side off the line) is `Counting`'s, by slot
        self._counted: set[tuple[int, str]] = set()
        self._classes = frozenset(self.spec.classes) if self.spec.classes else None

    def geometry(self, size: tuple[int, int]) -> tuple[float, float, float, float, float]:
        """A, B in pixels and |B - A|."""
        w, h = size
        (ax, ay), (bx, by) = ((x * w, y * h) for x, y in self.spec.points)
        return ax, ay, bx, by, max(1e-9, float(np.hypot(bx - ax, by - ay)))

    def crossed(
        self, track_id: int, side: int, class_id: int, name: str, frame: int, t: float
    ) -> LineCrossed | None:
        """A crossing to the right (side +1: "in") or left (-1: "out") of A->B; counted once
        per track and direction."""
        direction = "in" if side > 0 else "out"
        if (track_id, direction) in self._counted:
            return None
        self._counted.add((track_id, direction))
        self.counts[direction][name] += 1
        return LineCrossed(self.spec.name, direction, track_id, class_id, name, frame, t)

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
    slot: int  # the track's slot in `Counting`'s memories


@dataclass
class ZoneWatcher:
    spec: ZoneSpec
    entered: Counter[str] = field(default_factory=Counter)
    left: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        # the tracks inside; when each was last seen there is `Counting`'s, by slot
        self._inside: dict[int, _Visit] = {}
        self._classes = frozenset(self.spec.classes) if self.spec.classes else None
        self._dwell_sum = 0.0
        self._dwell_max = 0.0

    def edges(self, size: tuple[int, int]) -> np.ndarray:
        """The polygon's edges in pixels, one row each (`polygon_edges`' five arrays)."""
        return np.stack(polygon_edges(np.array(self.spec.points, dtype=np.float64) * size), 1)

    def enter(
        self, track_id: int, slot: int, class_id: int, name: str, frame: int, t: float
    ) -> ZoneEntered:
        self._inside[track_id] = _Visit(class_id, name, t, slot)
        self.entered[name] += 1
        return ZoneEntered(self.spec.name, track_id, class_id, name, frame, t)

    def leave(self, track_id: int, frame: int, t: float, reason: str) -> ZoneLeft:
        """The track left (reason "exited") or ended where it was last seen inside, at frame
        and t ("lost")."""
        visit = self._inside.pop(track_id)
        dwell = max(0.0, t - visit.since)
        self.left[visit.name] += 1
        self._dwell_sum += dwell
        self._dwell_max = max(self._dwell_max, dwell)
        return ZoneLeft(
            self.spec.name, track_id, visit.class_id, visit.name, frame, t, dwell, reason
        )

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


class Counting:
    """The lines and zones of one analysis over the tracked boxes of each frame: one compiled
    call a frame (`observe_frame`) over every line and zone; each track's memory for them is
    at its tracker slot (`TrackUpdate.slots`) of arrays shared by all of them, cleared when
    the track ends; Python only for the events."""

    def __init__(self, lines: list[LineCounter], zones: list[ZoneWatcher]) -> None:
        self.lines = lines
        self.zones = zones
        nl, nz = len(lines), len(zones)
        self._cap = 0
        self._last = np.zeros((nl, 0, 2))
        self._last_side = np.zeros((nl, 0), dtype=np.int8)
        self._inside = np.zeros((nz, 0), dtype=np.uint8)
        self._seen_frame = np.zeros((nz, 0), dtype=np.int64)
        self._seen_t = np.zeros((nz, 0))
        self._grow(64)
        self._events = np.zeros((0, 3), dtype=np.int64)
        self._filters = [c._classes for c in lines] + [z._classes for z in zones]
        self._filtered = any(f is not None for f in self._filters)
        self._size: tuple[int, int] | None = None
        self._lines = np.zeros((nl, 6))
        self._zones = np.zeros((nz, 3), dtype=np.int64)
        self._edges = np.zeros((0, 5))
        self._bind()

    def _bind(self) -> None:
        """The arrays of the compiled call, bound again whenever one of them is replaced."""
        self._k = OBSERVE_ARRAYS(
            self._lines,
            self._zones,
            self._edges,
            HYSTERESIS,
            self._last,
            self._last_side,
            self._inside,
            self._seen_frame,
            self._seen_t,
            self._events,
        )

    def _grow(self, cap: int) -> None:
        old = self._cap
        for name in ("_last", "_last_side", "_inside", "_seen_frame", "_seen_t"):
            a = getattr(self, name)
            grown = np.zeros((a.shape[0], cap, *a.shape[2:]), dtype=a.dtype)
            grown[:, :old] = a
            setattr(self, name, grown)
        self._cap = cap

    def _geometry(self, size: tuple[int, int]) -> None:
        """Lines and zone edges in pixels, once per frame size."""
        if size == self._size:
            return
        self._size = size
        for li, line in enumerate(self.lines):
            self._lines[li] = (*line.geometry(size), 0 if line.spec.anchor == "bottom" else 1)
        edges = [z.edges(size) for z in self.zones]
        first = 0
        for z, (zone, e) in enumerate(zip(self.zones, edges, strict=True)):
            self._zones[z] = (first, len(e), 0 if zone.spec.anchor == "bottom" else 1)
            first += len(e)
        self._edges = np.ascontiguousarray(np.concatenate(edges)) if edges else np.zeros((0, 5))
        self._bind()

    def observe(
        self,
        slots: np.ndarray,
        slots_used: int,
        boxes: np.ndarray,
        ids: np.ndarray,
        classes: np.ndarray,
        names: Names,
        size: tuple[int, int],
        frame: int,
        t: float,
    ) -> list[AnalysisEvent]:
        """The events of one frame's boxes (N, 4: x0 y0 x1 y1 pixels), box i tracked where
        slots[i] >= 0 (slots below slots_used), with id ids[i] and class classes[i] (named
        names[classes[i]]): lines in order, each in the order of the boxes, then the zones."""
        self._geometry(size)
        n = len(ids)
        nl, nr = len(self.lines), len(self._filters)
        if slots_used > self._cap:
            self._grow(max(slots_used, 2 * self._cap))
            self._bind()
        if nr * n > len(self._events):
            self._events = np.zeros((max(nr * n, 2 * len(self._events)), 3), dtype=np.int64)
            self._bind()
        watch = None
        if self._filtered:
            watch = np.ones((nr, n), dtype=np.uint8)
            box_names = [names[c] for c in classes.tolist()]
            for r, wanted in enumerate(self._filters):
                if wanted is not None:
                    watch[r] = np.fromiter((name in wanted for name in box_names), bool, n)
        count = self._k.observe_frame(boxes, slots, watch, frame, t)
        if not count:
            return []
        out: list[AnalysisEvent] = []
        for r, i, c in self._events[:count].tolist():
            tid, cls = int(ids[i]), int(classes[i])
            if r < nl:
                crossing = self.lines[r].crossed(tid, c, cls, names[cls], frame, t)
                if crossing is not None:
                    out.append(crossing)
            elif c > 0:
                out.append(self.zones[r - nl].enter(tid, int(slots[i]), cls, names[cls], frame, t))
            else:
                out.append(self.zones[r - nl].leave(tid, frame, t, "exited"))
        return out

    def forget(self, track_id: int, slot: int) -> list[AnalysisEvent]:
        """The track at slot ended: it left the zones it was in where it was last seen
        there, and its slot's memories are cleared for the next track."""
        if slot >= self._cap:  # never seen here
            return []
        out: list[AnalysisEvent] = []
        for z, zone in enumerate(self.zones):
            if self._inside[z, slot]:
                frame, t = int(self._seen_frame[z, slot]), float(self._seen_t[z, slot])
                out.append(zone.leave(track_id, frame, t, "lost"))
        self._last_side[:, slot] = 0
        self._inside[:, slot] = 0
        return out

    def finish(self) -> list[AnalysisEvent]:
        """The end of a video: tracks still inside zones leave where they were last seen."""
        out: list[AnalysisEvent] = []
        for z, zone in enumerate(self.zones):
            for tid in zone.inside_ids():
                k = zone._inside[tid].slot
                self._inside[z, k] = 0
                frame, t = int(self._seen_frame[z, k]), float(self._seen_t[z, k])
                out.append(zone.leave(tid, frame, t, "lost"))
        return out
