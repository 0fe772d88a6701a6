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
the reference of the kernel, on LAPJV throughout)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import lap
import numpy as np

from . import kalman
from .spec import TrackerSpec


class TrackState(enum.IntEnum):
    TENTATIVE = 0  # born, not yet matched `min_hits` times: no id shown
    TRACKED = 1  # confirmed and matched on the last inferred frame
    LOST = 2  # confirmed, unmatched lately; kept `lost_frames` inferred frames


@dataclass(frozen=True)
class TrackUpdate:
    """One update's answer: ids[i] is the id of box i (-1: none); `ended` the ids of tracks
    dropped in this update."""

    ids: np.ndarray
    ended: tuple[int, ...] = ()


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


try:
    from xnoryolo.kernels import track as _compiled
except ImportError:  # kernels not built: the references do the same, slower
    IOU_COST, MATCH_STAGES = iou_cost, match_stages
else:
    IOU_COST, MATCH_STAGES = _compiled.iou_cost, _compiled.match_stages

# which stages a track may be matched in, by state (a bit per stage below) ...
_ROW_FLAGS = {
    TrackState.TENTATIVE: 4,
    TrackState.TRACKED: 1 | 2,
    TrackState.LOST: 1,
}
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
        # one row per track. The numbers the compiled kernels work on are arrays: the Kalman
        # mean (8) and covariance blocks (3 x 4, kalman.py) in a row of floats, the class.
        # The life cycle is lists, read and written one track at a time: state, id (-1
        # until confirmed), matches in a row, inferred frames missed (at tens of tracks a
        # loop over lists costs less than the dozens of array calls the same logic takes).
        self._f = np.zeros((0, 20))
        self._cls = np.zeros(0, dtype=np.int64)
        self._state: list[TrackState] = []
        self._id: list[int] = []
        self._hits: list[int] = []
        self._misses: list[int] = []
        self._t: float | None = None
        self._next_id = 1
        spec = self.spec
        self._limits = np.array([1.0 - spec.match_iou, 1.0 - 0.5, 1.0 - 0.3])
        self._score_edges = np.array([min(spec.low_thresh, spec.high_thresh), spec.high_thresh])

    # -- time ------------------------------------------------------------------------------
    def _predict(self, t: float, move: bool) -> None:
        # a clock that went back (a file source started again) predicts nothing
        steps = 0.0 if self._t is None else max(0.0, t - self._t) / kalman.STEP_S
        self._t = t
        if not len(self._f) or steps == 0.0:
            return
        # without moving, the uncertainty grows and the boxes stay
        kalman.PREDICT_ROWS(self._f, steps, move, kalman.Q_SCALE, kalman.Q_FIXED)

    def hold(self, t: float) -> None:
        """A frame without inference in which nothing moved (motion gating): the tracks stay
        where they are, their uncertainty grows."""
        self._predict(t, move=False)

    # -- association -----------------------------------------------------------------------
    def update(
        self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, t: float
    ) -> TrackUpdate:
        """Match the boxes (N, 4: x0 y0 x1 y1 pixels) of one inferred frame at time t (s)."""
        spec = self.spec
        boxes = np.ascontiguousarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        self._predict(t, move=True)
        states, tids, hits, misses = self._state, self._id, self._hits, self._misses
        n, m = len(states), len(boxes)
        det_of = np.full(n, -1, dtype=np.int64)  # track row -> box index
        box_of = np.full(m, -1, dtype=np.int64)  # box index -> track row
        box_flags = _SCORE_FLAGS[np.searchsorted(self._score_edges, scores, side="right")]
        if n and m:
            # one cost matrix for every stage: 1 - IoU, 2 (never) across classes
            cost = np.empty((n, m))
            IOU_COST(self._f, self._cls, boxes, classes, cost)
            row_flags = np.frombuffer(bytes([_ROW_FLAGS[s] for s in states]), np.uint8)
            left = MATCH_STAGES(
                cost, row_flags, box_flags, _STAGE_ROWS, _STAGE_COLS, self._limits, det_of, box_of
            )
            if left >= 0:  # alike boxes or tracks: LAPJV decides who gets which, as it did
                match_stages(
                    cost,
                    row_flags,
                    box_flags,
                    _STAGE_ROWS[left:],
                    _STAGE_COLS[left:],
                    self._limits[left:],
                    det_of,
                    box_of,
                )
            kalman.UPDATE_ROWS(self._f, det_of, boxes, kalman.R_SCALE, kalman.R_FIXED)

        ids = [-1] * m
        ended: list[int] = []
        keep: list[int] = []
        next_id = self._next_id
        for r, d in enumerate(det_of.tolist()):
            if d >= 0:
                hits[r] += 1
                misses[r] = 0
                # ids in row order: the order tracks were born in
                if tids[r] < 0 and hits[r] >= spec.min_hits:
                    tids[r] = next_id
                    next_id += 1
                if tids[r] >= 0:
                    states[r] = TrackState.TRACKED
                    ids[d] = tids[r]
                keep.append(r)
            elif states[r] != TrackState.TENTATIVE:
                # confirmed and unmatched: lost, and dropped after `lost_frames`
                states[r] = TrackState.LOST
                misses[r] += 1
                if misses[r] > spec.lost_frames:
                    ended.append(tids[r])
                else:
                    keep.append(r)
            # a tentative track unmatched (a box seen once) is not yet anything: dropped
        self._next_id = next_id
        if len(keep) < n:
            self._f, self._cls = self._f[keep], self._cls[keep]
            self._state = [states[r] for r in keep]
            self._id = [tids[r] for r in keep]
            self._hits = [hits[r] for r in keep]
            self._misses = [misses[r] for r in keep]

        # 4. new tracks from the confident boxes nobody claimed
        new = spec.new_track_thresh
        born = [
            j
            for j, (row, flags, score) in enumerate(
                zip(box_of.tolist(), box_flags.tolist(), scores.tolist(), strict=True)
            )
            if row < 0 and flags == _HIGH and score >= new
        ]
        if born:
            self._add(born, boxes, classes, ids)
        return TrackUpdate(np.array(ids, dtype=np.int64), tuple(ended))

    def _add(self, new: list[int], boxes: np.ndarray, classes: np.ndarray, ids: list[int]) -> None:
        n = len(new)
        rows = np.empty((n, 20))
        kalman.INITIATE_ROWS(rows, boxes[new], kalman.P0_SCALE, kalman.P0_FIXED)
        self._f = np.concatenate([self._f, rows])
        self._cls = np.concatenate([self._cls, classes[new]])
        self._hits += [1] * n
        self._misses += [0] * n
        if self.spec.min_hits <= 1:
            first = self._next_id
            self._next_id += n
            self._id += range(first, first + n)
            self._state += [TrackState.TRACKED] * n
            for k, j in enumerate(new):
                ids[j] = first + k
        else:
            self._id += [-1] * n
            self._state += [TrackState.TENTATIVE] * n

    # -- views -----------------------------------------------------------------------------
    def tracks(self) -> list[TrackView]:
        """The confirmed tracks (followed and lost), boxes where the filter puts them now."""
        rows = [r for r, tid in enumerate(self._id) if tid >= 0]
        xyxy = kalman.xyah_to_xyxy(self._f[rows, :4])
        return [
            TrackView(self._id[r], cls, (x0, y0, x1, y1), self._state[r])
            for r, cls, (x0, y0, x1, y1) in zip(
                rows, self._cls[rows].tolist(), xyxy.tolist(), strict=True
            )
        ]

    def live_ids(self) -> set[int]:
        return {tid for tid in self._id if tid >= 0}
