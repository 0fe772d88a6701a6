"""Motion gating: whether a frame differs enough from the last inferred one to be worth the
detector. The picture is compared small and grey (`spec.width` pixels wide, lightly blurred
so that sensor noise and compression do not count), outside the mask's polygons; the
reference is the last inferred frame, so slow motion adds up until it is seen."""

from __future__ import annotations

import cv2
import numpy as np

from .spec import MotionSpec


class MotionGate:
    def __init__(self, spec: MotionSpec) -> None:
        self.spec = spec
        self._ref: np.ndarray | None = None
        self._last_inferred: float | None = None
        self._mask: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._area = 1
        self.last_change = 0.0  # fraction of the watched picture that changed, last check
        self.inferred = 0
        self.skipped = 0

    def _small(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        sw = min(self.spec.width, w)
        sh = max(1, round(h * sw / w))
        # INTER_NEAREST reads one pixel per small pixel, so it touches the fewest lines of a
        # frame fresh from the decoder (on 768x576 ~0.05 ms against INTER_LINEAR's ~0.1,
        # pyrDown's ~0.8 and INTER_AREA's ~1); the blur after it does the averaging that
        # keeps sensor noise from counting as motion
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_NEAREST)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        grey = cv2.GaussianBlur(grey, (5, 5), 0)
        if self._shape != grey.shape:
            self._shape = grey.shape
            self._ref = None
            self._mask = None
            if self.spec.mask:
                keep = np.full(grey.shape, 255, np.uint8)
                scale = np.array([sw, sh], dtype=np.float64)
                polys = [np.round(np.array(p) * scale).astype(np.int32) for p in self.spec.mask]
                cv2.fillPoly(keep, polys, 0)
                self._mask = keep
            self._area = int(cv2.countNonZero(self._mask)) if self._mask is not None else grey.size
        return grey

    def check(self, image: np.ndarray, t: float) -> bool:
        """Whether the frame at time t (s) needs inference. A True answer makes the frame the
        new reference: call it only for frames that will be inferred when it says so."""
        grey = self._small(image)
        due = (
            self._ref is None
            or self._last_inferred is None
            or t - self._last_inferred >= self.spec.max_interval_s
            or t < self._last_inferred  # a source that started again
        )
        if not due:
            assert self._ref is not None
            diff = cv2.absdiff(grey, self._ref)
            _, changed = cv2.threshold(diff, self.spec.pixel_delta, 255, cv2.THRESH_BINARY)
            if self._mask is not None:
                changed = cv2.bitwise_and(changed, self._mask)
            self.last_change = cv2.countNonZero(changed) / max(1, self._area)
            due = self.last_change >= self.spec.threshold
        if due:
            self._ref = grey
            self._last_inferred = t
            self.inferred += 1
        else:
            self.skipped += 1
        return due
