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


@dataclass
class _Track:
    class_id: int
    score: float
    state: TrackState = TrackState.TENTATIVE
    track_id: int | None = None
    hits: int = 1
    misses: int = 0


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
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def assign(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one matching of rows to columns, pairs costing more than `limit`
    left out."""
    if cost.size == 0 or cost.min() > limit:
        return []
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
    return [(i, int(j)) for i, j in enumerate(x) if j >= 0 and cost[i, j] <= limit]


@dataclass
class Tracker:
    spec: TrackerSpec = field(default_factory=TrackerSpec)

    def __post_init__(self) -> None:
        self._tracks: list[_Track] = []
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._t: float | None = None
        self._next_id = 1

    # -- time ------------------------------------------------------------------------------
    def _predict(self, t: float, move: bool) -> None:
        # a clock that went back (a file source started again) predicts nothing
        steps = 0.0 if self._t is None else max(0.0, t - self._t) / kalman.STEP_S
        self._t = t
        if not self._tracks or steps == 0.0:
            return
        if move:
            kalman.predict(self._mean, self._cov, np.full(len(self._tracks), steps))
        else:  # uncertainty grows, the boxes stay
            mean = self._mean.copy()
            kalman.predict(mean, self._cov, np.full(len(self._tracks), steps))

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
        det_of: dict[int, int] = {}  # track index -> box index
        high = np.flatnonzero(scores >= spec.high_thresh).tolist()
        low = np.flatnonzero((scores >= spec.low_thresh) & (scores < spec.high_thresh)).tolist()
        track_classes = np.array([tr.class_id for tr in self._tracks], dtype=np.int64)
        predicted = kalman.xyah_to_xyxy(self._mean[:, :4]) if self._tracks else np.zeros((0, 4))
        confirmed = [k for k, tr in enumerate(self._tracks) if tr.state != TrackState.TENTATIVE]
        tentative = [k for k, tr in enumerate(self._tracks) if tr.state == TrackState.TENTATIVE]

        def match(
            tracks: list[int], dets: list[int], min_iou: float
        ) -> tuple[list[int], list[int]]:
            if not tracks or not dets:
                return tracks, dets
            cost = 1.0 - iou_matrix(predicted[tracks], boxes[dets])
            same = classes[dets][None, :] == track_classes[tracks][:, None]
            cost = np.where(same, cost, 2.0)
            pairs = assign(cost, 1.0 - min_iou)
            for r, c in pairs:
                det_of[tracks[r]] = dets[c]
            used_t = {r for r, _ in pairs}
            used_d = {c for _, c in pairs}
            return (
                [k for r, k in enumerate(tracks) if r not in used_t],
                [d for c, d in enumerate(dets) if c not in used_d],
            )

        # 1. confident boxes to confirmed tracks (followed or lost)
        rest_tracks, rest_high = match(confirmed, high, spec.match_iou)
        # 2. weak boxes only to tracks followed until the last frame
        followed = [k for k in rest_tracks if self._tracks[k].state == TrackState.TRACKED]
        match(followed, low, 0.5)  # the followed tracks left unmatched become lost below
        # 3. tentative tracks to the confident boxes left (stricter)
        unmatched_tentative, rest_high = match(tentative, rest_high, 0.3)

        if det_of:
            ks = np.array(sorted(det_of))
            z = kalman.xyxy_to_xyah(boxes[[det_of[k] for k in ks]])
            mean, cov = self._mean[ks], self._cov[ks]
            kalman.update(mean, cov, z)
            self._mean[ks], self._cov[ks] = mean, cov
        for k, d in det_of.items():
            tr = self._tracks[k]
            tr.score = float(scores[d])
            tr.misses = 0
            tr.hits += 1
            if tr.state == TrackState.TENTATIVE and tr.hits >= spec.min_hits:
                tr.track_id, self._next_id = self._next_id, self._next_id + 1
            if tr.track_id is not None:
                tr.state = TrackState.TRACKED
                ids[d] = tr.track_id

        keep = np.ones(len(self._tracks), dtype=bool)
        ended: list[int] = []
        for k in unmatched_tentative:  # a box seen once is not yet anything
            keep[k] = False
        for k, tr in enumerate(self._tracks):
            if k in det_of or tr.state == TrackState.TENTATIVE:
                continue
            tr.state = TrackState.LOST
            tr.misses += 1
            if tr.misses > spec.lost_frames:
                keep[k] = False
                if tr.track_id is not None:
                    ended.append(tr.track_id)
        self._tracks = [tr for k, tr in enumerate(self._tracks) if keep[k]]
        self._mean, self._cov = self._mean[keep], self._cov[keep]

        # 4. new tracks from the confident boxes nobody claimed
        born = [d for d in rest_high if scores[d] >= spec.new_track_thresh]
        if born:
            mean, cov = kalman.initiate(kalman.xyxy_to_xyah(boxes[born]))
            self._mean = np.concatenate([self._mean, mean])
            self._cov = np.concatenate([self._cov, cov])
            for d in born:
                tr = _Track(int(classes[d]), float(scores[d]))
                if spec.min_hits <= 1:
                    tr.state = TrackState.TRACKED
                    tr.track_id, self._next_id = self._next_id, self._next_id + 1
                    ids[d] = tr.track_id
                self._tracks.append(tr)
        return TrackUpdate(ids, tuple(ended))

    # -- views -----------------------------------------------------------------------------
    def tracks(self) -> list[TrackView]:
        """The confirmed tracks (followed and lost), boxes where the filter puts them now."""
        if not self._tracks:
            return []
        xyxy = kalman.xyah_to_xyxy(self._mean[:, :4])
        return [
            TrackView(tr.track_id, tr.class_id, tuple(map(float, xyxy[k])), tr.state)  # type: ignore[arg-type]
            for k, tr in enumerate(self._tracks)
            if tr.track_id is not None
        ]

    def live_ids(self) -> set[int]:
        return {tr.track_id for tr in self._tracks if tr.track_id is not None}
