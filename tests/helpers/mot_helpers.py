"""Tracker quality on the MOT ground truth that `motmetrics` ships (TUD-Campus and
TUD-Stadtmitte from MOTChallenge 2015): the ground-truth boxes degraded with position noise,
missed boxes and false positives at a given level, fed to the tracker, scored by motmetrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnoryolo.tracking import Tracker, TrackerSpec
from xnoryolo.tracking.bytetrack import iou_matrix


@dataclass(frozen=True)
class Noise:
    name: str
    jitter: float  # std of box edge noise, fraction of the box's width (x) or height (y)
    miss: float  # probability a box is missed
    false_pos: float  # expected false boxes per frame
    low_score: float  # probability a kept box scores low (0.1..0.5: second-stage only)


LEVELS = (
    Noise("clean", 0.0, 0.0, 0.0, 0.0),
    Noise("light", 0.03, 0.05, 0.2, 0.1),
    Noise("medium", 0.06, 0.15, 0.5, 0.2),
    Noise("heavy", 0.10, 0.30, 1.0, 0.3),
)


def sequence_dir(name: str) -> Path | None:
    try:
        import motmetrics
    except ImportError:
        return None
    path = Path(motmetrics.__file__).parent / "data" / name
    return path if (path / "gt.txt").is_file() else None


def load_gt(path: Path) -> dict[int, np.ndarray]:
    """frame -> (K, 5): id, left, top, width, height."""
    raw = np.loadtxt(path / "gt.txt", delimiter=",", ndmin=2)
    return {int(f): raw[raw[:, 0] == f][:, 1:6] for f in np.unique(raw[:, 0])}


def degrade(
    gt: dict[int, np.ndarray], noise: Noise, seed: int, size: tuple[int, int] = (640, 480)
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame -> (boxes x0 y0 x1 y1, scores) as a detector that good might give them."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in sorted(gt):
        g = gt[f]
        keep = rng.random(len(g)) >= noise.miss
        g = g[keep]
        x0, y0, w, h = g[:, 1], g[:, 2], g[:, 3], g[:, 4]
        j = rng.normal(0.0, noise.jitter, (len(g), 4)) * np.stack([w, h, w, h], 1)
        boxes = np.stack([x0 + j[:, 0], y0 + j[:, 1], x0 + w + j[:, 2], y0 + h + j[:, 3]], 1)
        scores = np.where(
            rng.random(len(g)) < noise.low_score,
            rng.uniform(0.15, 0.5, len(g)),
            rng.uniform(0.6, 0.95, len(g)),
        )
        n_fp = rng.poisson(noise.false_pos)
        if n_fp:
            fw = rng.uniform(30, 90, n_fp)
            fh = fw * rng.uniform(1.8, 2.8, n_fp)
            fx = rng.uniform(0, size[0] - fw)
            fy = rng.uniform(0, size[1] - fh)
            boxes = np.concatenate([boxes, np.stack([fx, fy, fx + fw, fy + fh], 1)])
            scores = np.concatenate([scores, rng.uniform(0.2, 0.7, n_fp)])
        out[f] = (boxes, scores)
    return out


def evaluate(
    gt: dict[int, np.ndarray],
    dets: dict[int, tuple[np.ndarray, np.ndarray]],
    fps: float,
    spec: TrackerSpec | None = None,
) -> dict[str, float]:
    """MOTA, IDF1, ID switches (and their parts) of the tracker on these boxes."""
    import motmetrics as mm

    tracker = Tracker(spec or TrackerSpec())
    acc = mm.MOTAccumulator(auto_id=False)
    for f in sorted(gt):
        boxes, scores = dets.get(f, (np.zeros((0, 4)), np.zeros(0)))
        ids = tracker.update(boxes, scores, np.zeros(len(boxes), np.int64), f / fps).ids
        hyp = boxes[ids >= 0]
        g = gt[f]
        # motmetrics' own iou_matrix needs NumPy < 2: the same distance, 1 - IoU, NaN past 0.5
        g_xyxy = np.c_[g[:, 1:3], g[:, 1:3] + g[:, 3:5]]
        dist = 1.0 - iou_matrix(g_xyxy, hyp)
        dist[dist > 0.5] = np.nan
        acc.update(g[:, 0].astype(int).tolist(), ids[ids >= 0].tolist(), dist, frameid=f)
    mh = mm.metrics.create()
    s = mh.compute(
        acc,
        metrics=[
            "mota",
            "idf1",
            "num_switches",
            "num_false_positives",
            "num_misses",
            "num_frames",
            "mostly_tracked",
            "num_unique_objects",
        ],
        name="x",
    )
    return {k: float(s[k].iloc[0]) for k in s.columns}
