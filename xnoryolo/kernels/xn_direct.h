/* Direct float convolution for thin inputs (the first layer: C*size*size small), stride_x 1.
 * xp: zero-padded input (c, hp, wp); W: (F rounded up to 8, K) with zero rows (AVX-512:
 * interleaved [F/8][K][8], see there); writes output
 * row oy (input rows iy0 ..) of every filter: out + f*plane. Vector variants for AVX2,
 * AVX-512 and NEON; the portable loop is the reference for them. */
#ifndef XNORYOLO_XN_DIRECT_H
#define XNORYOLO_XN_DIRECT_H

#include "xn_common.h"
#include "xn_transform.h"

static void xn_direct_row_portable(const float *xp, int c, int hp, int wp, const float *W, int F,
                                   int size, int iy0, int out_w, float *out, size_t plane) {
    const int K = c * size * size;
    int f, ox, ch, ky, kx;
    for (f = 0; f < F; f++) {
        const float *w = W + (size_t)f * K;
        float *o = out + (size_t)f * plane;
        for (ox = 0; ox < out_w; ox++) {
            float acc = 0.0f;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *r = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++) acc += w[(ch * size + ky) * size + kx] * r[kx];
                }
            o[ox] = acc;
        }
    }
}

#ifdef XN_X86
/* bias + linear/leaky/relu on 8 accumulated values, in registers (no FMA: an add, then a
 * multiply feeding only a blend, so nothing can be contracted) */
__attribute__((target("avx2,fma"))) static inline __m256 xn_bias_act8(__m256 v, float bias,
                                                                     int act) {
    v = _mm256_add_ps(v, _mm256_set1_ps(bias));
    if (act == XN_LEAKY) {
        const __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
        v = _mm256_blendv_ps(_mm256_mul_ps(v, _mm256_set1_ps(0.1f)), v, pos);
    } else if (act == XN_RELU) {
        v = _mm256_and_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ), v);
    }
    return v;
}

__attribute__((target("avx2,fma"))) static void xn_direct_row_avx2(const float *xp, int c, int hp,
                                                                   int wp, const float *W, int F,
                                                                   int size, int iy0, int out_w,
                                                                   float *out, size_t plane,
                                                                   const float *bias, int act) {
    const int K = c * size * size;
    const int ract = act == XN_LOGISTIC ? XN_LINEAR : act;
    const int full = out_w & ~15;
    int f0, ox, ch, ky, kx, r;
    for (f0 = 0; f0 < F; f0 += 4) {
        const float *w0 = W + (size_t)f0 * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        const int nf = F - f0 < 4 ? F - f0 : 4;
        for (ox = 0; ox < full; ox += 16) {
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00,
                   a21 = a00, a30 = a00, a31 = a00;
            int t = 0;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, t++) {
                        const __m256 x0 = _mm256_loadu_ps(row + kx);
                        const __m256 x1 = _mm256_loadu_ps(row + kx + 8);
                        __m256 w = _mm256_broadcast_ss(w0 + t);
                        a00 = _mm256_fmadd_ps(w, x0, a00);
                        a01 = _mm256_fmadd_ps(w, x1, a01);
                        w = _mm256_broadcast_ss(w1 + t);
                        a10 = _mm256_fmadd_ps(w, x0, a10);
                        a11 = _mm256_fmadd_ps(w, x1, a11);
                        w = _mm256_broadcast_ss(w2 + t);
                        a20 = _mm256_fmadd_ps(w, x0, a20);
                        a21 = _mm256_fmadd_ps(w, x1, a21);
                        w = _mm256_broadcast_ss(w3 + t);
                        a30 = _mm256_fmadd_ps(w, x0, a30);
                        a31 = _mm256_fmadd_ps(w, x1, a31);
                    }
                }
            {
                __m256 acc[8] = {a00, a01, a10, a11, a20, a21, a30, a31};
                for (r = 0; r < nf; r++) {
                    float *o = out + (size_t)(f0 + r) * plane + ox;
                    _mm256_storeu_ps(o, xn_bias_act8(acc[2 * r], bias[f0 + r], ract));
                    _mm256_storeu_ps(o + 8, xn_bias_act8(acc[2 * r + 1], bias[f0 + r], ract));
                }
            }
        }
    }
    /* ragged right edge: 8-pixel blocks, the last one masked (maskload reads no lane past
     * the mask, so nothing beyond the padded row is touched) */
    for (f0 = 0; f0 < F && full < out_w; f0 += 4) {
        const float *w0 = W + (size_t)f0 * K;
        const int nf = F - f0 < 4 ? F - f0 : 4;
        for (ox = full; ox < out_w; ox += 8) {
            const int n = out_w - ox < 8 ? out_w - ox : 8;
            const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                                                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int t = 0;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, t++) {
                        const __m256 x0 = _mm256_maskload_ps(row + kx, live);
                        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w0 + t), x0, a0);
                        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w0 + K + t), x0, a1);
                        a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(w0 + 2 * (size_t)K + t), x0, a2);
                        a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(w0 + 3 * (size_t)K + t), x0, a3);
                    }
                }
            {
                const __m256 acc[4] = {a0, a1, a2, a3};
                for (r = 0; r < nf; r++)
                    _mm256_maskstore_ps(out + (size_t)(f0 + r) * plane + ox, live,
                                        xn_bias_act8(acc[r], bias[f0 + r], ract));
            }
        }
    }
    if (act == XN_LOGISTIC)
        for (r = 0; r < F; r++) xn_activate_row(out + (size_t)r * plane, out_w, act);
}
#endif

#ifdef XN_X86
/* AVX-512: 8 filters x 32 pixels (16 zmm accumulators) per step, a ragged right edge in masked
 * 16-pixel blocks. W has rows padded to a multiple of 8 filters, interleaved [F/8][K][8]. */
__attribute__((target(XN_AVX512_TARGET))) static inline __m512 xn_bias_act16(__m512 v, float bias,
                                                                            int act) {
    v = _mm512_add_ps(v, _mm512_set1_ps(bias));
    if (act == XN_LEAKY) {
        const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        v = _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, _mm512_set1_ps(0.1f)), v);
    } else if (act == XN_RELU) {
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);
    }
    return v;
}

#define XN_D8(r, w, x, acc) acc = _mm512_fmadd_ps(_mm512_set1_ps((w)[r]), x, acc)

/* W here is interleaved [F/8][K][8] (xn_direct_interleave): the eight weights of one tap are
 * one 32-byte line, read at constant offsets from one pointer. */
__attribute__((target(XN_AVX512_TARGET))) static void xn_direct_row_avx512(
    const float *xp, int c, int hp, int wp, const float *W, int F, int size, int iy0, int out_w,
    float *out, size_t plane, const float *bias, int act) {
    const int K = c * size * size;
    const int full = out_w & ~31;
    const int ract = act == XN_LOGISTIC ? XN_LINEAR : act;
    int f0, ox, ch, ky, kx, r;
    for (f0 = 0; f0 < F; f0 += 8) {
        const float *w0 = W + (size_t)f0 * K;
        const int nf = F - f0 < 8 ? F - f0 : 8;
        for (ox = 0; ox < full; ox += 32) {
            __m512 a0 = _mm512_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0,
                   b3 = a0, a4 = a0, b4 = a0, a5 = a0, b5 = a0, a6 = a0, b6 = a0, a7 = a0, b7 = a0;
            const float *w = w0;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, w += 8) {
                        const __m512 x0 = _mm512_loadu_ps(row + kx);
                        const __m512 x1 = _mm512_loadu_ps(row + kx + 16);
                        XN_D8(0, w, x0, a0);
                        XN_D8(0, w, x1, b0);
                        XN_D8(1, w, x0, a1);
                        XN_D8(1, w, x1, b1);
                        XN_D8(2, w, x0, a2);
                        XN_D8(2, w, x1, b2);
                        XN_D8(3, w, x0, a3);
                        XN_D8(3, w, x1, b3);
                        XN_D8(4, w, x0, a4);
                        XN_D8(4, w, x1, b4);
                        XN_D8(5, w, x0, a5);
                        XN_D8(5, w, x1, b5);
                        XN_D8(6, w, x0, a6);
                        XN_D8(6, w, x1, b6);
                        XN_D8(7, w, x0, a7);
                        XN_D8(7, w, x1, b7);
                    }
                }
            {
                const __m512 acc[16] = {a0, b0, a1, b1, a2, b2, a3, b3,
                                        a4, b4, a5, b5, a6, b6, a7, b7};
                for (r = 0; r < nf; r++) {
                    float *o = out + (size_t)(f0 + r) * plane + ox;
                    _mm512_storeu_ps(o, xn_bias_act16(acc[2 * r], bias[f0 + r], ract));
                    _mm512_storeu_ps(o + 16, xn_bias_act16(acc[2 * r + 1], bias[f0 + r], ract));
                }
            }
        }
    }
    /* ragged right edge: 16-pixel blocks, the last one masked */
    for (f0 = 0; f0 < F && full < out_w; f0 += 8) {
        const float *w0 = W + (size_t)f0 * K;
        const int nf = F - f0 < 8 ? F - f0 : 8;
        for (ox = full; ox < out_w; ox += 16) {
            const int n = out_w - ox < 16 ? out_w - ox : 16;
            const __mmask16 live = (__mmask16)((1u << n) - 1u);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
                   a6 = a0, a7 = a0;
            const float *w = w0;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, w += 8) {
                        const __m512 x0 = _mm512_maskz_loadu_ps(live, row + kx);
                        XN_D8(0, w, x0, a0);
                        XN_D8(1, w, x0, a1);
                        XN_D8(2, w, x0, a2);
                        XN_D8(3, w, x0, a3);
                        XN_D8(4, w, x0, a4);
                        XN_D8(5, w, x0, a5);
                        XN_D8(6, w, x0, a6);
                        XN_D8(7, w, x0, a7);
                    }
                }
            {
                const __m512 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
                for (r = 0; r < nf; r++)
                    _mm512_mask_storeu_ps(out + (size_t)(f0 + r) * plane + ox, live,
                                          xn_bias_act16(acc[r], bias[f0 + r], ract));
            }
        }
    }
    if (act == XN_LOGISTIC)
        for (r = 0; r < F; r++) xn_activate_row(out + (size_t)r * plane, out_w, act);
}
#undef XN_D8
#endif

#ifdef XN_HAVE_NEON
/* bias + linear/leaky/relu on 4 accumulated values, in registers: the xn_bias_act_row
 * operations in its order (an add, then a multiply feeding only a select), so the same floats */
static inline float32x4_t xn_bias_act4_neon(float32x4_t v, float bias, int act) {
    v = vaddq_f32(v, vdupq_n_f32(bias));
    if (act == XN_LEAKY)
        v = vbslq_f32(vcgtq_f32(v, vdupq_n_f32(0.0f)), v, vmulq_f32(v, vdupq_n_f32(0.1f)));
    else if (act == XN_RELU)
        v = vbslq_f32(vcgtq_f32(v, vdupq_n_f32(0.0f)), v, vdupq_n_f32(0.0f));
    return v;
}

/* NEON: 4 filters x 16 pixels (16 q accumulators of the 32 registers) per step, then the
 * right edge 4 pixels at a time, the last ragged block read through a zeroed copy of its taps
 * (no masked loads; reads stay inside the padded row). W has rows padded to a multiple of 4
 * filters. */
static void xn_direct_row_neon(const float *xp, int c, int hp, int wp, const float *W, int F,
                               int size, int iy0, int out_w, float *out, size_t plane,
                               const float *bias, int act) {
    const int K = c * size * size;
    const int ract = act == XN_LOGISTIC ? XN_LINEAR : act;
    const int full = out_w & ~15;
    int f0, ox, ch, ky, kx, r, q;
    for (f0 = 0; f0 < F; f0 += 4) {
        const float *w0 = W + (size_t)f0 * K;
        const int nf = F - f0 < 4 ? F - f0 : 4;
        for (ox = 0; ox < full; ox += 16) {
            /* named accumulators, not an array: GCC keeps an array in memory across the tap
             * loops and stores it back on every tap */
            float32x4_t a00 = vdupq_n_f32(0.0f), a01 = a00, a02 = a00, a03 = a00, a10 = a00,
                        a11 = a00, a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00,
                        a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            int t = 0;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, t++) {
                        const float32x4_t x0 = vld1q_f32(row + kx), x1 = vld1q_f32(row + kx + 4),
                                          x2 = vld1q_f32(row + kx + 8),
                                          x3 = vld1q_f32(row + kx + 12);
                        float32x4_t w = vdupq_n_f32(w0[t]);
                        a00 = vfmaq_f32(a00, w, x0);
                        a01 = vfmaq_f32(a01, w, x1);
                        a02 = vfmaq_f32(a02, w, x2);
                        a03 = vfmaq_f32(a03, w, x3);
                        w = vdupq_n_f32(w0[(size_t)K + t]);
                        a10 = vfmaq_f32(a10, w, x0);
                        a11 = vfmaq_f32(a11, w, x1);
                        a12 = vfmaq_f32(a12, w, x2);
                        a13 = vfmaq_f32(a13, w, x3);
                        w = vdupq_n_f32(w0[2 * (size_t)K + t]);
                        a20 = vfmaq_f32(a20, w, x0);
                        a21 = vfmaq_f32(a21, w, x1);
                        a22 = vfmaq_f32(a22, w, x2);
                        a23 = vfmaq_f32(a23, w, x3);
                        w = vdupq_n_f32(w0[3 * (size_t)K + t]);
                        a30 = vfmaq_f32(a30, w, x0);
                        a31 = vfmaq_f32(a31, w, x1);
                        a32 = vfmaq_f32(a32, w, x2);
                        a33 = vfmaq_f32(a33, w, x3);
                    }
                }
            {
                const float32x4_t acc[16] = {a00, a01, a02, a03, a10, a11, a12, a13,
                                             a20, a21, a22, a23, a30, a31, a32, a33};
                for (r = 0; r < nf; r++) {
                    float *o = out + (size_t)(f0 + r) * plane + ox;
                    for (q = 0; q < 4; q++)
                        vst1q_f32(o + 4 * q,
                                  xn_bias_act4_neon(acc[4 * r + q], bias[f0 + r], ract));
                }
            }
        }
        for (ox = full; ox < out_w; ox += 4) {
            const int n = out_w - ox < 4 ? out_w - ox : 4;
            float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
            float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f}, res[4];
            int t = 0;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, t++) {
                        float32x4_t x0;
                        if (n == 4) {
                            x0 = vld1q_f32(row + kx);
                        } else {
                            memcpy(tail, row + kx, sizeof(float) * (size_t)n);
                            x0 = vld1q_f32(tail);
                        }
                        a0 = vfmaq_f32(a0, vdupq_n_f32(w0[t]), x0);
                        a1 = vfmaq_f32(a1, vdupq_n_f32(w0[(size_t)K + t]), x0);
                        a2 = vfmaq_f32(a2, vdupq_n_f32(w0[2 * (size_t)K + t]), x0);
                        a3 = vfmaq_f32(a3, vdupq_n_f32(w0[3 * (size_t)K + t]), x0);
                    }
                }
            {
                const float32x4_t acc[4] = {a0, a1, a2, a3};
                for (r = 0; r < nf; r++) {
                    float *o = out + (size_t)(f0 + r) * plane + ox;
                    if (n == 4) {
                        vst1q_f32(o, xn_bias_act4_neon(acc[r], bias[f0 + r], ract));
                    } else {
                        vst1q_f32(res, xn_bias_act4_neon(acc[r], bias[f0 + r], ract));
                        memcpy(o, res, sizeof(float) * (size_t)n);
                    }
                }
            }
        }
    }
    if (act == XN_LOGISTIC)
        for (r = 0; r < F; r++) xn_activate_row(out + (size_t)r * plane, out_w, act);
}
#endif

/* One output row of every filter, bias and activation applied. */
static void xn_direct_row(int isa, const float *xp, int c, int hp, int wp, const float *W, int F,
                          int size, int iy0, int out_w, float *out, size_t plane,
                          const float *bias, int act) {
    int f;
#ifdef XN_X86
    if (isa == XN_AVX512) {
        xn_direct_row_avx512(xp, c, hp, wp, W, F, size, iy0, out_w, out, plane, bias, act);
        return;
    }
    if (isa == XN_AVX2) {
        xn_direct_row_avx2(xp, c, hp, wp, W, F, size, iy0, out_w, out, plane, bias, act);
        return;
    }
#endif
#ifdef XN_HAVE_NEON
    if (isa == XN_NEON) {
        xn_direct_row_neon(xp, c, hp, wp, W, F, size, iy0, out_w, out, plane, bias, act);
        return;
    }
#endif
    (void)isa;
    xn_direct_row_portable(xp, c, hp, wp, W, F, size, iy0, out_w, out, plane);
    for (f = 0; f < F; f++) xn_bias_act_row(out + (size_t)f * plane, out_w, bias[f], act);
}

#endif /* XNORYOLO_XN_DIRECT_H */
