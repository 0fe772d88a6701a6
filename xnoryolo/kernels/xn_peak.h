/* Popcount peak: xor + popcount + add over an L1-resident buffer, each load used twice (the
 * ratio the GEMM micro-kernels reach), independent accumulators. Returns a checksum. */
#ifndef XNORYOLO_XN_PEAK_H
#define XNORYOLO_XN_PEAK_H

#include "xn_common.h"

#ifdef XN_X86
/* The four 64-bit lanes of v, summed. */
__attribute__((target("avx2,popcnt"))) static inline uint64_t xn_hsum_avx2(__m256i v) {
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_extract_epi64(s, 1);
}
#endif /* XN_X86 */

static uint64_t xn_peak_portable(const uint64_t *buf, int nwords, long reps) {
    uint64_t s0 = 0, s1 = 0, k0 = 0x9e3779b97f4a7c15ULL, k1 = 0xc2b2ae3d27d4eb4fULL;
    long r;
    int k;
    for (r = 0; r < reps; r++) {
        XN_BARRIER(buf);
        for (k = 0; k < nwords; k++) {
            s0 += (uint64_t)xn_popcount64_portable(buf[k] ^ k0);
            s1 += (uint64_t)xn_popcount64_portable(buf[k] ^ k1);
        }
    }
    return s0 + s1;
}

#ifdef XN_X86
__attribute__((target("popcnt"))) static uint64_t xn_peak_popcnt(const uint64_t *buf, int nwords,
                                                                 long reps) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, k0 = 0x9e3779b97f4a7c15ULL,
             k1 = 0xc2b2ae3d27d4eb4fULL;
    long r;
    int k;
    for (r = 0; r < reps; r++) {
        XN_BARRIER(buf);
        for (k = 0; k + 2 <= nwords; k += 2) {
            s0 += (uint64_t)__builtin_popcountll(buf[k] ^ k0);
            s1 += (uint64_t)__builtin_popcountll(buf[k] ^ k1);
            s2 += (uint64_t)__builtin_popcountll(buf[k + 1] ^ k0);
            s3 += (uint64_t)__builtin_popcountll(buf[k + 1] ^ k1);
        }
    }
    return s0 + s1 + s2 + s3;
}

__attribute__((target("avx2,popcnt"))) static uint64_t xn_peak_avx2(const uint64_t *buf,
                                                                    int nwords, long reps) {
    /* the kernels' formulation: nibble-split operands (buf's halves: lo, hi), so a 256-bit
     * step is 2 xor + 2 vpshufb + 2 add */
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i k0l = _mm256_set1_epi64x(0x0e07090b0f0a0c05LL);
    const __m256i k0h = _mm256_set1_epi64x(0x01030709070f040cLL);
    const __m256i k1l = _mm256_set1_epi64x(0x020b0e030d040e0fLL);
    const __m256i k1h = _mm256_set1_epi64x(0x040b020a030e0d04LL);
    const uint64_t *hi = buf + nwords / 2;
    __m256i t0 = zero, t1 = zero;
    long r;
    int k;
    for (r = 0; r < reps; r++) {
        XN_BARRIER(buf);
        __m256i c0 = zero, c1 = zero;
        /* nwords / 2 <= 31*4 keeps the byte counters from overflowing */
        for (k = 0; k + 4 <= nwords / 2; k += 4) {
            const __m256i xl = _mm256_loadu_si256((const __m256i *)(buf + k));
            const __m256i xh = _mm256_loadu_si256((const __m256i *)(hi + k));
            c0 = _mm256_add_epi8(
                c0, _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(xl, k0l)),
                                    _mm256_shuffle_epi8(lut, _mm256_xor_si256(xh, k0h))));
            c1 = _mm256_add_epi8(
                c1, _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(xl, k1l)),
                                    _mm256_shuffle_epi8(lut, _mm256_xor_si256(xh, k1h))));
        }
        t0 = _mm256_add_epi64(t0, _mm256_sad_epu8(c0, zero));
        t1 = _mm256_add_epi64(t1, _mm256_sad_epu8(c1, zero));
    }
    return xn_hsum_avx2(t0) + xn_hsum_avx2(t1);
}

__attribute__((target(XN_AVX512_TARGET))) static uint64_t xn_peak_avx512(const uint64_t *buf,
                                                                         int nwords, long reps) {
    const __m512i k0 = _mm512_set1_epi64(0x1e3779b97f4a7c15LL);
    const __m512i k1 = _mm512_set1_epi64(0x42b2ae3d27d4eb4fLL);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0,
            s7 = s0;
    long r;
    int k;
    for (r = 0; r < reps; r++) {
        XN_BARRIER(buf);
        for (k = 0; k + 32 <= nwords; k += 32) {
            const __m512i x = _mm512_loadu_si512((const void *)(buf + k));
            const __m512i y = _mm512_loadu_si512((const void *)(buf + k + 8));
            const __m512i z = _mm512_loadu_si512((const void *)(buf + k + 16));
            const __m512i u = _mm512_loadu_si512((const void *)(buf + k + 24));
            s0 = _mm512_add_epi64(s0, _mm512_popcnt_epi64(_mm512_xor_si512(x, k0)));
            s1 = _mm512_add_epi64(s1, _mm512_popcnt_epi64(_mm512_xor_si512(x, k1)));
            s2 = _mm512_add_epi64(s2, _mm512_popcnt_epi64(_mm512_xor_si512(y, k0)));
            s3 = _mm512_add_epi64(s3, _mm512_popcnt_epi64(_mm512_xor_si512(y, k1)));
            s4 = _mm512_add_epi64(s4, _mm512_popcnt_epi64(_mm512_xor_si512(z, k0)));
            s5 = _mm512_add_epi64(s5, _mm512_popcnt_epi64(_mm512_xor_si512(z, k1)));
            s6 = _mm512_add_epi64(s6, _mm512_popcnt_epi64(_mm512_xor_si512(u, k0)));
            s7 = _mm512_add_epi64(s7, _mm512_popcnt_epi64(_mm512_xor_si512(u, k1)));
        }
    }
    s0 = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
    s4 = _mm512_add_epi64(_mm512_add_epi64(s4, s5), _mm512_add_epi64(s6, s7));
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(s0, s4));
}
#endif

#ifdef XN_HAVE_NEON
static uint64_t xn_peak_neon(const uint64_t *buf, int nwords, long reps) {
    uint8x16_t k0 = vreinterpretq_u8_u64(vdupq_n_u64(0x9e3779b97f4a7c15ULL));
    uint8x16_t k1 = vreinterpretq_u8_u64(vdupq_n_u64(0xc2b2ae3d27d4eb4fULL));
    uint64x2_t t = vdupq_n_u64(0);
    long r;
    int k;
    for (r = 0; r < reps; r++) {
        XN_BARRIER(buf);
        uint16x8_t c0 = vdupq_n_u16(0), c1 = vdupq_n_u16(0);
        for (k = 0; k + 2 <= nwords; k += 2) {
            uint8x16_t x = vreinterpretq_u8_u64(vld1q_u64(buf + k));
            c0 = vpadalq_u8(c0, vcntq_u8(veorq_u8(x, k0)));
            c1 = vpadalq_u8(c1, vcntq_u8(veorq_u8(x, k1)));
        }
        t = vaddq_u64(t, vpaddlq_u32(vpaddlq_u16(vaddq_u16(c0, c1))));
    }
    return vgetq_lane_u64(t, 0) + vgetq_lane_u64(t, 1);
}
#endif

/* Bits processed per rep is 2 * 64 * nwords (rounded down to the variant's step). */
static uint64_t xn_popcount_peak(int isa, const uint64_t *buf, int nwords, long reps) {
    switch (isa) {
#ifdef XN_X86
    case XN_POPCNT:
        return xn_peak_popcnt(buf, nwords, reps);
    case XN_AVX2:
        return xn_peak_avx2(buf, nwords, reps);
    case XN_AVX512:
        return xn_peak_avx512(buf, nwords, reps);
#endif
#ifdef XN_HAVE_NEON
    case XN_NEON:
        return xn_peak_neon(buf, nwords, reps);
#endif
    default:
        return xn_peak_portable(buf, nwords, reps);
    }
}

#endif /* XNORYOLO_XN_PEAK_H */
