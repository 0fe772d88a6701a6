"""A ByteTrack-class multi-object tracker (Zhang et al., ECCV 2022): every box is matched,
the confident ones first, then the weak ones only to tracks that are still being followed, so
that a person half hidden behind another keeps their track. Tracks move by a constant-velocity
Kalman filter (`kalman.py`); a track gets an id only after `min_hits` matches in a row (birth
hysteresis) and is dropped only after `lost_frames` inferred frames unseen (death
hysteresis), during which it can be found again where the filter predicts it.

Boxes of different classes never match. Deterministic: the same boxes in give the same ids
out (ids count from 1 per tracker; the assignment is `lap`'s exact LAPJV solver)."""

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
# the columns of a track's integers
_CLASS, _STATE, _ID, _HITS, _MISSES = range(5)


@dataclass
class Tracker:
    spec: TrackerSpec = field(default_factory=TrackerSpec)

    def __post_init__(self) -> None:
        # the tracks as two arrays, one row each (structure of arrays): per-frame work is a
        # handful of array operations whatever the number of tracks. Floats: the Kalman
        # mean (8) and covariance blocks (3 x 4, kalman.py); integers: class, state, id (-1
        # until confirmed), hits in a row, inferred frames missed.
        self._f = np.zeros((0, 20))
        self._i = np.zeros((0, 5), dtype=np.int64)
        self._t: float | None = None
        self._next_id = 1

    @staticmethod
    def _kalman(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Views of the means (N, 8) and covariance blocks (N, 3, 4) in float rows f."""
        return f[:, :8], f[:, 8:].reshape(-1, 3, 4)

    # -- time ------------------------------------------------------------------------------
    def _predict(self, t: float, move: bool) -> None:
        # a clock that went back (a file source started again) predicts nothing
        steps = 0.0 if self._t is None else max(0.0, t - self._t) / kalman.STEP_S
        self._t = t
        if not len(self._f) or steps == 0.0:
            return
        mean, cov = self._kalman(self._f)
        # without moving, the uncertainty grows and the boxes stay
        kalman.predict(mean if move else mean.copy(), cov, steps)

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
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        self._predict(t, move=True)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        ints = self._i
        state = ints[:, _STATE]
        det_of = np.full(len(ints), -1, dtype=np.int64)  # track row -> box index
        high = (scores >= spec.high_thresh).nonzero()[0]
        tentative = state == TrackState.TENTATIVE
        rest_high = high
        unmatched_tentative = tentative.nonzero()[0]
        if len(ints) and len(boxes):
            # one cost matrix for every stage: 1 - IoU, 2 (never) across classes
            predicted = kalman.xyah_to_xyxy(self._f[:, :4])
            cost = np.where(
                ints[:, _CLASS, None] == classes,
                1.0 - iou_matrix(predicted, boxes),
                2.0,
            )

            def match(
                tracks: np.ndarray, dets: np.ndarray, min_iou: float
            ) -> tuple[np.ndarray, np.ndarray]:
                if not len(tracks) or not len(dets):
                    return tracks, dets
                rows, cols = _assign(cost[tracks[:, None], dets], 1.0 - min_iou)
                if not len(rows):
                    return tracks, dets
                det_of[tracks[rows]] = dets[cols]
                left_t = np.ones(len(tracks), dtype=bool)
                left_t[rows] = False
                left_d = np.ones(len(dets), dtype=bool)
                left_d[cols] = False
                return tracks[left_t], dets[left_d]

            low = ((scores >= spec.low_thresh) & (scores < spec.high_thresh)).nonzero()[0]
            # 1. confident boxes to confirmed tracks (followed or lost)
            rest_tracks, rest_high = match((~tentative).nonzero()[0], high, spec.match_iou)
            # 2. weak boxes only to tracks followed until the last frame (those left
            # unmatched become lost below)
            match(rest_tracks[state[rest_tracks] == TrackState.TRACKED], low, 0.5)
            # 3. tentative tracks to the confident boxes left (stricter)
            unmatched_tentative, rest_high = match(unmatched_tentative, rest_high, 0.3)

        matched = det_of >= 0
        ks = matched.nonzero()[0]
        if len(ks):
            dets = det_of[ks]
            f = self._f[ks]
            kalman.update(*self._kalman(f), kalman.xyxy_to_xyah(boxes[dets]))
            self._f[ks] = f
            mine = ints[ks]
            mine[:, _MISSES] = 0
            mine[:, _HITS] += 1
            # ids in row order: the order tracks were born in
            born = (tentative[ks] & (mine[:, _HITS] >= spec.min_hits)).nonzero()[0]
            if len(born):
                mine[born, _ID] = np.arange(self._next_id, self._next_id + len(born))
                self._next_id += len(born)
            confirmed = mine[:, _ID] >= 0
            mine[confirmed, _STATE] = TrackState.TRACKED
            ints[ks] = mine
            ids[dets[confirmed]] = mine[confirmed, _ID]

        # confirmed tracks unmatched are lost, and dropped after `lost_frames`; a tentative
        # track unmatched (a box seen once) is not yet anything
        missed = ~matched & ~tentative
        state[missed] = TrackState.LOST
        misses = ints[:, _MISSES]
        misses[missed] += 1
        drop = missed & (misses > spec.lost_frames)
        ended = ints[drop, _ID]
        drop[unmatched_tentative] = True
        if drop.any():
            keep = ~drop
            self._f, self._i = self._f[keep], ints[keep]

        # 4. new tracks from the confident boxes nobody claimed
        born_boxes = rest_high[scores[rest_high] >= spec.new_track_thresh]
        if len(born_boxes):
            self._add(born_boxes, boxes, classes, ids)
        return TrackUpdate(ids, tuple(ended.tolist()))

    def _add(
        self, new: np.ndarray, boxes: np.ndarray, classes: np.ndarray, ids: np.ndarray
    ) -> None:
        n = len(new)
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes[new]))
        ints = np.zeros((n, 5), dtype=np.int64)
        ints[:, _CLASS] = classes[new]
        ints[:, _STATE] = TrackState.TENTATIVE
        ints[:, _ID] = -1
        ints[:, _HITS] = 1
        if self.spec.min_hits <= 1:
            ints[:, _ID] = np.arange(self._next_id, self._next_id + n)
            self._next_id += n
            ints[:, _STATE] = TrackState.TRACKED
            ids[new] = ints[:, _ID]
        self._f = np.concatenate([self._f, np.concatenate([mean, cov.reshape(n, 12)], axis=1)])
        self._i = np.concatenate([self._i, ints])

    # -- views -----------------------------------------------------------------------------
    def tracks(self) -> list[TrackView]:
        """The confirmed tracks (followed and lost), boxes where the filter puts them now."""
        rows = (self._i[:, _ID] >= 0).nonzero()[0]
        xyxy = kalman.xyah_to_xyxy(self._f[rows, :4])
        return [
            TrackView(tid, cls, (x0, y0, x1, y1), TrackState(st))
            for (cls, st, tid), (x0, y0, x1, y1) in zip(
                self._i[rows, :3].tolist(), xyxy.tolist(), strict=True
            )
        ]

    def live_ids(self) -> set[int]:
        ids = self._i[:, _ID]
        return set(ids[ids >= 0].tolist())
