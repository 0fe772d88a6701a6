/* The int8 kernel's NEON tiles (with and without sdot) on emulated intrinsics against the
 * portable tile: random weights and panels (im2col panels and the direct layout's scattered
 * tap groups), odd filter and panel counts; prints the number of mismatching sums
 * (tests/kernels/test_int8_kernels.py). Built with the x86 macros off. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#undef __x86_64__
#undef __i386__
#define XN_EMULATE_NEON 1
#include "xn_int8.h"

int main(void) {
    long bad = 0;
    srand(7);
    for (int trial = 0; trial < 40; trial++) {
        int kp = 4 * (1 + rand() % 40), nf = 1 + rand() % 9, np_ = 1 + rand() % 4;
        /* odd trials: the direct layout, tap groups at scattered offsets of one row buffer
         * (pstride 64); even ones: im2col panels (goff[g] = 64 g, pstride 16 kp) */
        int direct = trial % 2;
        int64_t pstride = direct ? 64 : (int64_t)kp * XQ_PW;
        int64_t bytes = direct ? 64 * (np_ + 4 * (kp / 4)) : pstride * np_;
        int64_t *goff = malloc(sizeof(int64_t) * (size_t)(kp / 4));
        for (int g = 0; g < kp / 4; g++) goff[g] = direct ? 4 * (rand() % (16 * (kp / 4))) : 64 * g;
        int8_t *w = malloc((size_t)kp * 16);
        uint8_t *pan = malloc((size_t)bytes);
        int32_t *ref = malloc(sizeof(int32_t) * 16 * XQ_PW * np_);
        int32_t *got = malloc(sizeof(int32_t) * 16 * XQ_PW * np_);
        for (int i = 0; i < kp * 16; i++) w[i] = (int8_t)(rand() % 255 - 127);
        for (int64_t i = 0; i < bytes; i++) pan[i] = (uint8_t)(trial % 3 ? rand() : 255);
        xq_tile(XQ_PORTABLE, w, kp, 1, nf, pan, pstride, goff, np_, ref);
        for (int path = XQ_NEON; path <= XQ_NEONDOT; path++) {
            if (!xq_path_supported(path)) continue; /* a real arm64 CPU without sdot */
            xq_tile(path, w, kp, 1, nf, pan, pstride, goff, np_, got);
            for (int i = 0; i < nf * XQ_PW * np_; i++) bad += got[i] != ref[i];
        }
        free(goff);
        free(w);
        free(pan);
        free(ref);
        free(got);
    }
    printf("%ld mismatches\n", bad);
    return bad != 0;
}
