"""Motion gating: whether a frame differs enough from the last inferred one to be worth the
detector. The picture is compared small and grey (`spec.width` pixels wide, lightly blurred
so that sensor noise and compression do not count), outside the mask's polygons; the
reference is the last inferred frame, so slow motion adds up until it is seen."""

from __future__ import annotations

import cv2
import numpy as np

from .spec import MotionSpec


def motion_picture(
    image: np.ndarray,
    grey: np.ndarray,
    rows: np.ndarray,
    ref: np.ndarray | None,
    mask: np.ndarray | None,
    delta: int,
) -> int:
    """grey (sh, sw): the frame image (H, W, C; C 1, 3 or 4) small and blurred; rows (sh, sw)
    uint16 scratch (unused here). With ref (sh, sw) the number of pixels that differ from it
    by more than delta, outside mask's 0 pixels (mask (sh, sw) or None), else -1.

    The reference of the compiled kernel (kernels/motion.pyx, which states the arithmetic):
    INTER_NEAREST reads one pixel per small pixel, so it touches the fewest lines of a frame
    fresh from the decoder (on 768x576 ~0.05 ms against INTER_LINEAR's ~0.1, pyrDown's ~0.8
    and INTER_AREA's ~1); the blur after it does the averaging that keeps sensor noise from
    counting as motion."""
    sh, sw = grey.shape
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_NEAREST)
    if small.ndim == 3 and small.shape[2] != 1:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    cv2.GaussianBlur(small.reshape(sh, sw), (5, 5), 0, dst=grey)
    if ref is None:
        return -1
    diff = cv2.absdiff(grey, ref)
    _, changed = cv2.threshold(diff, delta, 255, cv2.THRESH_BINARY)
    if mask is not None:
        changed = cv2.bitwise_and(changed, mask)
    return int(cv2.countNonZero(changed))


try:
    from xnoryolo.kernels.motion import motion_picture as _compiled
except ImportError:  # kernels not built: the reference does the same, slower
    MOTION_PICTURE = motion_picture
else:
    MOTION_PICTURE = _compiled


class MotionGate:
    def __init__(self, spec: MotionSpec) -> None:
        self.spec = spec
        # two pictures: the reference (the last inferred frame's) and the newest
        self._ref: np.ndarray | None = None
        self._grey: np.ndarray | None = None
        self._rows = np.zeros((0, 0), np.uint16)
        self._last_inferred: float | None = None
        self._mask: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._frame_hw: tuple[int, ...] = ()
        self._area = 1
        self.last_change = 0.0  # fraction of the watched picture that changed, last check
        self.inferred = 0
        self.skipped = 0

    def _picture_shape(self, image: np.ndarray) -> tuple[int, int]:
        """(sh, sw) of the picture of a frame like image; a new size starts afresh."""
        h, w = image.shape[:2]
        sw = min(self.spec.width, w)
        sh = max(1, round(h * sw / w))
        if self._shape != (sh, sw):
            self._shape = (sh, sw)
            self._ref = None
            self._grey = np.empty((sh, sw), np.uint8)
            self._rows = np.empty((sh, sw), np.uint16)
            self._mask = None
            if self.spec.mask:
                keep = np.full((sh, sw), 255, np.uint8)
                scale = np.array([sw, sh], dtype=np.float64)
                polys = [np.round(np.array(p) * scale).astype(np.int32) for p in self.spec.mask]
                cv2.fillPoly(keep, polys, 0)
                self._mask = keep
            self._area = int(cv2.countNonZero(self._mask)) if self._mask is not None else sh * sw
        return sh, sw

    def check(self, image: np.ndarray, t: float) -> bool:
        """Whether the frame at time t (s) needs inference. A True answer makes the frame the
        new reference: call it only for frames that will be inferred when it says so."""
        if image.shape[:2] != self._frame_hw:  # (the picture's shape only once per size)
            self._frame_hw = image.shape[:2]
            self._picture_shape(image)
        due = (
            self._ref is None
            or self._last_inferred is None
            or t - self._last_inferred >= self.spec.max_interval_s
            or t < self._last_inferred  # a source that started again
        )
        grey = self._grey
        assert grey is not None
        frame = image if image.ndim == 3 else image[:, :, None]
        changed = MOTION_PICTURE(
            frame, grey, self._rows, None if due else self._ref, self._mask, self.spec.pixel_delta
        )
        if not due:
            self.last_change = changed / max(1, self._area)
            due = self.last_change >= self.spec.threshold
        if due:
            # the newest picture becomes the reference; the old reference's buffer is reused
            spare = self._ref if self._ref is not None else np.empty_like(grey)
            self._ref, self._grey = grey, spare
            self._last_inferred = t
            self.inferred += 1
        else:
            self.skipped += 1
        return due
