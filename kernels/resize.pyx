"""darknet's resize_image fused with the BGR uint8 -> planar RGB float32 conversion.

Same arithmetic as detector.preprocess (the reference): byte/255 in float32, pass 1 along rows
`(1-dx)*a + dx*b`, pass 2 `(1-dy)*p` then `+= dy*q`, each product and sum rounded to float32
(the build sets -ffp-contract=off, so no FMA fuses them). Bit-exact with the reference.
Channels are independent, so with threads > 1 they are spread over OpenMP threads.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint8_t

import numpy as np


cdef void _channel(const uint8_t[:, :, ::1] img, float[:, :, ::1] part, float[:, :, ::1] o,
                   const float* lut, Py_ssize_t k, int w, int h,
                   float w_scale, float h_scale) noexcept nogil:
    cdef Py_ssize_t ih = img.shape[0], iw = img.shape[1]
    cdef Py_ssize_t src = 2 - k  # BGR -> RGB
    cdef Py_ssize_t r, c, ix, iy
    cdef float sx, dx, sy, dy, a, b
    for r in range(ih):
        for c in range(w - 1):
            sx = <float>c * w_scale
            ix = <Py_ssize_t>sx
            dx = sx - <float>ix
            a = (<float>1.0 - dx) * lut[img[r, ix, src]]
            b = dx * lut[img[r, ix + 1 if ix + 1 < iw else iw - 1, src]]
            part[k, r, c] = a + b
        part[k, r, w - 1] = lut[img[r, iw - 1, src]]
    for r in range(h):
        sy = <float>r * h_scale
        iy = <Py_ssize_t>sy
        dy = sy - <float>iy
        for c in range(w):
            o[k, r, c] = (<float>1.0 - dy) * part[k, iy, c]
        if r == h - 1:
            continue
        for c in range(w):
            o[k, r, c] = o[k, r, c] + dy * part[k, iy + 1 if iy + 1 < ih else ih - 1, c]


def resize_bgr(const uint8_t[:, :, ::1] img, int w, int h, int threads=1):
    """(H, W, 3) BGR uint8 -> (3, h, w) RGB float32 resized like darknet; needs w, h >= 2."""
    cdef Py_ssize_t ih = img.shape[0], iw = img.shape[1]
    if img.shape[2] != 3 or w < 2 or h < 2 or ih < 2 or iw < 2:
        raise ValueError("resize_bgr needs a 3-channel image and sizes >= 2")
    out = np.empty((3, h, w), dtype=np.float32)
    part_arr = np.empty((3, ih, w), dtype=np.float32)
    cdef float[:, :, ::1] o = out
    cdef float[:, :, ::1] part = part_arr
    cdef float w_scale = <float>(iw - 1) / <float>(w - 1)
    cdef float h_scale = <float>(ih - 1) / <float>(h - 1)
    cdef float lut[256]
    cdef Py_ssize_t k
    for k in range(256):
        lut[k] = <float>k / <float>255.0
    with nogil:
        if threads > 1:
            for k in prange(3, num_threads=min(threads, 3), schedule="static", chunksize=1):
                _channel(img, part, o, lut, k, w, h, w_scale, h_scale)
        else:
            for k in range(3):
                _channel(img, part, o, lut, k, w, h, w_scale, h_scale)
    return out
