/* Binary micro-kernels: cnt[i][j] = popcount(A[f0+i] XOR window of pixel p0+j) over kw words.
 * A: rows of kw words (f-major). B: pixel panels of XN_PW pixels, word k of pixel p at
 * B[((p / XN_PW) * kw + k) * XN_PW + p % XN_PW], so one vector load holds word k of 8 pixels
 * and no horizontal sums are needed. nf is a multiple of 4, np of XN_PW. A tile ends in counts
 * and the portable transform, or (AVX2 / AVX-512) in the fused epilogue. */
#ifndef XNORYOLO_XN_BGEMM_H
#define XNORYOLO_XN_BGEMM_H

#include "xn_common.h"
#include "xn_transform.h"

/* AVX2 window words per byte-counter block: a byte gains <= 8 per word, so 31 stay < 256. */
#define XN_AVX2_BLOCK 31

static void xn_tile_portable(const uint64_t *A, const uint64_t *B, int kw, int nf, int np,
                             int32_t *cnt) {
    int i, j, k, l;
    for (i = 0; i < nf; i++) {
        const uint64_t *a = A + (size_t)i * kw;
        for (j = 0; j < np; j += XN_PW) {
            const uint64_t *b = B + (size_t)j * kw;
            int32_t c[XN_PW] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (k = 0; k < kw; k++)
                for (l = 0; l < XN_PW; l++) c[l] += xn_popcount64_portable(a[k] ^ b[k * XN_PW + l]);
            for (l = 0; l < XN_PW; l++) cnt[i * XN_TP + j + l] = c[l];
        }
    }
}

#ifdef XN_X86
__attribute__((target("popcnt"))) static void xn_tile_popcnt(const uint64_t *A, const uint64_t *B,
                                                             int kw, int nf, int np,
                                                             int32_t *cnt) {
    /* 2 filters x 4 pixels: 8 accumulators in general registers */
    int i, j, h, k;
    for (i = 0; i < nf; i += 2) {
        const uint64_t *a0 = A + (size_t)i * kw, *a1 = a0 + kw;
        for (j = 0; j < np; j += XN_PW) {
            for (h = 0; h < XN_PW; h += 4) {
                const uint64_t *b = B + (size_t)j * kw + h;
                uint64_t c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
                for (k = 0; k < kw; k++) {
                    const uint64_t w0 = a0[k], w1 = a1[k];
                    const uint64_t *x = b + (size_t)k * XN_PW;
                    c00 += (uint64_t)__builtin_popcountll(w0 ^ x[0]);
                    c01 += (uint64_t)__builtin_popcountll(w0 ^ x[1]);
                    c02 += (uint64_t)__builtin_popcountll(w0 ^ x[2]);
                    c03 += (uint64_t)__builtin_popcountll(w0 ^ x[3]);
                    c10 += (uint64_t)__builtin_popcountll(w1 ^ x[0]);
                    c11 += (uint64_t)__builtin_popcountll(w1 ^ x[1]);
                    c12 += (uint64_t)__builtin_popcountll(w1 ^ x[2]);
                    c13 += (uint64_t)__builtin_popcountll(w1 ^ x[3]);
                }
                int32_t *o0 = cnt + i * XN_TP + j + h, *o1 = o0 + XN_TP;
                o0[0] = (int32_t)c00;
                o0[1] = (int32_t)c01;
                o0[2] = (int32_t)c02;
                o0[3] = (int32_t)c03;
                o1[0] = (int32_t)c10;
                o1[1] = (int32_t)c11;
                o1[2] = (int32_t)c12;
                o1[3] = (int32_t)c13;
            }
        }
    }
}

/* AVX2 has no vector popcount: nibble lookup with vpshufb, byte sums folded with vpsadbw. */

/* Mismatch counts of 2 filters (nibble rows al/ah and al/ah + row) x 8 pixels (nibble panels
 * bl, bh) over kc <= 31 words, in 64-bit lanes: t[0], t[1] filter 0, pixels 0-3 and 4-7; t[2],
 * t[3] filter 1. Byte counters (<= 8 per word) cannot overflow in 31 words; longer windows are
 * summed in blocks by the caller, so no running sums take registers here. */
__attribute__((target("avx2,popcnt"), always_inline)) static inline void xn_acc_avx2(
    const long long *al, const long long *ah, int row, const uint64_t *bl, const uint64_t *bh,
    int kc, __m256i t[4]) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i zero = _mm256_setzero_si256();
    __m256i c00 = zero, c01 = zero, c10 = zero, c11 = zero;
    const long long *al1 = al + row, *ah1 = ah + row;
    int k;
    for (k = 0; k < kc; k++) {
        const size_t o = (size_t)k * XN_PW;
        const __m256i xl0 = _mm256_loadu_si256((const __m256i *)(bl + o));
        const __m256i xl1 = _mm256_loadu_si256((const __m256i *)(bl + o + 4));
        const __m256i xh0 = _mm256_loadu_si256((const __m256i *)(bh + o));
        const __m256i xh1 = _mm256_loadu_si256((const __m256i *)(bh + o + 4));
        const __m256i wl0 = _mm256_set1_epi64x(al[k]), wh0 = _mm256_set1_epi64x(ah[k]);
        const __m256i wl1 = _mm256_set1_epi64x(al1[k]), wh1 = _mm256_set1_epi64x(ah1[k]);
#define XN_PC_SPLIT(wl, wh, xl, xh)                                                            \
    _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(wl, xl)),                        \
                    _mm256_shuffle_epi8(lut, _mm256_xor_si256(wh, xh)))
        c00 = _mm256_add_epi8(XN_PC_SPLIT(wl0, wh0, xl0, xh0), c00);
        c01 = _mm256_add_epi8(XN_PC_SPLIT(wl0, wh0, xl1, xh1), c01);
        c10 = _mm256_add_epi8(XN_PC_SPLIT(wl1, wh1, xl0, xh0), c10);
        c11 = _mm256_add_epi8(XN_PC_SPLIT(wl1, wh1, xl1, xh1), c11);
#undef XN_PC_SPLIT
    }
    t[0] = _mm256_sad_epu8(c00, zero);
    t[1] = _mm256_sad_epu8(c01, zero);
    t[2] = _mm256_sad_epu8(c10, zero);
    t[3] = _mm256_sad_epu8(c11, zero);
}

/* Counts of the tile (nf filters x np pixels, nibble-split operands: A/Ah, B/Bh) into cnt.
 * K in blocks of 31 words, each summed into cnt: the inner loop keeps no running sums, so its
 * operands stay in registers. */
__attribute__((target("avx2,popcnt"))) static void xn_tile_avx2(const uint64_t *A,
                                                                const uint64_t *Ah,
                                                                const uint64_t *B,
                                                                const uint64_t *Bh, int kw,
                                                                int nf, int np, int32_t *cnt) {
    __m256i t[4];
    int i, j, q, k0;
    for (k0 = 0; k0 < kw; k0 += XN_AVX2_BLOCK) {
        const int kc = kw - k0 < XN_AVX2_BLOCK ? kw - k0 : XN_AVX2_BLOCK;
        /* panels outer: a panel's block (4 KB) stays in L1 across the filter pairs, and the
         * tile's rows' block (nf * 496 B) across the panels */
        for (j = 0; j < np; j += XN_PW)
            for (i = 0; i < nf; i += 2) {
                int32_t *o[4];
                xn_acc_avx2((const long long *)(A + (size_t)i * kw + k0),
                            (const long long *)(Ah + (size_t)i * kw + k0), kw,
                            B + (size_t)j * kw + (size_t)k0 * XN_PW,
                            Bh + (size_t)j * kw + (size_t)k0 * XN_PW, kc, t);
                o[0] = cnt + i * XN_TP + j;
                o[1] = o[0] + 4;
                o[2] = o[0] + XN_TP;
                o[3] = o[2] + 4;
                for (q = 0; q < 4; q++) {
                    /* four 64-bit lane counts (< 2^31) -> four int32, summed over blocks */
                    __m128i c = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
                        t[q], _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0)));
                    if (k0) c = _mm_add_epi32(c, _mm_loadu_si128((const __m128i *)o[q]));
                    _mm_storeu_si128((__m128i *)o[q], c);
                }
            }
    }
}

/* The epilogue of filters i (and i + 1 when `two`) x one panel (tile pixels j ..): floats
 * stored, and the sign bits returned as the panel's two words-vectors' increments. */
__attribute__((target("avx2,popcnt"), always_inline)) XN_NOCONTRACT static inline void
xn_out_avx2(const __m256i t[4], const xn_epilogue *e, int i, int two, int j, __m256i bit0,
            __m256i bit1, __m256i *wlo, __m256i *whi) {
    if (e->limit) {
        /* a padded filter gets limit 0: never set */
        const __m256i lim0 = _mm256_set1_epi64x(e->limit[i]);
        const __m256i lim1 = _mm256_set1_epi64x(two ? e->limit[i + 1] : 0);
        *wlo = _mm256_or_si256(*wlo, _mm256_or_si256(
                                         _mm256_and_si256(_mm256_cmpgt_epi64(lim0, t[0]), bit0),
                                         _mm256_and_si256(_mm256_cmpgt_epi64(lim1, t[2]), bit1)));
        *whi = _mm256_or_si256(*whi, _mm256_or_si256(
                                         _mm256_and_si256(_mm256_cmpgt_epi64(lim0, t[1]), bit0),
                                         _mm256_and_si256(_mm256_cmpgt_epi64(lim1, t[3]), bit1)));
    }
    if (e->out && j < e->nvalid) {
        float *row = e->out + (size_t)i * e->ldo + j;
        xn_floats8_avx2(t[0], t[1], e->K, _mm256_set1_ps(e->scale[i]),
                        _mm256_set1_ps(e->bias[i]), e->act, row, e->nvalid - j);
        if (two)
            xn_floats8_avx2(t[2], t[3], e->K, _mm256_set1_ps(e->scale[i + 1]),
                            _mm256_set1_ps(e->bias[i + 1]), e->act, row + e->ldo, e->nvalid - j);
    }
}

/* xn_tile_avx2 with the fused epilogue, for windows of kw <= 31 words (nf <= 64): words[p]
 * (when not NULL) gets bit i for tile filter i iff its mismatches are below e->limit[i];
 * floats go to e->out when not NULL. No counts stored. Pixels outer: the 64 filters' rows fit
 * in L1, and a panel's bit words stay in registers across the filters. */
__attribute__((target("avx2,popcnt"))) XN_NOCONTRACT static void xn_tile_avx2_out(
    const uint64_t *A, const uint64_t *Ah, const uint64_t *B, const uint64_t *Bh, int kw, int nf,
    int np, const xn_epilogue *e, uint64_t *words) {
    const int nlive = nf < e->nreal ? nf : e->nreal;
    const __m256i one = _mm256_set1_epi64x(1), zero = _mm256_setzero_si256();
    __m256i t[4];
    int i, j;
    for (j = 0; j < np; j += XN_PW) {
        __m256i wlo = zero, whi = zero, bit0 = one, bit1 = _mm256_add_epi64(one, one);
        for (i = 0; i < nlive; i += 2) {
            xn_acc_avx2((const long long *)(A + (size_t)i * kw),
                        (const long long *)(Ah + (size_t)i * kw), kw, B + (size_t)j * kw,
                        Bh + (size_t)j * kw, kw, t);
            xn_out_avx2(t, e, i, i + 1 < nlive, j, bit0, bit1, &wlo, &whi);
            bit0 = _mm256_slli_epi64(bit0, 2);
            bit1 = _mm256_slli_epi64(bit1, 2);
        }
        if (words) {
            _mm256_storeu_si256((__m256i *)(words + j), wlo);
            _mm256_storeu_si256((__m256i *)(words + j + 4), whi);
        }
    }
}

/* 4 filters (rows a, a + kw, ...) x `panels` (1..4) panels of 8 pixels from b: 16
 * accumulators, acc[4 * r + q] = mismatches of filter r against the 8 pixels of panel q. Per
 * word: `panels` loads and 4 broadcasts for 4 * panels xor/popcount/add. Always inlined with
 * a constant `panels`, so every loop unrolls and the accumulators live in registers (a runtime
 * bound makes the compiler keep them in memory). */
__attribute__((target(XN_AVX512_TARGET), always_inline)) static inline void xn_acc_avx512(
    const uint64_t *a, const uint64_t *b, int kw, const int panels, __m512i acc[16]) {
    int k, r, q;
    for (r = 0; r < 16; r++) acc[r] = _mm512_setzero_si512();
    for (k = 0; k < kw; k++) {
        __m512i x[4], w[4];
        for (q = 0; q < panels; q++)
            x[q] = _mm512_loadu_si512((const void *)(b + ((size_t)q * kw + k) * XN_PW));
        for (r = 0; r < 4; r++) w[r] = _mm512_set1_epi64((long long)a[(size_t)r * kw + k]);
        for (r = 0; r < 4; r++)
            for (q = 0; q < panels; q++)
                acc[4 * r + q] = _mm512_add_epi64(
                    acc[4 * r + q], _mm512_popcnt_epi64(_mm512_xor_si512(w[r], x[q])));
    }
}

/* Counts of 4 filters x `panels` panels into cnt (rows XN_TP apart). */
__attribute__((target(XN_AVX512_TARGET), always_inline)) static inline void xn_counts_avx512(
    const uint64_t *a, const uint64_t *b, int kw, const int panels, int32_t *cnt) {
    __m512i acc[16];
    int r, q;
    xn_acc_avx512(a, b, kw, panels, acc);
    for (r = 0; r < 4; r++)
        for (q = 0; q < panels; q++)
            _mm256_storeu_si256((__m256i *)(cnt + r * XN_TP + q * XN_PW),
                                _mm512_cvtepi64_epi32(acc[4 * r + q]));
}

__attribute__((target(XN_AVX512_TARGET))) static void xn_tile_avx512(const uint64_t *A,
                                                                     const uint64_t *B, int kw,
                                                                     int nf, int np,
                                                                     int32_t *cnt) {
    int i, j;
    for (i = 0; i < nf; i += 4) {
        for (j = 0; j < np; j += 4 * XN_PW) {
            const uint64_t *a = A + (size_t)i * kw, *b = B + (size_t)j * kw;
            int32_t *c = cnt + i * XN_TP + j;
            switch ((np - j) / XN_PW) { /* one constant-size copy per group width */
            case 1: xn_counts_avx512(a, b, kw, 1, c); break;
            case 2: xn_counts_avx512(a, b, kw, 2, c); break;
            case 3: xn_counts_avx512(a, b, kw, 3, c); break;
            default: xn_counts_avx512(a, b, kw, 4, c);
            }
        }
    }
}

/* The epilogue of 4 filters (tile rows i .. i+3, those >= nreal skipped) x `panels` panels
 * (tile pixels j ..): sign bits OR-ed into the panels' words w (`bits`) and/or floats stored
 * (`floats`), straight from the accumulators. `panels`, `bits` and `floats` are constants at
 * every call, so each copy holds only the registers it needs. */
__attribute__((target(XN_AVX512_TARGET), always_inline)) XN_NOCONTRACT static inline void
xn_out_avx512(const uint64_t *a, const uint64_t *b, int kw, const int panels, const int bits,
              const int floats, const xn_epilogue *e, int i, int j, __m512i *w) {
    __m512i acc[16];
    int r, q;
    xn_acc_avx512(a, b, kw, panels, acc);
    for (r = 0; r < 4; r++) {
        if (i + r >= e->nreal) break;
        if (bits) {
            const __m512i lim = _mm512_set1_epi64(e->limit[i + r]);
            const __m512i bit = _mm512_set1_epi64((long long)((uint64_t)1 << (i + r)));
            for (q = 0; q < panels; q++)
                w[q] = _mm512_mask_or_epi64(w[q], _mm512_cmplt_epi64_mask(acc[4 * r + q], lim),
                                            w[q], bit);
        }
        if (floats) {
            const __m512 vs = _mm512_set1_ps(e->scale[i + r]), vb = _mm512_set1_ps(e->bias[i + r]);
            float *row = e->out + (size_t)(i + r) * e->ldo + j;
            for (q = 0; q + 1 < panels; q += 2)
                xn_floats16_avx512(acc[4 * r + q], acc[4 * r + q + 1], e->K, vs, vb, e->act,
                                   row + q * XN_PW, e->nvalid - j - q * XN_PW);
            if (panels & 1)
                xn_floats8_avx512(acc[4 * r + panels - 1], e->K, _mm512_castps512_ps256(vs),
                                  _mm512_castps512_ps256(vb), e->act, row + (panels - 1) * XN_PW,
                                  e->nvalid - j - (panels - 1) * XN_PW);
        }
    }
}

/* xn_tile_avx512_out for constant `bits` / `floats`. */
__attribute__((target(XN_AVX512_TARGET), always_inline)) XN_NOCONTRACT static inline void
xn_tile_avx512_out_as(const uint64_t *A, const uint64_t *B, int kw, int nf, int np,
                      const xn_epilogue *e, uint64_t *words, const int bits, const int floats) {
    int i, j, q, h;
    const int nlive = nf < e->nreal ? nf : e->nreal;
    if (np == XN_TP) {
        /* a whole tile: filters outer (each row block read once), the 8 panels' words in
         * registers across the filters */
        __m512i w[8];
        for (q = 0; q < 8; q++) w[q] = _mm512_setzero_si512();
        for (i = 0; i < nlive; i += 4)
            for (h = 0; h < 2; h++)
                xn_out_avx512(A + (size_t)i * kw, B + (size_t)h * 4 * XN_PW * kw, kw, 4, bits,
                              floats, e, i, h * 4 * XN_PW, w + 4 * h);
        if (bits)
            for (q = 0; q < 8; q++) _mm512_storeu_si512((void *)(words + q * XN_PW), w[q]);
        return;
    }
    /* the last, partial tile: groups of up to 4 panels */
    for (j = 0; j < np; j += 4 * XN_PW) {
        __m512i w[4];
        const uint64_t *b = B + (size_t)j * kw;
        const int panels = (np - j) / XN_PW < 4 ? (np - j) / XN_PW : 4;
        for (q = 0; q < 4; q++) w[q] = _mm512_setzero_si512();
        for (i = 0; i < nlive; i += 4) {
            const uint64_t *a = A + (size_t)i * kw;
            switch (panels) {
            case 1: xn_out_avx512(a, b, kw, 1, bits, floats, e, i, j, w); break;
            case 2: xn_out_avx512(a, b, kw, 2, bits, floats, e, i, j, w); break;
            case 3: xn_out_avx512(a, b, kw, 3, bits, floats, e, i, j, w); break;
            default: xn_out_avx512(a, b, kw, 4, bits, floats, e, i, j, w);
            }
        }
        if (bits)
            for (q = 0; q < panels; q++)
                _mm512_storeu_si512((void *)(words + j + q * XN_PW), w[q]);
    }
}

/* A tile (nf <= 64 filters) with the fused epilogue: words[p] (when not NULL) gets bit i for
 * tile filter i iff its mismatches are below e->limit[i]; floats go to e->out when not NULL.
 * No counts stored. */
__attribute__((target(XN_AVX512_TARGET))) XN_NOCONTRACT static void xn_tile_avx512_out(
    const uint64_t *A, const uint64_t *B, int kw, int nf, int np, const xn_epilogue *e,
    uint64_t *words) {
    if (!e->out)
        xn_tile_avx512_out_as(A, B, kw, nf, np, e, words, 1, 0);
    else if (words)
        xn_tile_avx512_out_as(A, B, kw, nf, np, e, words, 1, 1);
    else
        xn_tile_avx512_out_as(A, B, kw, nf, np, e, words, 0, 1);
}
#endif /* XN_X86 */

#ifdef XN_HAVE_NEON
static void xn_tile_neon(const uint64_t *A, const uint64_t *B, int kw, int nf, int np,
                         int32_t *cnt) {
    /* 1 filter x 8 pixels (four q registers of 2 pixels): vcnt counts bits per byte, vpadal
     * widens pairwise into 16-bit lanes (at most 8*2 per step and lane), flushed to 64-bit
     * lanes every 2048 words, far below 16-bit overflow. */
    int i, j, k, q;
    for (i = 0; i < nf; i++) {
        const uint64_t *a = A + (size_t)i * kw;
        for (j = 0; j < np; j += XN_PW) {
            const uint64_t *b = B + (size_t)j * kw;
            uint64x2_t t[4];
            for (q = 0; q < 4; q++) t[q] = vdupq_n_u64(0);
            k = 0;
            while (k < kw) {
                const int stop = k + 2048 < kw ? k + 2048 : kw;
                uint16x8_t c[4];
                for (q = 0; q < 4; q++) c[q] = vdupq_n_u16(0);
                for (; k < stop; k++) {
                    const uint8x16_t w = vreinterpretq_u8_u64(vdupq_n_u64(a[k]));
                    for (q = 0; q < 4; q++) {
                        const uint8x16_t x =
                            vreinterpretq_u8_u64(vld1q_u64(b + (size_t)k * XN_PW + 2 * q));
                        c[q] = vpadalq_u8(c[q], vcntq_u8(veorq_u8(w, x)));
                    }
                }
                for (q = 0; q < 4; q++) t[q] = vaddq_u64(t[q], vpaddlq_u32(vpaddlq_u16(c[q])));
            }
            for (q = 0; q < 4; q++) {
                cnt[i * XN_TP + j + 2 * q] = (int32_t)vgetq_lane_u64(t[q], 0);
                cnt[i * XN_TP + j + 2 * q + 1] = (int32_t)vgetq_lane_u64(t[q], 1);
            }
        }
    }
}
#endif

/* Whether tiles on this path end in the fused epilogue (floats and bits from registers): then
 * they span at most XN_TFB filters. Integer (dot) output always goes through counts, and so do
 * AVX2 windows over 31 words (summed in blocks through memory anyway). */
static int xn_fused_epilogue(int isa, int act, int kw) {
    return (isa == XN_AVX512 || (isa == XN_AVX2 && kw <= XN_AVX2_BLOCK)) && act != XN_LOGISTIC;
}

/* One tile of the binary convolution: filters [f0, f0+nf), pixels [p0, p0+np) (padded counts),
 * stored for f < F and p < N only: integers into dot_out, or floats into out (F, N) row-major
 * and/or sign bits into bits (each may be NULL). */
static void xn_binary_tile(int isa, const uint64_t *A, const uint64_t *B, int kw, int K, int f0,
                           int nf, int p0, int np, int F, int N, const float *scale,
                           const float *bias, int act, int32_t *dot_out, float *out,
                           const xn_bits_out *bits) {
    int32_t cnt[XN_TFB * XN_TP];
    uint64_t words[XN_TP];
    const uint64_t *a = A + (size_t)f0 * kw, *b = B + (size_t)p0 * kw;
    int i, j, nvalid = N - p0 < np ? N - p0 : np;
#ifdef XN_X86
    /* AVX2: the nibble-split hi halves follow the lo ones (weights: F rounded up to 4 rows,
     * panels: N rounded up to XN_PW pixels) */
    const uint64_t *ah = a + (size_t)((F + 3) / 4 * 4) * kw;
    const uint64_t *bh = b + (size_t)((N + XN_PW - 1) / XN_PW * XN_PW) * kw;
#endif
#ifdef XN_X86
    if (xn_fused_epilogue(isa, act, kw) && !dot_out) {
        const xn_epilogue e = {bits ? bits->limit + f0 : NULL,
                               out ? out + (size_t)f0 * N + p0 : NULL,
                               scale + f0,
                               bias + f0,
                               (size_t)N,
                               K,
                               act,
                               F - f0,
                               nvalid};
        if (isa == XN_AVX512)
            xn_tile_avx512_out(a, b, kw, nf, np, &e, bits ? words : NULL);
        else
            xn_tile_avx2_out(a, ah, b, bh, kw, nf, np, &e, bits ? words : NULL);
        if (bits) xn_put_words(words, f0, p0, nvalid, bits);
        return;
    }
#endif
    switch (isa) {
#ifdef XN_X86
    case XN_POPCNT:
        xn_tile_popcnt(a, b, kw, nf, np, cnt);
        break;
    case XN_AVX2:
        xn_tile_avx2(a, ah, b, bh, kw, nf, np, cnt);
        break;
    case XN_AVX512:
        xn_tile_avx512(a, b, kw, nf, np, cnt);
        break;
#endif
#ifdef XN_HAVE_NEON
    case XN_NEON:
        xn_tile_neon(a, b, kw, nf, np, cnt);
        break;
#endif
    default:
        xn_tile_portable(a, b, kw, nf, np, cnt);
    }
    if (bits) {
#ifdef XN_X86
        if (isa == XN_AVX2)
            xn_bits_from_counts_avx2(cnt, nf, F - f0, bits->limit + f0, nvalid, words);
        else
#endif
            xn_bits_from_counts(cnt, nf, F - f0, bits->limit + f0, nvalid, words);
        xn_put_words(words, f0, p0, nvalid, bits);
        if (!dot_out && !out) return;
    }
    for (i = 0; i < nf && f0 + i < F; i++) {
        const int32_t *row = cnt + i * XN_TP;
        /* mismatches -> +-1 dot product over the K real taps (padded bits never mismatch) */
        if (dot_out) {
            int32_t *d = dot_out + (size_t)(f0 + i) * N + p0;
            for (j = 0; j < nvalid; j++) d[j] = K - 2 * row[j];
        } else {
            xn_store_row(row, K, nvalid, scale[f0 + i], bias[f0 + i], act,
                         out + (size_t)(f0 + i) * N + p0);
        }
    }
}

#endif /* XNORYOLO_XN_BGEMM_H */
