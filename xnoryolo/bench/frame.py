"""The one frame every bench run times."""

from __future__ import annotations

import numpy as np


def synthetic_frame() -> np.ndarray:
    """A 768x576 BGR frame with smooth structure (so activations are not pure noise)."""
    import cv2

    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (18, 24, 3), dtype=np.uint8)
    frame = cv2.resize(small, (768, 576), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(0, 16, frame.shape, dtype=np.uint8)
    return np.minimum(frame.astype(np.int16) + noise, 255).astype(np.uint8)
