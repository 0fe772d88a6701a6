/* Float GEMM on packed panels: C (F x N) = A (F x K) * B (K x N). A packed once per layer as
 * [F/6][K][6] (zero rows past F). K is cut in blocks of XN_KC; per block B's rows are packed
 * as [N/16][XN_KC][16] (zero columns past N), 16 rows at a time straight from im2col
 * (xn_pack_b_rows), so the block's panels are still in L2 for its tiles. The filters are cut
 * in blocks of XN_MC 12-filter blocks: the K block of one pair of B panels (32 columns) stays
 * in L1 while the filter blocks of an A block pass over it, the A block stays in L2 while every
 * pair passes; tiles accumulate into C after the first K block. Tiles: AVX-512 12 filters x 32
 * pixels (24 zmm accumulators; 12 x 16 for an odd last panel), AVX2 6 x 16 (12 ymm),
 * portable C. */
#ifndef XNORYOLO_XN_SGEMM_H
#define XNORYOLO_XN_SGEMM_H

#include "xn_common.h"

#define XN_GF 6
#define XN_GN 16
/* K block: a pair of B panels over it is 32 KiB, within an L1 beside A's and C's lines */
#define XN_KC 256
/* 12-filter blocks per block of A that stays in L2 while the B pairs pass (120 filters x
 * XN_KC = 120 KiB: beside B's block and C's tiles even on 1 MiB L2s) */
#define XN_MC 10

/* Rows k0 .. k0+nrows-1 of B (N floats each, ldr apart) into the panels
 * [ceil(N/16)][kstride][16] (zeros past N): panel by panel, so each panel gets nrows
 * consecutive 64-byte lines (one page, not one page per line as a row at a time would).
 * im2col rows go into the panels this way without a K x N copy in between. */
#define XN_PACK_ROWS 16
static void xn_pack_b_rows(const float *rows, int nrows, int ldr, int N, int k0, int kstride,
                           float *panels) {
    int n0, i, j;
    for (n0 = 0; n0 < N; n0 += XN_GN) {
        float *dst = panels + ((size_t)(n0 / XN_GN) * kstride + k0) * XN_GN;
        if (N - n0 >= XN_GN) {
            for (i = 0; i < nrows; i++)
                memcpy(dst + (size_t)i * XN_GN, rows + (size_t)i * ldr + n0, XN_GN * sizeof(float));
        } else {
            const int nv = N - n0;
            for (i = 0; i < nrows; i++) {
                float *d = dst + (size_t)i * XN_GN;
                for (j = 0; j < nv; j++) d[j] = rows[(size_t)i * ldr + n0 + j];
                for (; j < XN_GN; j++) d[j] = 0.0f;
            }
        }
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

#ifdef XN_X86
/* AVX-512: 12 filters (two packed A blocks) x 32 pixels (two B panels) in 24 zmm accumulators:
 * per k two B loads and twelve broadcasts feed 24 FMAs, half the B traffic per FMA of the
 * 6 x 32 tile. Rows past nf0 / nf1 and columns past nv0 / nv1 are computed on padding and not
 * stored; nf1 == 0 means there is no second filter block, nv1 == 0 no second panel. */
#define XN_Q_STEP(r, a, c0, c1)                                                                    \
    do {                                                                                           \
        const __m512 w_ = _mm512_set1_ps((a)[r]);                                                  \
        c0 = _mm512_fmadd_ps(w_, x0, c0);                                                          \
        c1 = _mm512_fmadd_ps(w_, x1, c1);                                                          \
    } while (0)

__attribute__((target(XN_AVX512_TARGET))) static void xn_sgemm_quad_avx512(
    const float *Ap0, const float *Ap1, const float *Bp0, const float *Bp1, int K, int nf0,
    int nf1, int nv0, int nv1, float *C, int ldc, int accumulate) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m512 d00 = c00, d01 = c00, d10 = c00, d11 = c00, d20 = c00, d21 = c00, d30 = c00,
           d31 = c00, d40 = c00, d41 = c00, d50 = c00, d51 = c00;
    const __mmask16 m0 = (__mmask16)((1u << nv0) - 1u), m1 = (__mmask16)((1u << nv1) - 1u);
    const float *b1 = nv1 ? Bp1 : Bp0;
    const float *a1p = nf1 ? Ap1 : Ap0;
    int k, r;
    for (k = 0; k < K; k++) {
        const __m512 x0 = _mm512_loadu_ps(Bp0 + (size_t)k * XN_GN);
        const __m512 x1 = _mm512_loadu_ps(b1 + (size_t)k * XN_GN);
        const float *a = Ap0 + (size_t)k * XN_GF;
        const float *e = a1p + (size_t)k * XN_GF;
        XN_Q_STEP(0, a, c00, c01);
        XN_Q_STEP(1, a, c10, c11);
        XN_Q_STEP(2, a, c20, c21);
        XN_Q_STEP(3, a, c30, c31);
        XN_Q_STEP(4, a, c40, c41);
        XN_Q_STEP(5, a, c50, c51);
        XN_Q_STEP(0, e, d00, d01);
        XN_Q_STEP(1, e, d10, d11);
        XN_Q_STEP(2, e, d20, d21);
        XN_Q_STEP(3, e, d30, d31);
        XN_Q_STEP(4, e, d40, d41);
        XN_Q_STEP(5, e, d50, d51);
    }
    {
        const __m512 acc[24] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51,
                                d00, d01, d10, d11, d20, d21, d30, d31, d40, d41, d50, d51};
        /* nf1 > 0 only after a full first block: rows 0..nf0+nf1 are C's consecutive rows */
        for (r = 0; r < nf0 + nf1; r++) {
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
#undef XN_Q_STEP
#endif

#ifdef XN_X86
/* AVX-512: 12 filters x 16 pixels (one B panel, 12 zmm accumulators): the last pair of a row
 * of panels when the panel count is odd (13x13 outputs: 11 panels), which the 12 x 32 tile
 * would compute twice over. Same arguments as xn_sgemm_quad_avx512 less the second panel. */
#define XN_Q1_STEP(r, a, c0)                                                                       \
    c0 = _mm512_fmadd_ps(_mm512_set1_ps((a)[r]), x0, c0)

__attribute__((target(XN_AVX512_TARGET))) static void xn_sgemm_quad1_avx512(
    const float *Ap0, const float *Ap1, const float *Bp0, int K, int nf0, int nf1, int nv0,
    float *C, int ldc, int accumulate) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m512 d0 = c0, d1 = c0, d2 = c0, d3 = c0, d4 = c0, d5 = c0;
    const __mmask16 m0 = (__mmask16)((1u << nv0) - 1u);
    const float *a1p = nf1 ? Ap1 : Ap0;
    int k, r;
    for (k = 0; k < K; k++) {
        const __m512 x0 = _mm512_loadu_ps(Bp0 + (size_t)k * XN_GN);
        const float *a = Ap0 + (size_t)k * XN_GF;
        const float *e = a1p + (size_t)k * XN_GF;
        XN_Q1_STEP(0, a, c0);
        XN_Q1_STEP(1, a, c1);
        XN_Q1_STEP(2, a, c2);
        XN_Q1_STEP(3, a, c3);
        XN_Q1_STEP(4, a, c4);
        XN_Q1_STEP(5, a, c5);
        XN_Q1_STEP(0, e, d0);
        XN_Q1_STEP(1, e, d1);
        XN_Q1_STEP(2, e, d2);
        XN_Q1_STEP(3, e, d3);
        XN_Q1_STEP(4, e, d4);
        XN_Q1_STEP(5, e, d5);
    }
    {
        const __m512 acc[12] = {c0, c1, c2, c3, c4, c5, d0, d1, d2, d3, d4, d5};
        for (r = 0; r < nf0 + nf1; r++) {
            float *o = C + (size_t)r * ldc;
            __m512 v0 = acc[r];
            if (accumulate) v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), v0);
            _mm512_mask_storeu_ps(o, m0, v0);
        }
    }
}
#undef XN_Q1_STEP
#endif

/* Tile (12-filter block, B panels 2q and 2q+1) of C over kc steps of k: Ap is the first
 * filter block's packed panel, already advanced to the first k of the block, and the second
 * block follows astride floats later; nf (1..12) filters of the block are stored. Same
 * arguments otherwise as xn_sgemm_pair, whose 6-filter tiles it runs where there is no
 * 12-filter kernel. */
static void xn_sgemm_block(int isa, const float *Ap, size_t astride, const float *Bp, int q,
                           int nnb, int kstride, int kc, int nf, int n, float *C, int ldc,
                           int accumulate) {
    const int nf0 = nf < XN_GF ? nf : XN_GF, nf1 = nf - nf0;
#ifdef XN_X86
    if (isa == XN_AVX512 && nf1 > 0) {
        const int nb0 = 2 * q, nb1 = 2 * q + 1;
        const int nv0 = n - nb0 * XN_GN < XN_GN ? n - nb0 * XN_GN : XN_GN;
        const int nv1 = nb1 >= nnb ? 0 : n - nb1 * XN_GN < XN_GN ? n - nb1 * XN_GN : XN_GN;
        if (nv1 == 0)
            xn_sgemm_quad1_avx512(Ap, Ap + astride, Bp + (size_t)nb0 * kstride * XN_GN, kc, nf0,
                                  nf1, nv0, C + (size_t)nb0 * XN_GN, ldc, accumulate);
        else
            xn_sgemm_quad_avx512(Ap, Ap + astride, Bp + (size_t)nb0 * kstride * XN_GN,
                                 Bp + (size_t)nb1 * kstride * XN_GN, kc, nf0, nf1, nv0, nv1,
                                 C + (size_t)nb0 * XN_GN, ldc, accumulate);
        return;
    }
#endif
    xn_sgemm_pair(isa, Ap, Bp, q, nnb, kstride, kc, nf0, n, C, ldc, accumulate);
    if (nf1 > 0)
        xn_sgemm_pair(isa, Ap + astride, Bp, q, nnb, kstride, kc, nf1, n, C + (size_t)XN_GF * ldc,
                      ldc, accumulate);
}

#endif /* XNORYOLO_XN_SGEMM_H */
