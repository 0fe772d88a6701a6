/* Maxpool of one channel plane, darknet's semantics: window origin (-off, -off), taps outside
 * the image ignored, -FLT_MAX where a window has none. */
#ifndef XNORYOLO_XN_POOL_H
#define XNORYOLO_XN_POOL_H

#include "xn_common.h"

/* Output rows oy0 .. oy1-1 of one channel (out points at row oy0). */
static void xn_maxpool_rows(const float *x, int h, int w, int size, int sy, int sx, int off,
                            int oy0, int oy1, int ow, float *out) {
    int oy, ox, ky, kx;
    const int oh = oy1;
    if (size == 2 && sy == 2 && sx == 2 && off == 0 && 2 * oh <= h && 2 * ow <= w) {
        /* tiny-YOLO's 2x2/2: every window lies inside the image */
        for (oy = oy0; oy < oh; oy++) {
            const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
            float *o = out + (size_t)(oy - oy0) * ow;
            ox = 0;
#ifdef XN_X86
            /* 4 outputs from 8 inputs per row: even and odd lanes split with shuffles */
            for (; ox + 4 <= ow; ox += 4) {
                const __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), a1 = _mm_loadu_ps(r0 + 2 * ox + 4);
                const __m128 b0 = _mm_loadu_ps(r1 + 2 * ox), b1 = _mm_loadu_ps(r1 + 2 * ox + 4);
                const __m128 ma = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)),
                                             _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)));
                const __m128 mb = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)),
                                             _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)));
                _mm_storeu_ps(o + ox, _mm_max_ps(ma, mb));
            }
#endif
            for (; ox < ow; ox++) {
                float a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
                float b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
                o[ox] = a > b ? a : b;
            }
        }
        return;
    }
    if (size == 2 && sy == 1 && sx == 1 && off == 0 && oh <= h && ow <= w) {
        /* 2x2/1 (tiny-YOLO's last pool): windows reach one past the last row/column, where
         * the missing taps are ignored */
        for (oy = oy0; oy < oh; oy++) {
            const float *r0 = x + (size_t)oy * w;
            const float *r1 = oy + 1 < h ? r0 + w : r0;
            float *o = out + (size_t)(oy - oy0) * ow;
            const int inner = ow < w ? ow : w - 1;
            for (ox = 0; ox < inner; ox++) {
                float a = r0[ox] > r0[ox + 1] ? r0[ox] : r0[ox + 1];
                float b = r1[ox] > r1[ox + 1] ? r1[ox] : r1[ox + 1];
                o[ox] = a > b ? a : b;
            }
            for (; ox < ow; ox++) o[ox] = r0[ox] > r1[ox] ? r0[ox] : r1[ox];
        }
        return;
    }
    for (oy = oy0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            float m = -3.402823466e+38f;
            for (ky = 0; ky < size; ky++) {
                int iy = oy * sy - off + ky;
                if (iy < 0 || iy >= h) continue;
                for (kx = 0; kx < size; kx++) {
                    int ix = ox * sx - off + kx;
                    if (ix >= 0 && ix < w && x[(size_t)iy * w + ix] > m) m = x[(size_t)iy * w + ix];
                }
            }
            out[(size_t)(oy - oy0) * ow + ox] = m;
        }
    }
}

static void xn_maxpool_plane(const float *x, int h, int w, int size, int sy, int sx, int off,
                             int oh, int ow, float *out) {
    xn_maxpool_rows(x, h, w, size, sy, sx, off, 0, oh, ow, out);
}

/* Maxpool on sign bits (max of signs = OR of bits, taps outside the image ignored), output
 * row oy of every channel word: in holds the h x w image at (ipad, ipad) in rows of iwp
 * pixels of cw words; out points at the row's first pixel, pixels cw words apart. */
static void xn_maxpool_bits_row(const uint64_t *in, int iwp, int ipad, int cw, int h, int w,
                                int size, int sy, int sx, int off, int oy, int ow,
                                uint64_t *out) {
    int ox, ky, kx, k;
    const int iy0 = oy * sy - off;
    const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = h - iy0 < size ? h - iy0 : size;
    const uint64_t *base = in + ((size_t)(iy0 + ipad) * iwp + ipad) * cw;
    if (cw == 1 && size == 2 && sx == 2 && off == 0 && 2 * ow <= w && ky0 == 0) {
        /* tiny-YOLO's 2x2/2, one word per pixel: 4 loads, 3 ORs */
        const uint64_t *r0 = base, *r1 = ky1 > 1 ? base + iwp : base;
        for (ox = 0; ox < ow; ox++)
            out[ox] = r0[2 * ox] | r0[2 * ox + 1] | r1[2 * ox] | r1[2 * ox + 1];
        return;
    }
    for (ox = 0; ox < ow; ox++) {
        const int ix0 = ox * sx - off;
        const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = w - ix0 < size ? w - ix0 : size;
        for (k = 0; k < cw; k++) {
            uint64_t v = 0;
            for (ky = ky0; ky < ky1; ky++)
                for (kx = kx0; kx < kx1; kx++)
                    v |= base[((size_t)ky * iwp + ix0 + kx) * cw + k];
            out[(size_t)ox * cw + k] = v;
        }
    }
}

#endif /* XNORYOLO_XN_POOL_H */
