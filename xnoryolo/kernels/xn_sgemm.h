/* Float GEMM on packed panels: C (F x N) = A (F x K) * B (K x N). A packed once per layer as
 * [F/6][K][6] (zero rows past F), B per call as [N/16][K][16] (zero columns past N). One call
 * computes one 6 x 16 tile over the whole K with 12 ymm accumulators. */
#ifndef XNORYOLO_XN_SGEMM_H
#define XNORYOLO_XN_SGEMM_H

#include "xn_common.h"

#define XN_GF 6
#define XN_GN 16
/* Float GEMM K: up to XN_KWHOLE a 32-column B pair (<= 320 KiB) stays in L2 for a whole-K
 * tile; longer K is cut in blocks of XN_KC (a 32 KiB B block, an L1's worth) */
#define XN_KWHOLE 2560
#define XN_KC 256

static void xn_pack_b_panel(const float *B, int K, int N, int n0, float *panel) {
    int k, j;
    const int nv = N - n0 < XN_GN ? N - n0 : XN_GN;
    for (k = 0; k < K; k++) {
        const float *src = B + (size_t)k * N + n0;
        float *dst = panel + (size_t)k * XN_GN;
        for (j = 0; j < nv; j++) dst[j] = src[j];
        for (; j < XN_GN; j++) dst[j] = 0.0f;
    }
}

#ifdef XN_X86
#define XN_FMA_ROW(r, acc0, acc1)                                                                  \
    do {                                                                                           \
        const __m256 w_ = _mm256_broadcast_ss(a + (r));                                            \
        acc0 = _mm256_fmadd_ps(w_, b0, acc0);                                                      \
        acc1 = _mm256_fmadd_ps(w_, b1, acc1);                                                      \
    } while (0)

__attribute__((target("avx2,fma"))) static void xn_sgemm_tile_avx2(const float *Ap,
                                                                   const float *Bp, int K,
                                                                   int nf, int nv, float *C,
                                                                   int ldc, int accumulate) {
    /* named accumulators: an array indexed in the epilogue would be kept on the stack */
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    int k, r;
    for (k = 0; k < K; k++) {
        const __m256 b0 = _mm256_loadu_ps(Bp + (size_t)k * XN_GN);
        const __m256 b1 = _mm256_loadu_ps(Bp + (size_t)k * XN_GN + 8);
        const float *a = Ap + (size_t)k * XN_GF;
        XN_FMA_ROW(0, c00, c01);
        XN_FMA_ROW(1, c10, c11);
        XN_FMA_ROW(2, c20, c21);
        XN_FMA_ROW(3, c30, c31);
        XN_FMA_ROW(4, c40, c41);
        XN_FMA_ROW(5, c50, c51);
    }
    {
        float tmp[XN_GF * XN_GN];
        _mm256_storeu_ps(tmp, c00);
        _mm256_storeu_ps(tmp + 8, c01);
        _mm256_storeu_ps(tmp + 16, c10);
        _mm256_storeu_ps(tmp + 24, c11);
        _mm256_storeu_ps(tmp + 32, c20);
        _mm256_storeu_ps(tmp + 40, c21);
        _mm256_storeu_ps(tmp + 48, c30);
        _mm256_storeu_ps(tmp + 56, c31);
        _mm256_storeu_ps(tmp + 64, c40);
        _mm256_storeu_ps(tmp + 72, c41);
        _mm256_storeu_ps(tmp + 80, c50);
        _mm256_storeu_ps(tmp + 88, c51);
        for (r = 0; r < nf; r++) {
            int j;
            float *o = C + (size_t)r * ldc;
            if (accumulate)
                for (j = 0; j < nv; j++) o[j] += tmp[r * XN_GN + j];
            else
                memcpy(o, tmp + r * XN_GN, (size_t)nv * 4);
        }
    }
}
#undef XN_FMA_ROW
#endif

#ifdef XN_X86
/* AVX-512: 6 filters x 32 pixels (two B panels) in 12 zmm accumulators, enough independent
 * FMAs to cover their latency. Columns past nv0 / nv1 are computed on zero padding and not
 * stored; nv1 == 0 means there is no second panel. */
__attribute__((target(XN_AVX512_TARGET))) static void xn_sgemm_pair_avx512(
    const float *Ap, const float *Bp0, const float *Bp1, int K, int nf, int nv0, int nv1,
    float *C, int ldc, int accumulate) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const __mmask16 m0 = (__mmask16)((1u << nv0) - 1u), m1 = (__mmask16)((1u << nv1) - 1u);
    const float *b1 = nv1 ? Bp1 : Bp0;
    int k, r;
    for (k = 0; k < K; k++) {
        const __m512 x0 = _mm512_loadu_ps(Bp0 + (size_t)k * XN_GN);
        const __m512 x1 = _mm512_loadu_ps(b1 + (size_t)k * XN_GN);
        const float *a = Ap + (size_t)k * XN_GF;
        __m512 w = _mm512_set1_ps(a[0]);
        c00 = _mm512_fmadd_ps(w, x0, c00);
        c01 = _mm512_fmadd_ps(w, x1, c01);
        w = _mm512_set1_ps(a[1]);
        c10 = _mm512_fmadd_ps(w, x0, c10);
        c11 = _mm512_fmadd_ps(w, x1, c11);
        w = _mm512_set1_ps(a[2]);
        c20 = _mm512_fmadd_ps(w, x0, c20);
        c21 = _mm512_fmadd_ps(w, x1, c21);
        w = _mm512_set1_ps(a[3]);
        c30 = _mm512_fmadd_ps(w, x0, c30);
        c31 = _mm512_fmadd_ps(w, x1, c31);
        w = _mm512_set1_ps(a[4]);
        c40 = _mm512_fmadd_ps(w, x0, c40);
        c41 = _mm512_fmadd_ps(w, x1, c41);
        w = _mm512_set1_ps(a[5]);
        c50 = _mm512_fmadd_ps(w, x0, c50);
        c51 = _mm512_fmadd_ps(w, x1, c51);
    }
    {
        const __m512 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
        for (r = 0; r < nf; r++) {
            float *o = C + (size_t)r * ldc;
            __m512 v0 = acc[2 * r], v1 = acc[2 * r + 1];
            if (accumulate) {
                v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), v0);
                v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + XN_GN), v1);
            }
            _mm512_mask_storeu_ps(o, m0, v0);
            if (nv1) _mm512_mask_storeu_ps(o + XN_GN, m1, v1);
        }
    }
}
#endif

static void xn_sgemm_tile_portable(const float *Ap, const float *Bp, int K, int nf, int nv,
                                   float *C, int ldc, int accumulate) {
    float c[XN_GF * XN_GN];
    int k, r, j;
    for (r = 0; r < XN_GF * XN_GN; r++) c[r] = 0.0f;
    for (k = 0; k < K; k++)
        for (r = 0; r < XN_GF; r++)
            for (j = 0; j < XN_GN; j++)
                c[r * XN_GN + j] += Ap[(size_t)k * XN_GF + r] * Bp[(size_t)k * XN_GN + j];
    for (r = 0; r < nf; r++)
        for (j = 0; j < nv; j++)
            C[(size_t)r * ldc + j] = accumulate ? C[(size_t)r * ldc + j] + c[r * XN_GN + j]
                                                : c[r * XN_GN + j];
}

/* Tile (fb, nb) of C; Ap/Bp point at the packed panels of that filter/pixel block. */
static void xn_sgemm_tile(int isa, const float *Ap, const float *Bp, int K, int nf, int nv,
                          float *C, int ldc, int accumulate) {
#ifdef XN_X86
    if (isa == XN_AVX2 || isa == XN_AVX512) {
        xn_sgemm_tile_avx2(Ap, Bp, K, nf, nv, C, ldc, accumulate);
        return;
    }
#endif
    (void)isa;
    xn_sgemm_tile_portable(Ap, Bp, K, nf, nv, C, ldc, accumulate);
}

/* Tile (filter block, B panels 2q and 2q+1) of C over kc steps of k: Ap is the filter block's
 * packed panel and Bp panel 0, both already advanced to the first k of the block; B panels are
 * kstride steps long; n is the number of columns of C. With accumulate, C += the product
 * (the K loop is blocked so a block of B stays in cache while every filter block uses it). */
static void xn_sgemm_pair(int isa, const float *Ap, const float *Bp, int q, int nnb, int kstride,
                          int kc, int nf, int n, float *C, int ldc, int accumulate) {
    const int nb0 = 2 * q, nb1 = 2 * q + 1;
    const int nv0 = n - nb0 * XN_GN < XN_GN ? n - nb0 * XN_GN : XN_GN;
    const int nv1 = nb1 >= nnb ? 0 : n - nb1 * XN_GN < XN_GN ? n - nb1 * XN_GN : XN_GN;
    const float *b0 = Bp + (size_t)nb0 * kstride * XN_GN;
    const float *b1 = Bp + (size_t)nb1 * kstride * XN_GN;
    float *c0 = C + (size_t)nb0 * XN_GN;
#ifdef XN_X86
    if (isa == XN_AVX512) {
        xn_sgemm_pair_avx512(Ap, b0, b1, kc, nf, nv0, nv1, c0, ldc, accumulate);
        return;
    }
#endif
    xn_sgemm_tile(isa, Ap, b0, kc, nf, nv0, c0, ldc, accumulate);
    if (nv1) xn_sgemm_tile(isa, Ap, b1, kc, nf, nv1, c0 + XN_GN, ldc, accumulate);
}

#endif /* XNORYOLO_XN_SGEMM_H */
