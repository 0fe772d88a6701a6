/* Runs the NEON micro-kernels of kernels/xn_bgemm.h (on emulated intrinsics) against the
 * portable ones: same counts for every tile, including word counts past the 16-bit flush, and
 * the same sign-bit words when a tile's output goes to bits; the NEON direct float convolution
 * against the same sums in the same order (one fused multiply-add per tap), bit for bit,
 * ragged right edges included and nothing written past a row. */
#include <stdio.h>
#include <stdlib.h>

#include "xconv_simd.h"

static uint64_t state = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static float unit(void) { return (float)((int64_t)(next() % 2001) - 1000) / 1000.0f; }

/* xn_direct_row's contract computed plainly: per output, the taps in (ch, ky, kx) order, each
 * one fused multiply-add (FMLA), then xn_bias_act_row */
static void direct_reference(const float *xp, int c, int hp, int wp, const float *W, int F,
                             int size, int iy0, int out_w, float *out, size_t plane,
                             const float *bias, int act) {
    const int K = c * size * size;
    int f, ox, ch, ky, kx;
    for (f = 0; f < F; f++) {
        for (ox = 0; ox < out_w; ox++) {
            float acc = 0.0f;
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++)
                    for (kx = 0; kx < size; kx++)
                        acc = fmaf(W[(size_t)f * K + (ch * size + ky) * size + kx],
                                   xp[((size_t)ch * hp + iy0 + ky) * wp + ox + kx], acc);
            out[(size_t)f * plane + ox] = acc;
        }
        xn_bias_act_row(out + (size_t)f * plane, out_w, bias[f], act);
    }
}

static int check_direct(void) {
    static const int widths[] = {1, 3, 4, 5, 15, 16, 17, 20, 33, 38};
    static const int channels[] = {1, 3, 4};
    static const int filters[] = {1, 5, 8};
    int bad = 0, wi, ci, fi, act, size;
    for (size = 2; size <= 3; size++)
        for (wi = 0; wi < (int)(sizeof(widths) / sizeof(widths[0])); wi++)
            for (ci = 0; ci < 3; ci++)
                for (fi = 0; fi < 3; fi++)
                    for (act = XN_LINEAR; act <= XN_LOGISTIC; act++) {
                        const int out_w = widths[wi], c = channels[ci], F = filters[fi];
                        const int wp = out_w - 1 + size, hp = size + 1, K = c * size * size;
                        const int fpad = (F + 3) / 4 * 4;
                        const size_t plane = (size_t)out_w + 3; /* 3 sentinels per row */
                        float *xp = malloc(sizeof(float) * (size_t)c * hp * wp);
                        float *W = calloc((size_t)fpad * K, sizeof(float));
                        float *bias = malloc(sizeof(float) * (size_t)F);
                        float *o1 = malloc(sizeof(float) * plane * F);
                        float *o2 = malloc(sizeof(float) * plane * F);
                        size_t n;
                        for (n = 0; n < (size_t)c * hp * wp; n++) xp[n] = unit();
                        for (n = 0; n < (size_t)F * K; n++) W[n] = unit();
                        for (n = 0; n < (size_t)F; n++) bias[n] = n ? unit() : 0.0f;
                        for (n = 0; n < plane * F; n++) o1[n] = o2[n] = -7.0f;
                        xn_direct_row(XN_NEON, xp, c, hp, wp, W, F, size, 1, out_w, o1, plane,
                                      bias, act);
                        direct_reference(xp, c, hp, wp, W, F, size, 1, out_w, o2, plane, bias,
                                         act);
                        if (memcmp(o1, o2, sizeof(float) * plane * F) != 0) bad++;
                        free(xp);
                        free(W);
                        free(bias);
                        free(o1);
                        free(o2);
                    }
    return bad;
}

int main(void) {
    static const int kws[] = {1, 2, 3, 9, 18, 72, 2049, 2100};
    int32_t a[XN_TF * XN_TP], b[XN_TF * XN_TP];
    size_t n;
    int t, i, bad = 0;
    if (!xn_isa_supported(XN_NEON) || xn_best_isa() == XN_PORTABLE) {
        printf("neon path not compiled\n");
        return 2;
    }
    for (t = 0; t < (int)(sizeof(kws) / sizeof(kws[0])); t++) {
        const int kw = kws[t], nf = 8, np = 16;
        uint64_t *A = malloc(sizeof(uint64_t) * (size_t)kw * nf);
        uint64_t *B = malloc(sizeof(uint64_t) * (size_t)kw * np);
        for (n = 0; n < (size_t)kw * nf; n++) A[n] = next();
        for (n = 0; n < (size_t)kw * np; n++) B[n] = t % 2 ? ~A[n % ((size_t)kw * nf)] : next();
        xn_tile_neon(A, B, kw, nf, np, a);
        xn_tile_portable(A, B, kw, nf, np, b);
        for (i = 0; i < nf; i++)
            for (n = 0; n < (size_t)np; n++)
                if (a[i * XN_TP + n] != b[i * XN_TP + n]) bad++;
        if (xn_popcount_peak(XN_NEON, A, 64 < kw ? 64 : kw & ~1, 3) !=
            xn_popcount_peak(XN_PORTABLE, A, 64 < kw ? 64 : kw & ~1, 3))
            bad++;
        free(A);
        free(B);
    }
    {
        /* a 64-filter tile with sign-bit output (61 real filters, 60 real pixels) */
        enum { KW = 9, NF = 64, NP = 64, F = 61, N = 60 };
        static uint64_t A[KW * NF], B[KW * NP], w1[N], w2[N];
        static int32_t limit[NF];
        xn_bits_out o1 = {w1, limit, N, N, 0, 1}, o2 = {w2, limit, N, N, 0, 1};
        for (n = 0; n < KW * NF; n++) A[n] = next();
        for (n = 0; n < KW * NP; n++) B[n] = next();
        for (i = 0; i < NF; i++) limit[i] = (int32_t)(next() % (64 * KW + 1));
        xn_binary_tile(XN_NEON, A, B, KW, 64 * KW, 0, NF, 0, NP, F, N, NULL, NULL, 0, NULL, NULL,
                       &o1);
        xn_binary_tile(XN_PORTABLE, A, B, KW, 64 * KW, 0, NF, 0, NP, F, N, NULL, NULL, 0, NULL,
                       NULL, &o2);
        for (n = 0; n < N; n++)
            if (w1[n] != w2[n] || (w1[n] >> F) != 0) bad++;
    }
    bad += check_direct();
    printf("%d mismatches\n", bad);
    return bad != 0;
}
