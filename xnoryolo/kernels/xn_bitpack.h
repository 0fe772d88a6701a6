/* Packing and bit-im2col (layout in kernels/README.md): sign bits of float rows into pixel
 * words, window rows into pixel panels, and the AVX2 path's nibble split of both operands. */
#ifndef XNORYOLO_XN_BITPACK_H
#define XNORYOLO_XN_BITPACK_H

#include "xn_common.h"

/* The AVX2 path keeps weights and pixel panels nibble-split (kernels/README.md, "SIMD
 * paths"): each operand word w is stored as w & 0x0f.. (lo) and (w >> 4) & 0x0f.. (hi), the
 * hi arrays right after the lo ones. The nibbles of w XOR x are then lo(w) XOR lo(x) and
 * hi(w) XOR hi(x), straight table indices: per 256 bits, 2 xor + 2 vpshufb + 2 add instead
 * of 8 ops. Plain C, outside `#ifdef XN_X86`: xconv.pyx calls it on every platform
 * (only the avx2 path's buffers need it). */
#define XN_NIBBLES 0x0f0f0f0f0f0f0f0fULL

static void xn_split_nibbles(uint64_t *lo, uint64_t *hi, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        const uint64_t v = lo[i];
        lo[i] = v & XN_NIBBLES;
        hi[i] = (v >> 4) & XN_NIBBLES;
    }
}

/* One input row: x points at channel 0 of the row, plane = H*W floats between channels.
 * dst points at the row's first real pixel in the packed image (pixel stride cw words).
 * Branch-free so the compiler vectorises the inner loop over pixels. */
#ifdef XN_X86
/* AVX-512: one compare gives 16 pixels' sign bits as a mask; two masked ORs set the channel's
 * bit in 16 pixel words held in two registers. The last, partial group of pixels uses masked
 * loads and stores (13-pixel rows are common). */
__attribute__((target(XN_AVX512_TARGET))) static void xn_pack_row_avx512(const float *x,
                                                                         size_t plane, int c,
                                                                         int w, uint64_t *dst,
                                                                         int cw) {
    const __m512 zero = _mm512_setzero_ps();
    uint64_t tmp[16];
    int i, wd, ch, j;
    for (i = 0; i < w; i += 16) {
        const int n = w - i < 16 ? w - i : 16;
        const __mmask16 live = (__mmask16)((1u << n) - 1u);
        for (wd = 0; wd < cw; wd++) {
            const int c1 = c < (wd + 1) * 64 ? c : (wd + 1) * 64;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0;
            for (ch = wd * 64; ch < c1; ch++) {
                const __m512 v = _mm512_maskz_loadu_ps(live, x + (size_t)ch * plane + i);
                const __mmask16 m = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
                const __m512i bit = _mm512_set1_epi64((long long)((uint64_t)1 << (ch & 63)));
                a0 = _mm512_mask_or_epi64(a0, (__mmask8)m, a0, bit);
                a1 = _mm512_mask_or_epi64(a1, (__mmask8)(m >> 8), a1, bit);
            }
            if (cw == 1) {
                _mm512_mask_storeu_epi64((void *)(dst + i), (__mmask8)live, a0);
                _mm512_mask_storeu_epi64((void *)(dst + i + 8), (__mmask8)(live >> 8), a1);
            } else {
                _mm512_storeu_si512((void *)tmp, a0);
                _mm512_storeu_si512((void *)(tmp + 8), a1);
                for (j = 0; j < n; j++) dst[(size_t)(i + j) * cw + wd] = tmp[j];
            }
        }
    }
}
#endif

static void xn_pack_row(int isa, const float *x, size_t plane, int c, int w, uint64_t *dst,
                        int cw) {
    int wd, ch, i = 0;
#ifdef XN_X86
    if (isa == XN_AVX512) {
        xn_pack_row_avx512(x, plane, c, w, dst, cw);
        return;
    }
    /* 8 pixels at a time, their words kept in registers across the channels of one word:
     * compare -> 32-bit masks -> widened to 64-bit lanes -> AND the channel's bit -> OR. */
    for (; i + 8 <= w; i += 8) {
        for (wd = 0; wd < cw; wd++) {
            const int c1 = c < (wd + 1) * 64 ? c : (wd + 1) * 64;
            const __m128 zero = _mm_setzero_ps();
            __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
            uint64_t *o = dst + (size_t)i * cw + wd;
            for (ch = wd * 64; ch < c1; ch++) {
                const float *s = x + (size_t)ch * plane + i;
                const __m128i bit = _mm_set1_epi64x((long long)((uint64_t)1 << (ch & 63)));
                const __m128i m0 = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(s), zero));
                const __m128i m1 = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(s + 4), zero));
                a0 = _mm_or_si128(a0, _mm_and_si128(_mm_unpacklo_epi32(m0, m0), bit));
                a1 = _mm_or_si128(a1, _mm_and_si128(_mm_unpackhi_epi32(m0, m0), bit));
                a2 = _mm_or_si128(a2, _mm_and_si128(_mm_unpacklo_epi32(m1, m1), bit));
                a3 = _mm_or_si128(a3, _mm_and_si128(_mm_unpackhi_epi32(m1, m1), bit));
            }
            _mm_storel_epi64((__m128i *)(o), a0);
            _mm_storel_epi64((__m128i *)(o + cw), _mm_unpackhi_epi64(a0, a0));
            _mm_storel_epi64((__m128i *)(o + 2 * (size_t)cw), a1);
            _mm_storel_epi64((__m128i *)(o + 3 * (size_t)cw), _mm_unpackhi_epi64(a1, a1));
            _mm_storel_epi64((__m128i *)(o + 4 * (size_t)cw), a2);
            _mm_storel_epi64((__m128i *)(o + 5 * (size_t)cw), _mm_unpackhi_epi64(a2, a2));
            _mm_storel_epi64((__m128i *)(o + 6 * (size_t)cw), a3);
            _mm_storel_epi64((__m128i *)(o + 7 * (size_t)cw), _mm_unpackhi_epi64(a3, a3));
        }
    }
#endif
    for (; i < w; i++) {
        for (wd = 0; wd < cw; wd++) {
            const int c1 = c < (wd + 1) * 64 ? c : (wd + 1) * 64;
            uint64_t v = 0;
            for (ch = wd * 64; ch < c1; ch++)
                v |= (uint64_t)(x[(size_t)ch * plane + i] > 0.0f) << (ch & 63);
            dst[(size_t)i * cw + wd] = v;
        }
    }
}

/* OR nbits of src (cw words, unused tail bits zero) into a window row at bit offset; the row's
 * words are `stride` apart (XN_PW in the pixel panels, 1 in a contiguous buffer). */
static inline void xn_append_bits(uint64_t *row, int offset, const uint64_t *src, int cw,
                                  int nbits, int stride) {
    const int sh = offset & 63;
    int i;
    row += (size_t)(offset >> 6) * stride;
    if (sh == 0) {
        for (i = 0; i < cw; i++) row[(size_t)i * stride] |= src[i];
        return;
    }
    for (i = 0; i < cw; i++) {
        row[(size_t)i * stride] |= src[i] << sh;
        if (nbits - 64 * i > 64 - sh) row[(size_t)(i + 1) * stride] |= src[i] >> (64 - sh);
    }
}

/* Windows up to this many words are assembled on the stack (3x3 windows up to C = 455). */
#define XN_ROWBUF 64

/* Windows of output row oy (pixels p0 = oy*out_w ...): pixel p gets the size x size taps of
 * packed rows iy0 .. iy0+size-1 from column ox*stride_x, tap-major (ky, kx, c), written into
 * its panel lane. cols is zeroed. */
#define XN_MAXTAPS 64

/* One pixel's window when C divides 64: word j ORs taps j*per .. j*per+per-1, shifted. */
static inline void xn_im2col_pixel_c64(const uint64_t *base, int c, int per, int kw,
                                       const int *offs, int ntaps, uint64_t *row) {
    int j, q, t = 0;
    for (j = 0; j < kw; j++) {
        uint64_t v = 0;
        for (q = 0; q < per && t < ntaps; q++, t++) v |= base[offs[t]] << (q * c);
        row[(size_t)j * XN_PW] = v;
    }
}

#ifdef XN_X86
/* The same for whole panels of 8 consecutive pixels (stride 1): tap t of the panel's pixels is
 * one (AVX-512) or two (AVX2) vector loads, window word j of the 8 pixels one panel row.
 * base: the panel's first pixel; panel: its row 0 in cols. */
__attribute__((target(XN_AVX512_TARGET))) static void xn_im2col_panels_avx512(
    const uint64_t *base, int c, int npanels, uint64_t *panel, int kw, const int *offs,
    int ntaps) {
    const int per = 64 / c;
    int n, j, q, t;
    for (n = 0; n < npanels; n++, base += XN_PW, panel += (size_t)kw * XN_PW) {
        for (j = 0, t = 0; j < kw; j++) {
            __m512i v = _mm512_setzero_si512();
            for (q = 0; q < per && t < ntaps; q++, t++)
                v = _mm512_or_si512(v, _mm512_sllv_epi64(_mm512_loadu_si512(
                                                             (const void *)(base + offs[t])),
                                                         _mm512_set1_epi64(q * c)));
            _mm512_storeu_si512((void *)(panel + (size_t)j * XN_PW), v);
        }
    }
}

__attribute__((target("avx2"))) static void xn_im2col_panels_avx2(const uint64_t *base, int c,
                                                                   int npanels, uint64_t *panel,
                                                                   int kw, const int *offs,
                                                                   int ntaps) {
    const int per = 64 / c;
    int n, j, q, t;
    for (n = 0; n < npanels; n++, base += XN_PW, panel += (size_t)kw * XN_PW) {
        for (j = 0, t = 0; j < kw; j++) {
            __m256i v0 = _mm256_setzero_si256(), v1 = v0;
            for (q = 0; q < per && t < ntaps; q++, t++) {
                const __m128i sh = _mm_cvtsi32_si128(q * c);
                const uint64_t *src = base + offs[t];
                v0 = _mm256_or_si256(v0, _mm256_sll_epi64(
                                             _mm256_loadu_si256((const __m256i *)src), sh));
                v1 = _mm256_or_si256(v1, _mm256_sll_epi64(
                                             _mm256_loadu_si256((const __m256i *)(src + 4)), sh));
            }
            _mm256_storeu_si256((__m256i *)(panel + (size_t)j * XN_PW), v0);
            _mm256_storeu_si256((__m256i *)(panel + (size_t)j * XN_PW + 4), v1);
        }
    }
}
#endif

static void xn_im2col_row(int isa, const uint64_t *packed, int wp, int cw, int c, int size,
                          int iy0, int stride_x, int out_w, int p0, uint64_t *cols, int kw) {
    uint64_t buf[XN_ROWBUF + 1];
    int ox, ky, kx, j;
    const int ntaps = size * size;
    if (cw == 1 && 64 % c == 0 && ntaps <= XN_MAXTAPS) {
        /* C divides 64 (1, 2, 4, 8, 16, 32, 64): taps never straddle a word, so each window
         * word is 64/C whole taps OR-ed in registers; tap t sits at word offs[t] from the
         * window's first pixel. */
        int offs[XN_MAXTAPS];
        const int per = 64 / c;
        for (j = 0; j < ntaps; j++) offs[j] = (j / size) * wp + j % size;
        /* pixel by pixel up to a panel boundary, whole panels with SIMD, then the tail */
#ifdef XN_X86
        int head = out_w, npanels = 0;
        if ((isa == XN_AVX512 || isa == XN_AVX2) && stride_x == 1) {
            head = (XN_PW - p0 % XN_PW) % XN_PW;
            head = head < out_w ? head : out_w;
            npanels = (out_w - head) / XN_PW;
        }
#endif
        for (ox = 0; ox < out_w; ox++) {
            const int p = p0 + ox;
#ifdef XN_X86
            if (ox == head && npanels > 0) {
                const uint64_t *base = packed + (size_t)iy0 * wp + ox;
                uint64_t *panel = cols + (size_t)(p / XN_PW) * kw * XN_PW;
                if (isa == XN_AVX512)
                    xn_im2col_panels_avx512(base, c, npanels, panel, kw, offs, ntaps);
                else
                    xn_im2col_panels_avx2(base, c, npanels, panel, kw, offs, ntaps);
                ox += npanels * XN_PW - 1;
                continue;
            }
#endif
            xn_im2col_pixel_c64(packed + (size_t)iy0 * wp + (size_t)ox * stride_x, c, per, kw,
                                offs, ntaps,
                                cols + ((size_t)(p / XN_PW) * kw) * XN_PW + p % XN_PW);
        }
        return;
    }
    memset(buf, 0, sizeof(buf));
    for (ox = 0; ox < out_w; ox++) {
        const int p = p0 + ox;
        uint64_t *row = cols + ((size_t)(p / XN_PW) * kw) * XN_PW + p % XN_PW;
        for (ky = 0; ky < size; ky++) {
            const uint64_t *src = packed + ((size_t)(iy0 + ky) * wp + (size_t)ox * stride_x) * cw;
            if ((c & 63) == 0) {
                /* a window row's taps are consecutive pixels: contiguous words */
                uint64_t *dst = row + (size_t)ky * size * cw * XN_PW;
                for (j = 0; j < size * cw; j++) dst[(size_t)j * XN_PW] = src[j];
            } else if (cw == 1 && kw <= XN_ROWBUF) {
                /* C < 64: each tap is one word, appended at a running bit offset */
                int off = ky * size * c;
                for (kx = 0; kx < size; kx++, off += c) {
                    const uint64_t v = src[kx];
                    const int sh = off & 63;
                    buf[off >> 6] |= v << sh;
                    if (sh + c > 64) buf[(off >> 6) + 1] |= v >> (64 - sh);
                }
            } else if (kw <= XN_ROWBUF) {
                for (kx = 0; kx < size; kx++)
                    xn_append_bits(buf, (ky * size + kx) * c, src + (size_t)kx * cw, cw, c, 1);
            } else {
                for (kx = 0; kx < size; kx++)
                    xn_append_bits(row, (ky * size + kx) * c, src + (size_t)kx * cw, cw, c,
                                   XN_PW);
            }
        }
        if ((c & 63) != 0 && kw <= XN_ROWBUF) {
            /* the window was assembled in a contiguous buffer: one store per word */
            for (j = 0; j < kw; j++) {
                row[(size_t)j * XN_PW] = buf[j];
                buf[j] = 0;
            }
        }
    }
}

#endif /* XNORYOLO_XN_BITPACK_H */
