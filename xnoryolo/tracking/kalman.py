"""A constant-velocity Kalman filter over boxes, batched over tracks.

The state is (cx, cy, a, h, vcx, vcy, va, vh): box centre, aspect ratio w/h, height and their
velocities, with noise proportional to the box height (as SORT/DeepSORT/ByteTrack model
people and vehicles). Time is in steps of `STEP_S` seconds, so a stream that skips frames
(motion gating, a frame-rate cap) predicts across the gap with the same model."""

from __future__ import annotations

import numpy as np

STEP_S = 0.1  # one step of the motion model; process noise grows with the steps predicted
_W_POS = 1.0 / 20
_W_VEL = 1.0 / 160
# noise std per state and measurement component: a multiple of the box height, or fixed
# (the aspect ratio's)
_Q_SCALE = np.array([_W_POS, _W_POS, 0.0, _W_POS, _W_VEL, _W_VEL, 0.0, _W_VEL])
_Q_FIXED = np.array([0.0, 0.0, 1e-2, 0.0, 0.0, 0.0, 1e-5, 0.0])
_R_SCALE = np.array([_W_POS, _W_POS, 0.0, _W_POS])
_R_FIXED = np.array([0.0, 0.0, 1e-1, 0.0])


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    return np.stack(
        [xyah[:, 0] - w / 2, xyah[:, 1] - h / 2, xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], axis=1
    )


def initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means (N, 8) and covariances (N, 8, 8) of new tracks from measurements z (N, 4)."""
    n = len(z)
    mean = np.concatenate([z, np.zeros((n, 4))], axis=1)
    h = z[:, 3]
    std = np.stack(
        [
            2 * _W_POS * h,
            2 * _W_POS * h,
            np.full(n, 1e-2),
            2 * _W_POS * h,
            10 * _W_VEL * h,
            10 * _W_VEL * h,
            np.full(n, 1e-5),
            10 * _W_VEL * h,
        ],
        axis=1,
    )
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, steps: np.ndarray) -> None:
    """Advance every track by its `steps` (N,) in place: x += v dt, P = F P F^T + Q dt."""
    dt = steps[:, None]
    mean[:, :4] += dt * mean[:, 4:]
    a = cov[:, :4, :4]
    b = cov[:, :4, 4:]
    c = cov[:, 4:, 4:]
    dt3 = steps[:, None, None]
    new_a = a + dt3 * (b + b.transpose(0, 2, 1)) + dt3 * dt3 * c
    new_b = b + dt3 * c
    cov[:, :4, :4] = new_a
    cov[:, :4, 4:] = new_b
    cov[:, 4:, :4] = new_b.transpose(0, 2, 1)
    q = mean[:, 3:4] * _Q_SCALE + _Q_FIXED
    idx = np.arange(8)
    cov[:, idx, idx] += q**2 * steps[:, None]


def update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> None:
    """Correct every track (N) with its measurement z (N, 4), in place."""
    r = (mean[:, 3:4] * _R_SCALE + _R_FIXED) ** 2
    s = cov[:, :4, :4].copy()
    idx = np.arange(4)
    s[:, idx, idx] += r
    pht = cov[:, :, :4]  # P H^T, (N, 8, 4)
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # (N, 8, 4)
    innovation = z - mean[:, :4]
    mean += (gain @ innovation[:, :, None])[:, :, 0]
    cov -= gain @ s @ gain.transpose(0, 2, 1)
