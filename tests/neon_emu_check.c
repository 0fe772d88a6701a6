/* Runs the NEON micro-kernels of kernels/xconv_simd.h (on emulated intrinsics) against the
 * portable ones: same counts for every tile, including word counts past the 16-bit flush. */
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
    printf("%d mismatches\n", bad);
    return bad != 0;
}
