"""The compiled resize (kernels/resize.pyx) is bit-exact with darknet's resize reference, and
its bytes variant with that reference quantised on the int8 input grid."""

from __future__ import annotations

import numpy as np
import pytest

from xnoryolo.detector import preprocess as pp
from xnoryolo.detector import quantize
from xnoryolo.kernels.resize import resize_bgr, resize_bgr_bytes

rng = np.random.default_rng(3)


@pytest.mark.parametrize(
    ("ih", "iw", "w", "h", "letter_box"),
    [
        (576, 768, 416, 416, False),
        (576, 768, 416, 416, True),
        (31, 17, 13, 40, False),
        (100, 50, 160, 128, True),
        (2, 2, 5, 3, False),
        (7, 300, 299, 2, False),
        (480, 640, 640, 480, False),  # same size: darknet copies, the formula is the identity
    ],
)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fast_preprocess_is_bit_exact(
    ih: int, iw: int, w: int, h: int, letter_box: bool, threads: int
) -> None:
    assert pp.FAST_RESIZE is resize_bgr
    img = rng.integers(0, 256, (ih, iw, 3), dtype=np.uint8)
    fast = pp.preprocess(img, w, h, 3, letter_box, fast=True, threads=threads)
    ref = pp.preprocess(img, w, h, 3, letter_box, fast=False)
    assert fast.dtype == np.float32 and fast.shape == (3, h, w)
    np.testing.assert_array_equal(fast, ref)
    assert pp.FAST_RESIZE_BYTES is resize_bgr_bytes
    fast_bytes = pp.preprocess_bytes(img, w, h, 3, letter_box, fast=True, threads=threads)
    assert fast_bytes.dtype == np.uint8
    np.testing.assert_array_equal(
        fast_bytes, quantize.quantize_activations(ref, quantize.INPUT_QUANT)
    )


def test_fast_resize_rejects_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="sizes >= 2"):
        resize_bgr(np.zeros((4, 4, 3), np.uint8), 1, 4)
    with pytest.raises(ValueError, match="sizes >= 2"):
        resize_bgr_bytes(np.zeros((4, 4, 3), np.uint8), 4, 1)
