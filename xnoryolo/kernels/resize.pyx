"""darknet's resize_image fused with the BGR uint8 -> planar RGB float32 conversion.

Same arithmetic as detector.preprocess (the reference): byte/255 in float32, pass 1 along rows
`(1-dx)*a + dx*b`, pass 2 `(1-dy)*p` then `+= dy*q`, each product and sum rounded to float32
(the build sets -ffp-contract=off, so no FMA fuses them). Bit-exact with the reference.
With threads > 1 each pass is split into channel x row-band pieces over OpenMP threads.

resize_bgr_bytes: the same floats, quantised in pass 2 as an int8 network quantises its input
(scale 1/255, zero point 0: detector.quantize.quantize_activations with INPUT_QUANT), so an
int8 first layer gets its input bytes without a float tensor in between.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport uint8_t

import numpy as np


cdef void _rows_pass(const uint8_t[:, :, ::1] img, float[:, :, ::1] part, const float* lut,
                     const Py_ssize_t* ix0, const Py_ssize_t* ix1, const float* wa,
                     const float* wb, Py_ssize_t k, Py_ssize_t r0, Py_ssize_t r1,
                     int w) noexcept nogil:
    """Pass 1 (along rows) of channel k, input rows r0 .. r1-1; column c blends pixels
    ix0[c] and ix1[c] with weights wa[c] = 1 - dx and wb[c] = dx (computed once per call)."""
    cdef Py_ssize_t iw = img.shape[1]
    cdef Py_ssize_t src = 2 - k  # BGR -> RGB
    cdef Py_ssize_t r, c
    cdef const uint8_t* row
    cdef float* out
    for r in range(r0, r1):
        row = &img[r, 0, src]
        out = &part[k, r, 0]
        for c in range(w - 1):
            out[c] = wa[c] * lut[row[3 * ix0[c]]] + wb[c] * lut[row[3 * ix1[c]]]
        out[w - 1] = lut[row[3 * (iw - 1)]]


cdef void _cols_pass(float[:, :, ::1] part, float[:, :, ::1] o, Py_ssize_t k, Py_ssize_t r0,
                     Py_ssize_t r1, int w, int h, float h_scale) noexcept nogil:
    """Pass 2 (along columns) of channel k, output rows r0 .. r1-1."""
    cdef Py_ssize_t ih = part.shape[1]
    cdef Py_ssize_t r, c, iy
    cdef float sy, dy, ndy
    cdef const float* p0
    cdef const float* p1
    cdef float* out
    for r in range(r0, r1):
        sy = <float>r * h_scale
        iy = <Py_ssize_t>sy
        dy = sy - <float>iy
        ndy = <float>1.0 - dy
        p0 = &part[k, iy, 0]
        out = &o[k, r, 0]
        if r == h - 1:
            for c in range(w):
                out[c] = ndy * p0[c]
            continue
        p1 = &part[k, iy + 1 if iy + 1 < ih else ih - 1, 0]
        # (1-dy)*p rounded, then + dy*q rounded: the reference's two steps, in one loop
        for c in range(w):
            out[c] = ndy * p0[c] + dy * p1[c]


cdef extern from "xn_int8.h" nogil:
    enum:
        XQ_PORTABLE
        XQ_AVX2
    int xq_path_supported(int path)
    void xq_quantize_path(int path, const float *x, uint8_t *q, Py_ssize_t n, float inv,
                          int zero, int top)


# the int8 kernel's quantisation: AVX2 vectors where the CPU has them (SSE2's float -> byte
# conversion took longer than the resize), else the scalar loop; the same bytes either way
cdef int QPATH = XQ_AVX2 if xq_path_supported(XQ_AVX2) else XQ_PORTABLE


cdef void _cols_pass_bytes(float[:, :, ::1] part, uint8_t[:, :, ::1] o, float *row,
                           Py_ssize_t k, Py_ssize_t r0, Py_ssize_t r1, int w, int h,
                           float h_scale, float inv) noexcept nogil:
    """_cols_pass into one float row (L1), quantised to the input bytes of an int8 network
    (quantize_activations, scale 1/255, zero point 0)."""
    cdef Py_ssize_t ih = part.shape[1]
    cdef Py_ssize_t r, c, iy
    cdef float sy, dy, ndy
    cdef const float* p0
    cdef const float* p1
    for r in range(r0, r1):
        sy = <float>r * h_scale
        iy = <Py_ssize_t>sy
        dy = sy - <float>iy
        ndy = <float>1.0 - dy
        p0 = &part[k, iy, 0]
        if r == h - 1:
            for c in range(w):
                row[c] = ndy * p0[c]
        else:
            p1 = &part[k, iy + 1 if iy + 1 < ih else ih - 1, 0]
            for c in range(w):
                row[c] = ndy * p0[c] + dy * p1[c]
        xq_quantize_path(QPATH, row, &o[k, r, 0], w, inv, 0, 255)


def resize_bgr(const uint8_t[:, :, ::1] img, int w, int h, int threads=1):
    """(H, W, 3) BGR uint8 -> (3, h, w) RGB float32 resized like darknet; needs w, h >= 2."""
    return _resize(img, w, h, threads, False)


def resize_bgr_bytes(const uint8_t[:, :, ::1] img, int w, int h, int threads=1):
    """(H, W, 3) BGR uint8 -> (3, h, w) RGB uint8: resize_bgr's floats quantised with scale
    1/255, zero point 0 (an int8 network's input bytes); needs w, h >= 2."""
    return _resize(img, w, h, threads, True)


cdef object _resize(const uint8_t[:, :, ::1] img, int w, int h, int threads, bint as_bytes):
    cdef Py_ssize_t ih = img.shape[0], iw = img.shape[1]
    if img.shape[2] != 3 or w < 2 or h < 2 or ih < 2 or iw < 2:
        raise ValueError("resize_bgr needs a 3-channel image and sizes >= 2")
    out = np.empty((3, h, w), dtype=np.uint8 if as_bytes else np.float32)
    part_arr = np.empty((3, ih, w), dtype=np.float32)
    cdef float[:, :, ::1] o
    cdef uint8_t[:, :, ::1] ob
    if as_bytes:
        ob = out
    else:
        o = out
    cdef float inv = <float>1.0 / (<float>1.0 / <float>255.0)
    rows_arr = np.empty((6, w), dtype=np.float32)  # pass 2's row of each piece (bytes)
    cdef float[:, ::1] rows = rows_arr
    cdef float[:, :, ::1] part = part_arr
    cdef float w_scale = <float>(iw - 1) / <float>(w - 1)
    cdef float h_scale = <float>(ih - 1) / <float>(h - 1)
    cdef float lut[256]
    cdef Py_ssize_t k, t, c
    # pass 1's column geometry, the same float operations as the reference, done once
    cols = np.empty((2, w), dtype=np.intp)
    weights = np.empty((2, w), dtype=np.float32)
    cdef Py_ssize_t[:, ::1] ix = cols
    cdef float[:, ::1] wt = weights
    cdef float sx, dx
    for c in range(w):
        sx = <float>c * w_scale
        ix[0, c] = <Py_ssize_t>sx
        dx = sx - <float>ix[0, c]
        ix[1, c] = ix[0, c] + 1 if ix[0, c] + 1 < iw else iw - 1
        wt[0, c] = <float>1.0 - dx
        wt[1, c] = dx
    # each pass in 3 channels x `pieces` row bands: whole rows keep the inner loops vectorised,
    # and 6 bands share 2 threads evenly where 3 channels did not
    cdef Py_ssize_t pieces = 2 if threads > 1 else 1
    for k in range(256):
        lut[k] = <float>k / <float>255.0
    with nogil, parallel(num_threads=threads if threads > 1 else 1):
        for t in prange(3 * pieces, schedule="static", chunksize=1):
            _rows_pass(img, part, lut, &ix[0, 0], &ix[1, 0], &wt[0, 0], &wt[1, 0], t // pieces,
                       ih * (t % pieces) // pieces, ih * (t % pieces + 1) // pieces, w)
        for t in prange(3 * pieces, schedule="static", chunksize=1):
            if as_bytes:
                _cols_pass_bytes(part, ob, &rows[t, 0], t // pieces,
                                 h * (t % pieces) // pieces, h * (t % pieces + 1) // pieces, w,
                                 h, h_scale, inv)
            else:
                _cols_pass(part, o, t // pieces, h * (t % pieces) // pieces,
                           h * (t % pieces + 1) // pieces, w, h, h_scale)
    return out
