"""A ByteTrack-class multi-object tracker (Zhang et al., ECCV 2022): every box is matched,
the confident ones first, then the weak ones only to tracks that are still being followed, so
that a person half hidden behind another keeps their track. Tracks move by a constant-velocity
Kalman filter (`kalman.py`); a track gets an id only after `min_hits` matches in a row (birth
hysteresis) and is dropped only after `lost_frames` inferred frames unseen (death
hysteresis), during which it can be found again where the filter predicts it.

Boxes of different classes never match. Deterministic: the same boxes in give the same ids
out (ids count from 1 per tracker). The assignment is an exact minimum-cost matching: the
compiled kernel (kernels/track.pyx) where the optimum is unique, `lap`'s LAPJV where two
boxes or two tracks are alike and more than one matching is optimal (`match_stages` below is
the reference of the kernel, on LAPJV throughout).

A frame is two compiled calls after the prediction: `track_match` (score and state flags,
costs, the three stages) and `track_life` (Kalman update, hits, ids, losses, ends, births)
over the tracks' arrays; the functions of those names below are their references."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import lap
import numpy as np

from . import kalman
from .spec import TrackerSpec

if TYPE_CHECKING:
    from xnoryolo.kernels import track as _track_kernels


class TrackState(enum.IntEnum):
    TENTATIVE = 0  # born, not yet matched `min_hits` times: no id shown
    TRACKED = 1  # confirmed and matched on the last inferred frame
    LOST = 2  # confirmed, unmatched lately; kept `lost_frames` inferred frames


class TrackUpdate(NamedTuple):
    """One update's answer: ids[i] is the id of box i (-1: none); `ended` the ids of tracks
    dropped in this update. slots[i]: the slot of box i's track (-1: none), a small number
    that stays the track's while it lives (an index into memories kept per track, e.g. the
    lines' and zones'); `ended_slots` those of the ended tracks; `slots_used` how many slots
    there are so far. (A named tuple: made once a frame, it costs a third of a frozen
    dataclass.)"""

    ids: np.ndarray
    ended: tuple[int, ...] = ()
    slots: np.ndarray | None = None
    ended_slots: tuple[int, ...] = ()
    slots_used: int = 0


@dataclass(frozen=True)
class TrackView:
    """A confirmed track as the filter sees it now (for drawing and counting)."""

    track_id: int
    class_id: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels
    state: TrackState


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a (N, 4) with every box of b (M, 4), both x0 y0 x1 y1."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax0, ay0, ax1, ay1 = np.asarray(a, dtype=np.float64).T[:, :, None]  # (N, 1) each
    bx0, by0, bx1, by1 = np.asarray(b, dtype=np.float64).T  # (M,) each
    iw = np.minimum(ax1, bx1) - np.maximum(ax0, bx0)
    ih = np.minimum(ay1, by1) - np.maximum(ay0, by0)
    inter = np.maximum(iw, 0.0, out=iw) * np.maximum(ih, 0.0, out=ih)
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def assign(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one matching of rows to columns, pairs costing more than `limit`
    left out."""
    rows, cols = _assign(cost, limit)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def _assign(cost: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """`assign` as two index arrays, rows ascending."""
    if cost.size == 0:
        return _NONE, _NONE
    feasible = cost <= limit
    row_n = np.add.reduce(feasible, axis=1)
    col_n = np.add.reduce(feasible, axis=0)
    if row_n.max() <= 1 and col_n.max() <= 1:
        # no two pairs compete (none at all, or each alone in its row and its column): the
        # optimum takes every pair as it is, as LAPJV would
        rows, cols = feasible.nonzero()
        return rows, cols
    # rows and columns without a pair within the limit stay unmatched in any optimum: LAPJV
    # solves only the rest
    r = row_n.nonzero()[0]
    c = col_n.nonzero()[0]
    sub = cost[r[:, None], c]
    _, x, _ = lap.lapjv(sub, extend_cost=True, cost_limit=limit)
    rows = (x >= 0).nonzero()[0]
    cols = x[rows]
    ok = sub[rows, cols] <= limit
    return r[rows[ok]], c[cols[ok]]


_NONE = np.zeros(0, dtype=np.int64)


def iou_cost(
    rows: np.ndarray,
    row_class: np.ndarray,
    boxes: np.ndarray,
    box_class: np.ndarray,
    cost: np.ndarray,
) -> None:
    """cost (N, M) = 1 - IoU of each row's box (rows[:, :4]: centre, aspect ratio, height)
    with each box (x0 y0 x1 y1), 2 (never a match) where the classes differ."""
    cost[...] = np.where(
        row_class[:, None] == box_class,
        1.0 - iou_matrix(kalman.xyah_to_xyxy(rows[:, :4]), boxes),
        2.0,
    )


def match_stages(
    cost: np.ndarray,
    row_flags: np.ndarray,
    col_flags: np.ndarray,
    stage_rows: np.ndarray,
    stage_cols: np.ndarray,
    limits: np.ndarray,
    col_of_row: np.ndarray,
    row_of_col: np.ndarray,
) -> int:
    """Stage s matches the free rows with a flag of stage_rows[s] to the free columns with a
    flag of stage_cols[s] (free: -1 in col_of_row / row_of_col), at the least total cost,
    pairs costing more than limits[s] left out; the pairs are written to both. Returns -1:
    every stage done (the compiled kernel may return a stage it left to this reference,
    where more than one matching is optimal and LAPJV's choice is the answer)."""
    for row_bits, col_bits, limit in zip(
        stage_rows.tolist(), stage_cols.tolist(), limits.tolist(), strict=True
    ):
        rows = (((row_flags & row_bits) != 0) & (col_of_row < 0)).nonzero()[0]
        cols = (((col_flags & col_bits) != 0) & (row_of_col < 0)).nonzero()[0]
        if not len(rows) or not len(cols):
            continue
        r, c = _assign(cost[rows[:, None], cols], limit)
        col_of_row[rows[r]] = cols[c]
        row_of_col[cols[c]] = rows[r]
    return -1


def track_match(
    rows: np.ndarray,
    row_class: np.ndarray,
    life: np.ndarray,
    n: int,
    steps: float,
    q_scale: np.ndarray,
    q_fixed: np.ndarray,
    boxes: np.ndarray,
    box_class: np.ndarray,
    scores: np.ndarray,
    score_edges: np.ndarray,
    state_flags: np.ndarray,
    stage_rows: np.ndarray,
    stage_cols: np.ndarray,
    limits: np.ndarray,
    cost: np.ndarray,
    row_flags: np.ndarray,
    box_flags: np.ndarray,
    det_of: np.ndarray,
    box_of: np.ndarray,
) -> int:
    """A frame's prediction and matching of the first n rows (rows (C, 20), row_class, life
    (C, 5): state first) to the boxes (M): the rows move `steps` steps (none for 0),
    box_flags[:M] by score (below score_edges[0] 0, below score_edges[1] _LOW, else
    _HIGH), row_flags[:n] = state_flags[state], cost[:n, :M] the 1 - IoU costs
    (`iou_cost`), det_of[:n] / box_of[:M] the pairs of the stages (`match_stages`, from all
    free). The scratch arrays may be longer. Returns -1 (the compiled kernel may return a
    stage it left to `match_stages`)."""
    m = len(boxes)
    if n and steps != 0.0:
        kalman.predict_rows(rows[:n], steps, True, q_scale, q_fixed)
    box_flags[:m] = _SCORE_FLAGS[np.searchsorted(score_edges, scores, side="right")]
    row_flags[:n] = state_flags[life[:n, 0]]
    det_of[:n] = -1
    box_of[:m] = -1
    if n and m:
        c = cost[:n, :m]
        iou_cost(rows[:n], row_class[:n], boxes, box_class, c)
        match_stages(
            c, row_flags[:n], box_flags[:m], stage_rows, stage_cols, limits, det_of[:n], box_of[:m]
        )
    return -1


def track_life(
    rows: np.ndarray,
    row_class: np.ndarray,
    life: np.ndarray,
    n: int,
    det_of: np.ndarray,
    box_of: np.ndarray,
    box_flags: np.ndarray,
    scores: np.ndarray,
    boxes: np.ndarray,
    box_class: np.ndarray,
    new_thresh: float,
    min_hits: int,
    lost_frames: int,
    r_scale: np.ndarray,
    r_fixed: np.ndarray,
    p0_scale: np.ndarray,
    p0_fixed: np.ndarray,
    counters: np.ndarray,
    free_slots: np.ndarray,
    ids: np.ndarray,
    slots: np.ndarray,
    ended: np.ndarray,
) -> tuple[int, int, int]:
    """A frame's life cycle on the first n of the capacity arrays rows (C, 20), row_class (C,)
    and life (C, 5: state, id, hits, misses, slot), C >= n + the boxes (M): the Kalman
    update of the rows matched; hits, ids, losses and ends by det_of[:n] (each row's box or
    -1), the rows kept moved up in order, then new rows for the confident boxes (box_flags
    _HIGH, score >= new_thresh) with box_of -1, each on a slot from free_slots (C) or a new
    one. counters (3: next id, free slots, slots used) move on. ids / slots (M): each box's
    track id and its slot where it has an id, else -1; ended[:k] (>= n rows): (id, slot) of
    the tracks that ended, their slots freed after the births. Returns (rows now, k, slots
    used)."""
    m = len(boxes)
    ids[:] = -1
    slots[:] = -1
    kalman.update_rows(rows[:n], det_of[:n], boxes, r_scale, r_fixed)
    next_id, n_free, used = counters.tolist()
    keep: list[int] = []
    n_ended = 0
    lives = life[:n].tolist()
    for r, d in enumerate(det_of[:n].tolist()):
        state, tid, hits, misses, slot = lives[r]
        if d >= 0:
            hits += 1
            misses = 0
            # ids in row order: the order tracks were born in
            if tid < 0 and hits >= min_hits:
                tid = next_id
                next_id += 1
            if tid >= 0:
                state = TrackState.TRACKED
                ids[d], slots[d] = tid, slot
            keep.append(r)
        elif state != TrackState.TENTATIVE:
            # confirmed and unmatched: lost, and dropped after `lost_frames`
            state = TrackState.LOST
            misses += 1
            if misses > lost_frames:
                ended[n_ended] = (tid, slot)
                n_ended += 1
            else:
                keep.append(r)
        else:  # a tentative track unmatched (a box seen once) is not yet anything: dropped
            free_slots[n_free] = slot
            n_free += 1
        life[r] = (state, tid, hits, misses, slot)
    kept = len(keep)
    rows[:kept], row_class[:kept], life[:kept] = rows[keep], row_class[keep], life[keep]
    # new tracks from the confident boxes nobody claimed
    born = [
        j
        for j, (row, flags, score) in enumerate(
            zip(box_of[:m].tolist(), box_flags[:m].tolist(), scores.tolist(), strict=True)
        )
        if row < 0 and flags == _HIGH and score >= new_thresh
    ]
    if born:
        kalman.initiate_rows(rows[kept : kept + len(born)], boxes[born], p0_scale, p0_fixed)
    for j in born:
        row_class[kept] = box_class[j]
        if n_free:
            n_free -= 1
            slot = int(free_slots[n_free])
        else:
            slot = used
            used += 1
        if min_hits <= 1:
            life[kept] = (TrackState.TRACKED, next_id, 1, 0, slot)
            ids[j], slots[j] = next_id, slot
            next_id += 1
        else:
            life[kept] = (TrackState.TENTATIVE, -1, 1, 0, slot)
        kept += 1
    for k in range(n_ended):
        free_slots[n_free] = ended[k, 1]
        n_free += 1
    counters[:] = (next_id, n_free, used)
    return kept, n_ended, used


class TrackArrays:
    """A tracker's arrays bound once, so that a frame's calls pass only its boxes: `track_match`
    and `track_life` above on them (the reference of the compiled class, where each array
    argument costs a buffer acquisition, microseconds apiece on the caches an inference
    leaves cold)."""

    def __init__(
        self,
        rows: np.ndarray,
        row_class: np.ndarray,
        life: np.ndarray,
        q_scale: np.ndarray,
        q_fixed: np.ndarray,
        score_edges: np.ndarray,
        state_flags: np.ndarray,
        stage_rows: np.ndarray,
        stage_cols: np.ndarray,
        limits: np.ndarray,
        cost: np.ndarray,
        row_flags: np.ndarray,
        box_flags: np.ndarray,
        det_of: np.ndarray,
        box_of: np.ndarray,
        r_scale: np.ndarray,
        r_fixed: np.ndarray,
        p0_scale: np.ndarray,
        p0_fixed: np.ndarray,
        counters: np.ndarray,
        free_slots: np.ndarray,
        ended: np.ndarray,
    ) -> None:
        self.rows, self.row_class, self.life = rows, row_class, life
        self.q_scale, self.q_fixed, self.score_edges = q_scale, q_fixed, score_edges
        self.state_flags, self.stage_rows, self.stage_cols = state_flags, stage_rows, stage_cols
        self.limits, self.cost, self.row_flags, self.box_flags = limits, cost, row_flags, box_flags
        self.det_of, self.box_of = det_of, box_of
        self.r_scale, self.r_fixed, self.p0_scale, self.p0_fixed = (
            r_scale,
            r_fixed,
            p0_scale,
            p0_fixed,
        )
        self.counters, self.free_slots, self.ended = counters, free_slots, ended

    def track_match(
        self, n: int, steps: float, boxes: np.ndarray, box_class: np.ndarray, scores: np.ndarray
    ) -> int:
        return track_match(
            self.rows,
            self.row_class,
            self.life,
            n,
            steps,
            self.q_scale,
            self.q_fixed,
            boxes,
            box_class,
            scores,
            self.score_edges,
            self.state_flags,
            self.stage_rows,
            self.stage_cols,
            self.limits,
            self.cost,
            self.row_flags,
            self.box_flags,
            self.det_of,
            self.box_of,
        )

    def track_life(
        self,
        n: int,
        boxes: np.ndarray,
        box_class: np.ndarray,
        scores: np.ndarray,
        new_thresh: float,
        min_hits: int,
        lost_frames: int,
        ids: np.ndarray,
        slots: np.ndarray,
    ) -> tuple[int, int, int]:
        return track_life(
            self.rows,
            self.row_class,
            self.life,
            n,
            self.det_of,
            self.box_of,
            self.box_flags,
            scores,
            boxes,
            box_class,
            new_thresh,
            min_hits,
            lost_frames,
            self.r_scale,
            self.r_fixed,
            self.p0_scale,
            self.p0_fixed,
            self.counters,
            self.free_slots,
            ids,
            slots,
            self.ended,
        )


TRACK_ARRAYS: type[TrackArrays] | type[_track_kernels.TrackArrays]
try:
    from xnoryolo.kernels import track as _compiled
except ImportError:  # kernels not built: the references do the same, slower
    TRACK_ARRAYS = TrackArrays
else:
    TRACK_ARRAYS = _compiled.TrackArrays

# which stages a track may be matched in, by state (a bit per stage below: TENTATIVE 4,
# TRACKED 1 | 2, LOST 1) ...
_ROW_FLAGS = np.array([4, 1 | 2, 1], dtype=np.uint8)
# ... and a box, by score: below low_thresh none; weak (low..high) 2; confident 1
_HIGH, _LOW = 1, 2
_SCORE_FLAGS = np.array([0, _LOW, _HIGH], dtype=np.uint8)
# 1. confident boxes to confirmed tracks (followed or lost); 2. weak boxes only to tracks
# followed until the last frame; 3. tentative tracks to the confident boxes left (stricter)
_STAGE_ROWS = np.array([1, 2, 4], dtype=np.uint8)
_STAGE_COLS = np.array([_HIGH, _LOW, _HIGH], dtype=np.uint8)


@dataclass
class Tracker:
    spec: TrackerSpec = field(default_factory=TrackerSpec)

    def __post_init__(self) -> None:
        # one row per track, the first `_n` rows of arrays with room to grow: the Kalman mean
        # (8) and covariance blocks (3 x 4, kalman.py) in a row of floats, the class, and
        # the life cycle (state, id: -1 until confirmed, matches in a row, inferred frames
        # missed, slot), all updated by the compiled kernels; the free slots (a stack), and
        # the next id, free slots and slots used in `_counters`; scratch for a frame's
        # matching (per row, per box, the costs)
        self._n = 0
        self._f = np.zeros((0, 20))
        self._cls = np.zeros(0, dtype=np.int64)
        self._life = np.zeros((0, 5), dtype=np.int64)
        self._free = np.zeros(0, dtype=np.int64)
        self._counters = np.array([1, 0, 0], dtype=np.int64)
        self._cost = np.zeros((0, 0))
        self._t: float | None = None
        spec = self.spec
        self._limits = np.array([1.0 - spec.match_iou, 1.0 - 0.5, 1.0 - 0.3])
        self._score_edges = np.array([min(spec.low_thresh, spec.high_thresh), spec.high_thresh])
        self._room(16, 16)  # and binds the arrays for the compiled calls (`TrackArrays`)

    # -- time ------------------------------------------------------------------------------
    def _steps(self, t: float) -> float:
        # a clock that went back (a file source started again) predicts nothing
        steps = 0.0 if self._t is None else max(0.0, t - self._t) / kalman.STEP_S
        self._t = t
        return steps

    def hold(self, t: float) -> None:
        """A frame without inference in which nothing moved (motion gating): the tracks stay
        where they are, their uncertainty grows."""
        steps = self._steps(t)
        if self._n and steps != 0.0:
            kalman.PREDICT_ROWS(self._f[: self._n], steps, False, kalman.Q_SCALE, kalman.Q_FIXED)

    def _room(self, rows: int, boxes: int) -> None:
        """Room for `rows` tracks and a frame of `boxes` boxes."""
        n, cap = self._n, len(self._cls)
        if rows > cap:
            cap = max(rows, 2 * cap)
            f, cls, life = (
                np.zeros((cap, 20)),
                np.zeros(cap, np.int64),
                np.zeros((cap, 5), np.int64),
            )
            f[:n], cls[:n], life[:n] = self._f[:n], self._cls[:n], self._life[:n]
            self._f, self._cls, self._life = f, cls, life
            free = np.zeros(cap, np.int64)
            free[: len(self._free)] = self._free
            self._free = free
            self._row_flags = np.zeros(cap, np.uint8)
            self._det_of = np.zeros(cap, np.int64)
            self._ended = np.zeros((cap, 2), np.int64)
        nb = self._cost.shape[1]
        if boxes > nb or cap > len(self._cost):
            nb = max(boxes, 2 * nb) if boxes > nb else nb
            self._cost = np.zeros((cap, nb))
            self._box_flags = np.zeros(nb, np.uint8)
            self._box_of = np.zeros(nb, np.int64)
        self._k = TRACK_ARRAYS(
            self._f,
            self._cls,
            self._life,
            kalman.Q_SCALE,
            kalman.Q_FIXED,
            self._score_edges,
            _ROW_FLAGS,
            _STAGE_ROWS,
            _STAGE_COLS,
            self._limits,
            self._cost,
            self._row_flags,
            self._box_flags,
            self._det_of,
            self._box_of,
            kalman.R_SCALE,
            kalman.R_FIXED,
            kalman.P0_SCALE,
            kalman.P0_FIXED,
            self._counters,
            self._free,
            self._ended,
        )

    @property
    def ids_issued(self) -> int:
        """How many track ids this tracker gave (ids count from 1)."""
        return int(self._counters[0]) - 1

    # -- association -----------------------------------------------------------------------
    def update(
        self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, t: float
    ) -> TrackUpdate:
        """Match the boxes (N, 4: x0 y0 x1 y1 pixels) of one inferred frame at time t (s)."""
        return self.update_arrays(
            np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4),
            np.ascontiguousarray(scores, dtype=np.float64).reshape(-1),
            np.ascontiguousarray(classes, dtype=np.int64).reshape(-1),
            t,
        )

    def update_arrays(
        self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, t: float
    ) -> TrackUpdate:
        """`update` for arrays already as the kernels read them: boxes (N, 4) float64 in C
        order, scores (N,) float64, classes (N,) int64 in C order."""
        spec = self.spec
        steps = self._steps(t)
        n, m = self._n, len(boxes)
        # `_room` only when it has work: this runs right after an inference has left the
        # caches cold, where each Python call costs microseconds
        if n + m > len(self._cls) or m > self._cost.shape[1]:
            self._room(n + m, m)
        k = self._k
        left = k.track_match(n, steps, boxes, classes, scores)
        if left >= 0:  # alike boxes or tracks: LAPJV decides who gets which, as it did
            match_stages(
                self._cost[:n, :m],
                self._row_flags[:n],
                self._box_flags[:m],
                _STAGE_ROWS[left:],
                _STAGE_COLS[left:],
                self._limits[left:],
                self._det_of[:n],
                self._box_of[:m],
            )
        ids, slots = np.empty((2, m), dtype=np.int64)
        self._n, n_ended, used = k.track_life(
            n,
            boxes,
            classes,
            scores,
            spec.new_track_thresh,
            spec.min_hits,
            spec.lost_frames,
            ids,
            slots,
        )
        if not n_ended:
            return TrackUpdate(ids, (), slots, (), used)
        ended = self._ended[:n_ended].T.tolist()
        return TrackUpdate(ids, tuple(ended[0]), slots, tuple(ended[1]), used)

    # -- views -----------------------------------------------------------------------------
    def tracks(self) -> list[TrackView]:
        """The confirmed tracks (followed and lost), boxes where the filter puts them now."""
        life = self._life[: self._n]
        rows = np.flatnonzero(life[:, 1] >= 0)
        xyxy = kalman.xyah_to_xyxy(self._f[rows, :4])
        return [
            TrackView(tid, cls, (x0, y0, x1, y1), TrackState(state))
            for (state, tid), cls, (x0, y0, x1, y1) in zip(
                life[rows, :2].tolist(), self._cls[rows].tolist(), xyxy.tolist(), strict=True
            )
        ]

    def live_ids(self) -> set[int]:
        ids = self._life[: self._n, 1]
        return set(ids[ids >= 0].tolist())
