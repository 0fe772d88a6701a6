/* Output transform, shared by every variant: y = float(dot) * scale[f] + bias[f], then act;
 * the portable rows, the vector forms the fused epilogues use (same operations in the same
 * order, so the same floats), and the output as sign bits for a following binary layer.
 * Compiled without FMA contraction (XN_NOCONTRACT), so results do not depend on the variant. */
#ifndef XNORYOLO_XN_TRANSFORM_H
#define XNORYOLO_XN_TRANSFORM_H

#include "xn_common.h"

/* One loop per activation, so each is branch-free and vectorised. */
static void xn_activate_row(float *y, int n, int act) {
    int i;
    if (act == XN_LEAKY) {
        i = 0;
#ifdef XN_X86
        /* GCC will not if-convert a float select (trapping math): spell out the SSE2 blend */
        {
            const __m128 tenth = _mm_set1_ps(0.1f), zero = _mm_setzero_ps();
            for (; i + 4 <= n; i += 4) {
                __m128 v = _mm_loadu_ps(y + i);
                __m128 pos = _mm_cmpgt_ps(v, zero);
                __m128 neg = _mm_mul_ps(v, tenth);
                _mm_storeu_ps(y + i, _mm_or_ps(_mm_and_ps(pos, v), _mm_andnot_ps(pos, neg)));
            }
        }
#endif
        for (; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.1f * y[i];
    } else if (act == XN_RELU) {
        for (i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    } else if (act == XN_LOGISTIC) {
        for (i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-y[i]));
    }
}

/* Fused: dot = K - 2*mismatches, y = float(dot)*scale + bias, activation, one store per value
 * (a separate activation pass would re-load values just stored, stalling on forwarding). */
static XN_NOCONTRACT void xn_store_row(const int32_t *cnt, int K, int n, float scale, float bias,
                                       int act, float *out) {
    int i = 0;
#ifdef XN_X86
    if (act != XN_LOGISTIC) {
        const __m128 vs = _mm_set1_ps(scale), vb = _mm_set1_ps(bias);
        const __m128 tenth = _mm_set1_ps(0.1f), zero = _mm_setzero_ps();
        const __m128i vk = _mm_set1_epi32(K);
        for (; i + 4 <= n; i += 4) {
            __m128i c = _mm_loadu_si128((const __m128i *)(cnt + i));
            __m128i d = _mm_sub_epi32(vk, _mm_add_epi32(c, c));
            __m128 y = _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(d), vs), vb);
            if (act == XN_LEAKY) {
                __m128 pos = _mm_cmpgt_ps(y, zero);
                y = _mm_or_ps(_mm_and_ps(pos, y), _mm_andnot_ps(pos, _mm_mul_ps(y, tenth)));
            } else if (act == XN_RELU) {
                y = _mm_and_ps(_mm_cmpgt_ps(y, zero), y);
            }
            _mm_storeu_ps(out + i, y);
        }
    }
#endif
    for (; i < n; i++) {
        float y = (float)(K - 2 * cnt[i]) * scale;
        y = y + bias;
        if (act == XN_LEAKY)
            y = y > 0.0f ? y : 0.1f * y;
        else if (act == XN_RELU)
            y = y > 0.0f ? y : 0.0f;
        out[i] = y;
    }
    if (act == XN_LOGISTIC)
        for (i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-out[i]));
}

static XN_NOCONTRACT void xn_bias_act_row(float *row, int n, float bias, int act) {
    int i;
    for (i = 0; i < n; i++) row[i] = row[i] + bias;
    xn_activate_row(row, n, act);
}

/* The fused epilogue of a tile (AVX2 / AVX-512): the output transform and/or the sign bits
 * (kernels/README.md) computed from the accumulators in registers; no counts are stored. */
typedef struct {
    const int32_t *limit;      /* of tile row 0 (sign bits wanted), or NULL */
    float *out;                /* tile row 0, pixel 0: row i at out + i*ldo; NULL: no floats */
    const float *scale, *bias; /* of tile row 0 */
    size_t ldo;
    int K, act;                /* act: linear, leaky or relu */
    int nreal, nvalid;         /* tile rows < nreal are real filters, pixels < nvalid real */
} xn_epilogue;

#ifdef XN_X86
/* 8 outputs of one filter from their dot products d (int32): the xn_store_row transform, same
 * operations in the same order, so the same floats; n: how many of the 8 are real (the rest
 * are not stored). Shared by the AVX2 and AVX-512 epilogues. */
__attribute__((target("avx2"), always_inline)) XN_NOCONTRACT static inline void
xn_store8_avx2(__m256i d, __m256 vs, __m256 vb, int act, float *dst, int n) {
    __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(d), vs), vb);
    const __m256 pos = _mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ);
    if (act == XN_LEAKY)
        y = _mm256_blendv_ps(_mm256_mul_ps(y, _mm256_set1_ps(0.1f)), y, pos);
    else if (act == XN_RELU)
        y = _mm256_and_ps(pos, y);
    if (n >= XN_PW)
        _mm256_storeu_ps(dst, y);
    else if (n > 0)
        _mm256_maskstore_ps(dst, _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                                                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                            y);
}

/* Floats of 8 pixels of one filter from their mismatch counts (t0: pixels 0-3, t1: 4-7, in
 * 64-bit lanes). */
__attribute__((target("avx2,popcnt"), always_inline)) XN_NOCONTRACT static inline void
xn_floats8_avx2(__m256i t0, __m256i t1, int K, __m256 vs, __m256 vb, int act, float *dst,
                int n) {
    /* counts < 2^31: t1 into the high halves of t0's lanes, then the 32-bit lanes in order */
    const __m256i c = _mm256_permutevar8x32_epi32(_mm256_or_si256(t0, _mm256_slli_epi64(t1, 32)),
                                                  _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    xn_store8_avx2(_mm256_sub_epi32(_mm256_set1_epi32(K), _mm256_add_epi32(c, c)), vs, vb, act,
                   dst, n);
}

/* Floats of 8 pixels of one filter from their mismatch counts (acc, 64-bit lanes). */
__attribute__((target(XN_AVX512_TARGET), always_inline)) XN_NOCONTRACT static inline void
xn_floats8_avx512(__m512i acc, int K, __m256 vs, __m256 vb, int act, float *dst, int n) {
    const __m512i d = _mm512_sub_epi64(_mm512_set1_epi64(K), _mm512_add_epi64(acc, acc));
    xn_store8_avx2(_mm512_cvtepi64_epi32(d), vs, vb, act, dst, n);
}

/* xn_floats8_avx512 for two panels at once (a0: pixels 0-7, a1: 8-15): 16 floats per
 * conversion. */
__attribute__((target(XN_AVX512_TARGET), always_inline)) XN_NOCONTRACT static inline void
xn_floats16_avx512(__m512i a0, __m512i a1, int K, __m512 vs, __m512 vb, int act, float *dst,
                   int n) {
    /* counts < 2^31: a1 into the high halves of a0's lanes, then the 32-bit lanes in order */
    const __m512i c = _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15),
        _mm512_or_si512(a0, _mm512_slli_epi64(a1, 32)));
    const __m512i d = _mm512_sub_epi32(_mm512_set1_epi32(K), _mm512_add_epi32(c, c));
    __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d), vs), vb);
    const __mmask16 pos = _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ);
    if (act == XN_LEAKY)
        y = _mm512_mask_blend_ps(pos, _mm512_mul_ps(y, _mm512_set1_ps(0.1f)), y);
    else if (act == XN_RELU)
        y = _mm512_maskz_mov_ps(pos, y);
    if (n >= 2 * XN_PW)
        _mm512_storeu_ps(dst, y);
    else if (n > 0)
        _mm512_mask_storeu_ps(dst, (__mmask16)((1u << n) - 1u), y);
}
#endif /* XN_X86 */

/* Output as sign bits, for a following binary layer (kernels/README.md, "Chained binary
 * layers"): output pixel p = oy*out_w + ox is the pixel at (oy + pad, ox + pad) of a packed
 * image of rows of wp pixels, cw words each. Bit f is 1 iff the layer's float output is > 0,
 * which (the output transform being monotone in the mismatch count) is mismatches < limit[f].
 * A tile then spans XN_TFB filters, one whole output word: tiles never share a word. */
typedef struct {
    uint64_t *data;
    const int32_t *limit;
    int out_w, wp, pad, cw;
} xn_bits_out;

#define XN_TFB 64

/* words[j] = the sign bits of filters 0 .. nf-1 (only those < nreal) for pixel j, from counts;
 * one body, compiled plain and (x86) for AVX2, where it vectorises 4 pixels wider */
#define XN_BITS_FROM_COUNTS_BODY                                                               \
    int i, j;                                                                                  \
    for (j = 0; j < np; j++) words[j] = 0;                                                     \
    for (i = 0; i < nf && i < nreal; i++) {                                                    \
        const int32_t lim = limit[i];                                                          \
        const int32_t *row = cnt + i * XN_TP;                                                  \
        for (j = 0; j < np; j++) words[j] |= (uint64_t)(row[j] < lim) << i;                    \
    }

static void xn_bits_from_counts(const int32_t *cnt, int nf, int nreal, const int32_t *limit,
                                int np, uint64_t *words) {
    XN_BITS_FROM_COUNTS_BODY
}

#ifdef XN_X86
__attribute__((target("avx2"))) static void xn_bits_from_counts_avx2(const int32_t *cnt, int nf,
                                                                    int nreal,
                                                                    const int32_t *limit, int np,
                                                                    uint64_t *words) {
    XN_BITS_FROM_COUNTS_BODY
}
#endif

/* Word f0 / 64 of pixels p0 .. p0+nvalid-1 into the packed output image. */
static void xn_put_words(const uint64_t *words, int f0, int p0, int nvalid,
                         const xn_bits_out *o) {
    /* fields copied once: the build has no strict aliasing, so a store through o->data would
     * otherwise reload them all */
    const int out_w = o->out_w, wp = o->wp, pad = o->pad, cw = o->cw;
    uint64_t *const data = o->data + f0 / 64;
    int j = 0, i, oy = p0 / out_w, ox = p0 - oy * out_w;
    while (j < nvalid) {
        uint64_t *dst = data + ((size_t)(oy + pad) * wp + ox + pad) * cw;
        const int run = out_w - ox < nvalid - j ? out_w - ox : nvalid - j;
        for (i = 0; i < run; i++) dst[(size_t)i * cw] = words[j + i];
        j += run;
        ox = 0;
        oy++;
    }
}

#endif /* XNORYOLO_XN_TRANSFORM_H */
