"""Darknet `detector test` preprocessing (image.c), from an OpenCV-decoded BGR frame.

Planar CHW RGB float32 in [0, 1] (byte / 255), then darknet's own two-pass "align corners"
bilinear resize (no antialiasing, separate float32 roundings, no FMA) or its letterbox
(0.5 grey canvas, integer offsets). Bit-exact with darknet given the same decoded pixels.

`preprocess_bytes`: the same tensor as an int8 network's input bytes (quantised with scale
1/255, zero point 0, quantize.INPUT_QUANT), what a network whose first layer runs int8 takes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .quantize import INPUT_QUANT, quantize_activations

F32 = np.float32


def to_planar(image: np.ndarray, channels: int) -> np.ndarray:
    """OpenCV image (H,W) grey, (H,W,3) BGR or (H,W,4) BGRA uint8 -> (channels,H,W) f32 /255.

    Channel conversion follows stb_image (what darknet loads with): grey is replicated,
    RGB -> grey is (77r + 150g + 29b) >> 8, a missing alpha is 255."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or 0 in image.shape:
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    src_c = image.shape[2]
    if src_c >= 3:
        rgb = image[:, :, [2, 1, 0]]
        alpha = image[:, :, 3:4] if src_c == 4 else None
    else:
        rgb = np.repeat(image, 3, axis=2)
        alpha = None
    if channels == 3:
        out = rgb
    elif channels == 4:
        a = alpha if alpha is not None else np.full((*rgb.shape[:2], 1), 255, np.uint8)
        out = np.concatenate([rgb, a], axis=2)
    elif channels == 1:
        if src_c == 1:
            out = image
        else:
            r, g, b = (rgb[:, :, i].astype(np.int32) for i in range(3))
            out = ((77 * r + 150 * g + 29 * b) >> 8).astype(np.uint8)[:, :, None]
    else:
        raise ValueError(f"networks with {channels} input channels are not supported")
    return np.ascontiguousarray(out.transpose(2, 0, 1)).astype(F32) / F32(255)


def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet resize_image on a (c, H, W) float32 image."""
    c, ih, iw = im.shape
    if iw == w and ih == h:
        return im.copy()
    # pass 1: columns
    if w == 1 or iw == 1:
        part = np.repeat(im[:, :, iw - 1 : iw], w, axis=2)
    else:
        w_scale = F32(iw - 1) / F32(w - 1)
        sx = np.arange(w - 1, dtype=F32) * w_scale
        ix = sx.astype(np.int64)
        dx = sx - ix.astype(F32)
        ix1 = np.minimum(ix + 1, iw - 1)
        left = (F32(1) - dx) * im[:, :, ix]
        right = dx * im[:, :, ix1]
        part = np.empty((c, ih, w), F32)
        part[:, :, : w - 1] = left + right
        part[:, :, w - 1] = im[:, :, iw - 1]
    # pass 2: rows
    if h == 1 or ih == 1:
        return np.repeat(part[:, 0:1, :], h, axis=1).astype(F32)
    h_scale = F32(ih - 1) / F32(h - 1)
    sy = np.arange(h, dtype=F32) * h_scale
    iy = sy.astype(np.int64)
    dy = (sy - iy.astype(F32))[None, :, None]
    out = (F32(1) - dy) * part[:, iy, :]
    iy1 = np.minimum(iy + 1, ih - 1)
    add = dy * part[:, iy1, :]
    out[:, : h - 1, :] += add[:, : h - 1, :]
    return out.astype(F32)


def letterbox_geometry(iw: int, ih: int, w: int, h: int) -> tuple[int, int]:
    """(new_w, new_h) of darknet's letterbox / correct_yolo_boxes (integer division)."""
    if F32(w) / F32(iw) < F32(h) / F32(ih):
        return w, (ih * w) // iw
    return (iw * h) // ih, h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    c, ih, iw = im.shape
    new_w, new_h = letterbox_geometry(iw, ih, w, h)
    resized = resize_image(im, new_w, new_h)
    canvas = np.full((c, h, w), F32(0.5), F32)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    canvas[:, dy : dy + new_h, dx : dx + new_w] = resized
    return canvas


Resize = Callable[[np.ndarray, int, int, int], np.ndarray]


def _fast_resize() -> tuple[Resize, Resize] | tuple[None, None]:
    try:
        from xnoryolo.kernels.resize import resize_bgr, resize_bgr_bytes
    except ImportError:  # kernels not built: the NumPy reference does the same, slower
        return None, None
    return resize_bgr, resize_bgr_bytes


FAST_RESIZE, FAST_RESIZE_BYTES = _fast_resize()


def preprocess(
    image: np.ndarray,
    w: int,
    h: int,
    channels: int,
    letter_box: bool,
    fast: bool = True,
    threads: int = 1,
) -> np.ndarray:
    """OpenCV image -> the (channels, h, w) float32 tensor darknet feeds its network.

    BGR frames for 3-channel networks go through the compiled resize (bit-exact with
    resize_image); everything else, or fast=False, through the NumPy reference."""
    out = _fast(FAST_RESIZE if fast else None, image, w, h, channels, letter_box, threads, F32(0.5))
    if out is not None:
        return out
    im = to_planar(image, channels)
    return letterbox_image(im, w, h) if letter_box else resize_image(im, w, h)


def preprocess_bytes(
    image: np.ndarray,
    w: int,
    h: int,
    channels: int,
    letter_box: bool,
    fast: bool = True,
    threads: int = 1,
) -> np.ndarray:
    """preprocess's tensor as uint8 (channels, h, w): quantize_activations(preprocess(...),
    INPUT_QUANT), the bytes an int8 first layer would make of it (the grey 0.5 is 127). The
    compiled resize quantises as it goes: no float tensor is written."""
    grey = quantize_activations(np.full(1, 0.5, F32), INPUT_QUANT)[0]
    out = _fast(FAST_RESIZE_BYTES if fast else None, image, w, h, channels, letter_box, threads,
                grey)  # fmt: skip
    if out is not None:
        return out
    return quantize_activations(preprocess(image, w, h, channels, letter_box, False), INPUT_QUANT)


def _fast(
    resize: Resize | None,
    image: np.ndarray,
    w: int,
    h: int,
    channels: int,
    letter_box: bool,
    threads: int,
    grey: np.generic,
) -> np.ndarray | None:
    """The compiled resize where it applies (BGR frames, 3-channel networks), else None."""
    if not (
        resize is not None
        and channels == 3
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and min(image.shape[:2]) >= 2
        and min(w, h) >= 2
    ):
        return None
    frame = np.ascontiguousarray(image)
    if not letter_box:
        return resize(frame, w, h, threads)
    new_w, new_h = letterbox_geometry(image.shape[1], image.shape[0], w, h)
    if min(new_w, new_h) < 2:
        return None
    canvas = np.full((3, h, w), grey, grey.dtype)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    canvas[:, dy : dy + new_h, dx : dx + new_w] = resize(frame, new_w, new_h, threads)
    return canvas
