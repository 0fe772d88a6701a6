"""A constant-velocity Kalman filter over boxes, batched over tracks.

The state is (cx, cy, a, h, vcx, vcy, va, vh): box centre, aspect ratio w/h, height and their
velocities, with noise proportional to the box height (as SORT/DeepSORT/ByteTrack model
people and vehicles). Time is in steps of `STEP_S` seconds, so a stream that skips frames
(motion gating, a frame-rate cap) predicts across the gap with the same model.

The model never couples one component with another: the motion moves each one by its own
velocity, the noises are diagonal and the measurement is the four components themselves. So
the 8x8 covariance of a track is four independent 2x2 blocks (a component's variance, its
covariance with its velocity, the velocity's variance), and every zero outside them stays
exactly zero. The filter keeps only those blocks, `cov` (N, 3, 4): [variance of each
component, covariance with its velocity, variance of the velocity]; the arithmetic is the
8x8 filter's, term for term, without the products by zero.

The tracker keeps a track's mean and blocks in one row of 20 floats; `initiate_rows`,
`predict_rows` and `update_rows` are the NumPy references of the compiled kernels
(kernels/track.pyx), with the same arithmetic in the same order: the tracker runs
`PREDICT_ROWS`, and the other two within a frame's life cycle (bytetrack.track_life)."""

from __future__ import annotations

import numpy as np

STEP_S = 0.1  # one step of the motion model; process noise grows with the steps predicted
_W_POS = 1.0 / 20
_W_VEL = 1.0 / 160
# noise std per state and measurement component: a multiple of the box height, or fixed
# (the aspect ratio's)
Q_SCALE = np.array([_W_POS, _W_POS, 0.0, _W_POS, _W_VEL, _W_VEL, 0.0, _W_VEL])
Q_FIXED = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-5, 0.0])
R_SCALE = np.array([_W_POS, _W_POS, 0.0, _W_POS])
R_FIXED = np.array([0.0, 0.0, 1e-1, 0.0])
# the initial std of each component and velocity: a multiple of the box height, or fixed
# (components, then velocities)
P0_SCALE = np.array([2 * _W_POS, 2 * _W_POS, 0.0, 2 * _W_POS] + [10 * _W_VEL] * 4)
P0_SCALE[6] = 0.0
P0_FIXED = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-5, 0.0])


_KS = np.array([0, 0, 1])
_K = np.array([0, 1, 1])


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    half_w = xyah[:, 2] * xyah[:, 3] / 2
    half_h = xyah[:, 3] / 2
    return np.stack(
        [xyah[:, 0] - half_w, xyah[:, 1] - half_h, xyah[:, 0] + half_w, xyah[:, 1] + half_h],
        axis=1,
    )


def initiate(
    z: np.ndarray, p0_scale: np.ndarray = P0_SCALE, p0_fixed: np.ndarray = P0_FIXED
) -> tuple[np.ndarray, np.ndarray]:
    """Means (N, 8) and covariance blocks (N, 3, 4) of new tracks from measurements z (N, 4)."""
    n = len(z)
    mean = np.concatenate([z, np.zeros((n, 4))], axis=1)
    # (N, 2, 4): components, velocities
    std = z[:, None, 3:4] * p0_scale.reshape(2, 4) + p0_fixed.reshape(2, 4)
    cov = np.zeros((n, 3, 4))
    cov[:, 0] = std[:, 0] ** 2
    cov[:, 2] = std[:, 1] ** 2
    return mean, cov


def predict(
    mean: np.ndarray,
    cov: np.ndarray,
    steps: float,
    q_scale: np.ndarray = Q_SCALE,
    q_fixed: np.ndarray = Q_FIXED,
) -> None:
    """Advance every track by `steps` in place: x += v dt, P = F P F^T + Q dt."""
    mean[:, :4] += steps * mean[:, 4:]
    var, cross, vel = cov[:, 0], cov[:, 1], cov[:, 2]
    var += steps * (cross + cross)
    var += steps * steps * vel
    cross += steps * vel
    q = mean[:, 3:4] * q_scale + q_fixed
    q *= q
    q *= steps
    cov[:, ::2] += q.reshape(-1, 2, 4)  # the components' variances, the velocities'


def update(
    mean: np.ndarray,
    cov: np.ndarray,
    z: np.ndarray,
    r_scale: np.ndarray = R_SCALE,
    r_fixed: np.ndarray = R_FIXED,
) -> None:
    """Correct every track (N) with its measurement z (N, 4), in place."""
    r = mean[:, 3:4] * r_scale + r_fixed
    s = cov[:, 0] + r * r  # innovation variance per component
    inv_s = 1.0 / s
    gain = cov[:, :2] * inv_s[:, None]  # (N, 2, 4): the component's gain, its velocity's
    innovation = z - mean[:, :4]
    mean[:, :4] += gain[:, 0] * innovation
    mean[:, 4:] += gain[:, 1] * innovation
    gs = gain * s[:, None]
    # P -= K S K^T, block by block: (k s) k of the component, with its velocity, the velocity
    cov -= gs[:, _KS] * gain[:, _K]


def split_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Views of the means (N, 8) and covariance blocks (N, 3, 4) in rows (N, 20)."""
    return rows[:, :8], rows[:, 8:].reshape(-1, 3, 4)


def predict_rows(
    rows: np.ndarray, steps: float, move: bool, q_scale: np.ndarray, q_fixed: np.ndarray
) -> None:
    """`predict` on rows (N, 20) in place; without `move` the boxes stay where they are and
    only the uncertainty grows (as much as if they had moved)."""
    mean, cov = split_rows(rows)
    predict(mean if move else mean.copy(), cov, steps, q_scale, q_fixed)


def initiate_rows(
    rows: np.ndarray, boxes: np.ndarray, p0_scale: np.ndarray, p0_fixed: np.ndarray
) -> None:
    """Row i (N, 20) of a new track from box i (N, 4: x0 y0 x1 y1), in place."""
    mean, cov = initiate(xyxy_to_xyah(boxes), p0_scale, p0_fixed)
    rows[:, :8] = mean
    rows[:, 8:] = cov.reshape(-1, 12)


def update_rows(
    rows: np.ndarray,
    measured_by: np.ndarray,
    boxes: np.ndarray,
    r_scale: np.ndarray,
    r_fixed: np.ndarray,
) -> None:
    """`update` of row i (N, 20) in place with box measured_by[i] (x0 y0 x1 y1), where >= 0."""
    ks = (measured_by >= 0).nonzero()[0]
    if len(ks):
        f = rows[ks]
        update(*split_rows(f), xyxy_to_xyah(boxes[measured_by[ks]]), r_scale, r_fixed)
        rows[ks] = f


try:
    from xnoryolo.kernels import track as _compiled
except ImportError:  # kernels not built: the references do the same, slower
    PREDICT_ROWS = predict_rows
else:
    PREDICT_ROWS = _compiled.kalman_predict
