/* Runs the NEON micro-kernels of kernels/xn_bgemm.h (on emulated intrinsics) against the
 * portable ones: same counts for every tile, including word counts past the 16-bit flush, and
 * the same sign-bit words when a tile's output goes to bits. */
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
    printf("%d mismatches\n", bad);
    return bad != 0;
}
