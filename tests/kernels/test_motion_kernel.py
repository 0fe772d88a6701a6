"""The compiled motion-gate picture (kernels/motion.pyx) against its reference, the cv2
sequence in tracking/motion.py: identical pictures and change counts on awkward sizes,
1, 3 and 4 channels, strided and reversed views, masks and no reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from xnoryolo.tracking.motion import motion_picture

motion = pytest.importorskip("xnoryolo.kernels.motion", reason="kernels not built")

# (frame h, w, picture sh, sw): 1-pixel pictures and frames, pictures as large as the frame,
# odd scale factors, 2 and 3 wide (the blur's reflected borders overlap), the stream's size
SIZES = [
    (1, 1, 1, 1),
    (1, 7, 1, 3),
    (9, 1, 4, 1),
    (2, 2, 2, 2),
    (3, 5, 3, 5),
    (5, 3, 2, 2),
    (31, 47, 13, 19),
    (60, 37, 60, 37),
    (97, 130, 75, 100),
    (576, 768, 120, 160),
]


def _frame(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    img = rng.integers(0, 256, (h, w, c), np.uint8)
    if h > 2 and w > 2 and c != 2:
        smooth = cv2.GaussianBlur(img, (3, 3), 0).reshape(h, w, c)
        img[: h // 2] = smooth[: h // 2]  # half noise, half smooth (small differences)
    return img


def _both(
    image: np.ndarray,
    shape: tuple[int, int],
    ref: np.ndarray | None,
    mask: np.ndarray | None,
    delta: int,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    a = np.empty(shape, np.uint8)
    b = np.full(shape, 7, np.uint8)
    rows = np.empty(shape, np.uint16)
    na = motion_picture(image, a, rows, ref, mask, delta)
    frame = image if image.ndim == 3 else image[:, :, None]
    nb = motion.motion_picture(frame, b, rows, ref, mask, delta)
    return a, b, na, nb


@pytest.mark.parametrize(("h", "w", "sh", "sw"), SIZES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_picture_and_count_match_the_reference(
    h: int, w: int, sh: int, sw: int, channels: int
) -> None:
    rng = np.random.default_rng(h * 1000 + w + channels)
    image = _frame(rng, h, w, channels)
    a, b, na, nb = _both(image, (sh, sw), None, None, 20)
    assert np.array_equal(a, b)
    assert na == nb == -1
    moved = _frame(rng, h, w, channels)
    moved[: h // 3] = image[: h // 3]  # part unchanged
    mask = np.full((sh, sw), 255, np.uint8)
    mask[:, : sw // 2] = 0
    for delta in (1, 20, 254):
        for m in (None, mask):
            a2, b2, na, nb = _both(moved, (sh, sw), a, m, delta)
            assert np.array_equal(a2, b2)
            assert na == nb >= 0


@pytest.mark.parametrize(
    "view",
    [
        lambda f: f[::2, ::3],  # rows and pixels skipped
        lambda f: f[::-1, ::-1],  # negative strides
        lambda f: f[3:-5, 7:-2],  # a crop of a larger frame
        lambda f: f[..., ::-1],  # RGB read as BGR: channel stride -1
        lambda f: f[..., 1],  # one channel of three: a strided grey frame
        lambda f: np.asfortranarray(f),
    ],
)
def test_strided_views_match_the_reference(view: object) -> None:
    rng = np.random.default_rng(5)
    frame = view(_frame(rng, 143, 211, 3))  # type: ignore[operator]
    h, w = frame.shape[:2]
    sw = 61
    shape = (max(1, round(h * sw / w)), sw)
    ref = rng.integers(0, 256, shape, np.uint8)
    a, b, na, nb = _both(frame, shape, ref, None, 9)
    assert np.array_equal(a, b)
    assert na == nb


def test_the_stated_arithmetic() -> None:
    """The docstring's formulas by hand on one frame: nearest pixel, integer grey, the
    [1, 4, 6, 4, 1] blur rounded half up with reflected borders."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (23, 29, 3), np.uint8)
    sh, sw = 9, 11
    ys = np.minimum(np.floor(np.arange(sh) * (1 / (sh / 23))).astype(int), 22)
    xs = np.minimum(np.floor(np.arange(sw) * (1 / (sw / 29))).astype(int), 28)
    s = image[ys[:, None], xs].astype(np.int64)
    g = (s[..., 0] * 3735 + s[..., 1] * 19235 + s[..., 2] * 9798 + (1 << 14)) >> 15
    k = np.array([1, 4, 6, 4, 1])
    pad = np.pad(g, 2, mode="reflect")  # numpy's "reflect" skips the edge, as REFLECT_101
    blurred = sum(k[i] * k[j] * pad[i : i + sh, j : j + sw] for i in range(5) for j in range(5))
    out = np.empty((sh, sw), np.uint8)
    motion.motion_picture(image, out, np.empty((sh, sw), np.uint16), None, None, 1)
    assert np.array_equal(out, (blurred + 128) >> 8)


def test_bad_shapes_are_refused() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    grey = np.empty((5, 5), np.uint8)
    rows = np.empty((5, 5), np.uint16)
    with pytest.raises(ValueError, match="channels"):
        motion.motion_picture(np.zeros((10, 10, 2), np.uint8), grey, rows, None, None, 1)
    with pytest.raises(ValueError, match="rows"):
        motion.motion_picture(image, grey, np.empty((5, 4), np.uint16), None, None, 1)
    with pytest.raises(ValueError, match="ref"):
        motion.motion_picture(image, grey, rows, np.empty((4, 5), np.uint8), None, 1)
    with pytest.raises(ValueError, match="mask"):
        motion.motion_picture(image, grey, rows, grey, np.empty((5, 6), np.uint8), 1)
    with pytest.raises(ValueError, match="empty"):
        motion.motion_picture(np.zeros((0, 10, 3), np.uint8), grey, rows, None, None, 1)
