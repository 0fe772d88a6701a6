"""The motion gate's small grey picture of a frame and its change count, in one pass.

A frame (H, W, C) of bytes, C = 1 (grey) or 3 / 4 (BGR / BGRA, alpha ignored), becomes the
picture grey (sh, sw):

1. nearest pixel: small pixel (x, y) is frame pixel (min(floor(x * (1 / (sw / W))), W - 1),
   the same for y), the scale's reciprocal computed in double as written;
2. grey = (B * 3735 + G * 19235 + R * 9798 + 2^14) >> 15 (integer weights summing to 2^15);
3. 5x5 Gaussian blur: the exact integer sum S of the pixels weighted [1, 4, 6, 4, 1] along
   rows, then along columns (weights summing to 256), then (S + 128) >> 8, i.e. S / 256
   rounded half up; borders reflected without the edge pixel (dcb|abcd|cba; a picture 1
   pixel wide or high repeats it).

This is OpenCV's arithmetic for cv2.resize(INTER_NEAREST), cvtColor(BGR2GRAY) and the
bit-exact fixed-point GaussianBlur((5, 5), 0) with BORDER_REFLECT_101 on bytes, which
tracking/motion.py runs as the reference: the results are identical. With a reference
picture, the pixels whose grey differs from it by more than `delta`, where the mask (if any)
is not 0, are counted. Plain C, no threads: the frame is read once, at the sampled pixels.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.math cimport floor


cdef inline Py_ssize_t _reflect101(Py_ssize_t p, Py_ssize_t n) noexcept nogil:
    """Index p of a row of n reflected into it without repeating the edge (OpenCV's
    BORDER_REFLECT_101); n == 1: 0."""
    if n == 1:
        return 0
    while p < 0 or p >= n:
        if p < 0:
            p = -p
        else:
            p = 2 * n - 2 - p
    return p


cdef inline uint16_t _row_tap(const uint16_t* g, Py_ssize_t x, Py_ssize_t n) noexcept nogil:
    """[1, 4, 6, 4, 1] . g around x, reflected at the ends."""
    return (g[_reflect101(x - 2, n)] + 4 * g[_reflect101(x - 1, n)] + 6 * g[x]
            + 4 * g[_reflect101(x + 1, n)] + g[_reflect101(x + 2, n)])


cdef Py_ssize_t picture_and_change(const uint8_t[:, :, :] image, uint8_t[:, ::1] grey,
                                   uint16_t[:, ::1] rows, const uint8_t[:, ::1] ref,
                                   const uint8_t[:, ::1] mask, bint has_ref, bint has_mask,
                                   int delta) noexcept nogil:
    """grey (sh, sw) of image, rows (sh, sw) its row-blurred sums (scratch); with has_ref the
    number of pixels off ref by more than delta (and not 0 in mask with has_mask), else -1.
    Returns -2 when the scratch could not be allocated."""
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t sh = grey.shape[0], sw = grey.shape[1]
    cdef Py_ssize_t sx = image.strides[1], sy = image.strides[0], sc = image.strides[2]
    cdef double ifx = 1.0 / (<double>sw / <double>w)
    cdef double ify = 1.0 / (<double>sh / <double>h)
    cdef Py_ssize_t x, y, k, src_y, changed = 0
    cdef const uint8_t* base = &image[0, 0, 0]
    cdef const uint8_t* line
    cdef const uint8_t* p
    cdef const uint16_t* u0
    cdef const uint16_t* u1
    cdef const uint16_t* u2
    cdef const uint16_t* u3
    cdef const uint16_t* u4
    cdef uint16_t* hs
    cdef uint8_t* out
    cdef const uint8_t* old
    cdef const uint8_t* keep
    cdef int v
    # per call: the frame's byte offset of each small column, one grey row
    cdef Py_ssize_t* x_ofs = <Py_ssize_t*>malloc(sw * sizeof(Py_ssize_t))
    cdef uint16_t* g = <uint16_t*>malloc(sw * sizeof(uint16_t))
    if x_ofs == NULL or g == NULL:
        free(x_ofs)
        free(g)
        return -2
    for x in range(sw):
        k = <Py_ssize_t>floor(<double>x * ifx)
        x_ofs[x] = (k if k < w - 1 else w - 1) * sx
    for y in range(sh):
        src_y = <Py_ssize_t>floor(<double>y * ify)
        line = base + (src_y if src_y < h - 1 else h - 1) * sy
        if c == 1:
            for x in range(sw):
                g[x] = line[x_ofs[x]]
        elif sc == 1:  # packed pixels: constant channel offsets
            for x in range(sw):
                p = line + x_ofs[x]
                g[x] = <uint16_t>((p[0] * 3735 + p[1] * 19235 + p[2] * 9798 + 16384) >> 15)
        else:
            for x in range(sw):
                p = line + x_ofs[x]
                g[x] = <uint16_t>((p[0] * 3735 + p[sc] * 19235 + p[2 * sc] * 9798 + 16384) >> 15)
        # the row pass: interior columns directly, the two at each end reflected
        hs = &rows[y, 0]
        for x in range(2, sw - 2):
            hs[x] = g[x - 2] + 4 * g[x - 1] + 6 * g[x] + 4 * g[x + 1] + g[x + 2]
        for x in range(sw if sw < 2 else 2):
            hs[x] = _row_tap(g, x, sw)
        for x in range(sw - 2 if sw > 4 else 2, sw):
            hs[x] = _row_tap(g, x, sw)
    free(x_ofs)
    free(g)
    for y in range(sh):
        u0 = &rows[_reflect101(y - 2, sh), 0]
        u1 = &rows[_reflect101(y - 1, sh), 0]
        u2 = &rows[y, 0]
        u3 = &rows[_reflect101(y + 1, sh), 0]
        u4 = &rows[_reflect101(y + 2, sh), 0]
        out = &grey[y, 0]
        # at most 16 * 4080 = 65280: the sums fit 32 bits
        for x in range(sw):
            out[x] = <uint8_t>((<uint32_t>u0[x] + 4 * <uint32_t>u1[x] + 6 * <uint32_t>u2[x]
                                + 4 * <uint32_t>u3[x] + <uint32_t>u4[x] + 128) >> 8)
        if has_ref:
            old = &ref[y, 0]
            if has_mask:
                keep = &mask[y, 0]
                for x in range(sw):
                    v = <int>out[x] - <int>old[x]
                    changed += ((v > delta) | (-v > delta)) & (keep[x] != 0)
            else:
                for x in range(sw):
                    v = <int>out[x] - <int>old[x]
                    changed += (v > delta) | (-v > delta)
    return changed if has_ref else -1


def motion_picture(const uint8_t[:, :, :] image, uint8_t[:, ::1] grey, uint16_t[:, ::1] rows,
                   const uint8_t[:, ::1] ref, const uint8_t[:, ::1] mask, int delta):
    """grey (sh, sw): the frame image (H, W, C; C 1, 3 or 4) small and blurred; rows (sh, sw)
    scratch. With ref (sh, sw) the number of pixels that differ from it by more than delta,
    outside mask's 0 pixels (mask (sh, sw) or None), else -1."""
    cdef Py_ssize_t n
    cdef bint has_ref = ref is not None
    cdef bint has_mask = mask is not None
    cdef Py_ssize_t sh = grey.shape[0], sw = grey.shape[1]
    if image.shape[2] not in (1, 3, 4):
        raise ValueError(f"a frame of {image.shape[2]} channels: 1, 3 or 4 expected")
    if image.shape[0] < 1 or image.shape[1] < 1 or sh < 1 or sw < 1:
        raise ValueError("an empty frame or picture")
    if rows.shape[0] != sh or rows.shape[1] != sw:
        raise ValueError("rows must have the picture's shape")
    if has_ref and (ref.shape[0] != sh or ref.shape[1] != sw):
        raise ValueError("ref must have the picture's shape")
    if has_mask and (mask.shape[0] != sh or mask.shape[1] != sw):
        raise ValueError("mask must have the picture's shape")
    with nogil:
        n = picture_and_change(image, grey, rows, ref, mask, has_ref, has_mask, delta)
    if n == -2:
        raise MemoryError()
    return n
