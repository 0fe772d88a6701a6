/* SIMD variants of the xnoryolo convolution kernels, one per instruction set, chosen at run time.
 *
 * Built without -march flags: every x86 variant carries its own target attribute, so the module
 * loads on any x86-64 CPU and only calls what __builtin_cpu_supports reports. The bit layout is
 * described in kernels/README.md; every variant computes identical integers.
 *
 * The output transform (int -> float, x scale, + bias, activation) lives in one portable function
 * compiled without FMA contraction, so results do not depend on the variant either.
 */
#ifndef XNORYOLO_XCONV_SIMD_H
#define XNORYOLO_XCONV_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define XN_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#define XN_HAVE_NEON 1
#include <arm_neon.h>
#elif defined(XN_EMULATE_NEON)
/* tests only: plain-C stand-ins for the NEON intrinsics used here (tests/neon_emu.h), so the
 * NEON code path is checked on machines without an arm64 CPU */
#define XN_HAVE_NEON 1
#include "neon_emu.h"
#endif

enum { XN_PORTABLE = 0, XN_POPCNT = 1, XN_AVX2 = 2, XN_AVX512 = 3, XN_NEON = 4, XN_NISA = 5 };
enum { XN_LINEAR = 0, XN_LEAKY = 1, XN_RELU = 2, XN_LOGISTIC = 3 };

/* Tile of the binary GEMM handled by one call (one OpenMP work item). Multiples of 4. */
#define XN_TF 16
#define XN_TP 64
/* AVX2 window words per byte-counter block: a byte gains <= 8 per word, so 31 stay < 256. */
#define XN_AVX2_BLOCK 31

#if defined(__GNUC__) && !defined(__clang__)
#define XN_NOCONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define XN_NOCONTRACT
#endif

/* Keeps the compiler from hoisting the popcount-peak work out of its repetition loop. */
#define XN_BARRIER(p) __asm__ volatile("" : : "r"(p) : "memory")

static int xn_isa_supported(int isa) {
    switch (isa) {
    case XN_PORTABLE:
        return 1;
#ifdef XN_X86
    case XN_POPCNT:
        __builtin_cpu_init();
        return __builtin_cpu_supports("popcnt") != 0;
    case XN_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") &&
               __builtin_cpu_supports("fma");
    case XN_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
#ifdef XN_HAVE_NEON
    case XN_NEON:
        return 1;
#endif
    default:
        return 0;
    }
}

static int xn_best_isa(void) {
    if (xn_isa_supported(XN_AVX512)) return XN_AVX512;
    if (xn_isa_supported(XN_AVX2)) return XN_AVX2;
    if (xn_isa_supported(XN_NEON)) return XN_NEON;
    if (xn_isa_supported(XN_POPCNT)) return XN_POPCNT;
    return XN_PORTABLE;
}

/* ------------------------------------------------------------------------------------------ */
/* Output transform, shared by every variant: y = float(dot) * scale[f] + bias[f], then act.   */

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

/* ------------------------------------------------------------------------------------------ */
/* Binary micro-kernels: cnt[i][j] = popcount(A[f0+i] XOR window of pixel p0+j) over kw words.
 * A: rows of kw words (f-major). B: pixel panels of XN_PW pixels, word k of pixel p at
 * B[((p / XN_PW) * kw + k) * XN_PW + p % XN_PW], so one vector load holds word k of 8 pixels
 * and no horizontal sums are needed. nf is a multiple of 4, np of XN_PW.                   */

#define XN_PW 8

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

static inline int xn_popcount64_portable(uint64_t v) {
    /* SWAR popcount: no dependence on compiler builtins or CPU instructions. */
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((v * 0x0101010101010101ULL) >> 56);
}

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

/* The AVX2 path keeps weights and pixel panels nibble-split (kernels/README.md, "SIMD
 * paths"): each operand word w is stored as w & 0x0f.. (lo) and (w >> 4) & 0x0f.. (hi), the
 * hi arrays right after the lo ones. The nibbles of w XOR x are then lo(w) XOR lo(x) and
 * hi(w) XOR hi(x), straight table indices: per 256 bits, 2 xor + 2 vpshufb + 2 add instead
 * of 8 ops. Plain C, outside `#ifdef XN_X86`: xconv.pyx calls it on every platform
 * (only the avx2 path's buffers need it). */
#define XN_NIBBLES 0x0f0f0f0f0f0f0f0fULL

static void xn_split_nibbles(uint64_t *lo, uint64_t *hi, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        const uint64_t v = lo[i];
        lo[i] = v & XN_NIBBLES;
        hi[i] = (v >> 4) & XN_NIBBLES;
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
__attribute__((target("avx2,popcnt"))) static inline uint64_t xn_hsum_avx2(__m256i v) {
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_extract_epi64(s, 1);
}

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

#define XN_AVX512_TARGET "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt"

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

/* ------------------------------------------------------------------------------------------ */
/* Packing and bit-im2col (layout in kernels/README.md).                                      */

/* One input row: x points at channel 0 of the row, plane = H*W floats between channels.
 * dst points at the row's first real pixel in the packed image (pixel stride cw words).
 * Branch-free so the compiler vectorises the inner loop over pixels. */
#ifdef XN_X86
/* AVX-512: one compare gives 16 pixels' sign bits as a mask; two masked ORs set the channel's
 * bit in 16 pixel words held in two registers. The last, partial group of pixels uses masked
 * loads and stores (13-pixel rows are common). */
__attribute__((target(XN_AVX512_TARGET))) static void xn_pack_row_avx512(const float *x,
                                                                         size_t plane, int c,
                                                                         int w, uint64_t *dst,
                                                                         int cw) {
    const __m512 zero = _mm512_setzero_ps();
    uint64_t tmp[16];
    int i, wd, ch, j;
    for (i = 0; i < w; i += 16) {
        const int n = w - i < 16 ? w - i : 16;
        const __mmask16 live = (__mmask16)((1u << n) - 1u);
        for (wd = 0; wd < cw; wd++) {
            const int c1 = c < (wd + 1) * 64 ? c : (wd + 1) * 64;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0;
            for (ch = wd * 64; ch < c1; ch++) {
                const __m512 v = _mm512_maskz_loadu_ps(live, x + (size_t)ch * plane + i);
                const __mmask16 m = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
                const __m512i bit = _mm512_set1_epi64((long long)((uint64_t)1 << (ch & 63)));
                a0 = _mm512_mask_or_epi64(a0, (__mmask8)m, a0, bit);
                a1 = _mm512_mask_or_epi64(a1, (__mmask8)(m >> 8), a1, bit);
            }
            if (cw == 1) {
                _mm512_mask_storeu_epi64((void *)(dst + i), (__mmask8)live, a0);
                _mm512_mask_storeu_epi64((void *)(dst + i + 8), (__mmask8)(live >> 8), a1);
            } else {
                _mm512_storeu_si512((void *)tmp, a0);
                _mm512_storeu_si512((void *)(tmp + 8), a1);
                for (j = 0; j < n; j++) dst[(size_t)(i + j) * cw + wd] = tmp[j];
            }
        }
    }
}
#endif

static void xn_pack_row(int isa, const float *x, size_t plane, int c, int w, uint64_t *dst,
                        int cw) {
    int wd, ch, i = 0;
#ifdef XN_X86
    if (isa == XN_AVX512) {
        xn_pack_row_avx512(x, plane, c, w, dst, cw);
        return;
    }
    /* 8 pixels at a time, their words kept in registers across the channels of one word:
     * compare -> 32-bit masks -> widened to 64-bit lanes -> AND the channel's bit -> OR. */
    for (; i + 8 <= w; i += 8) {
        for (wd = 0; wd < cw; wd++) {
            const int c1 = c < (wd + 1) * 64 ? c : (wd + 1) * 64;
            const __m128 zero = _mm_setzero_ps();
            __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
            uint64_t *o = dst + (size_t)i * cw + wd;
            for (ch = wd * 64; ch < c1; ch++) {
                const float *s = x + (size_t)ch * plane + i;
                const __m128i bit = _mm_set1_epi64x((long long)((uint64_t)1 << (ch & 63)));
                const __m128i m0 = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(s), zero));
                const __m128i m1 = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(s + 4), zero));
                a0 = _mm_or_si128(a0, _mm_and_si128(_mm_unpacklo_epi32(m0, m0), bit));
                a1 = _mm_or_si128(a1, _mm_and_si128(_mm_unpackhi_epi32(m0, m0), bit));
                a2 = _mm_or_si128(a2, _mm_and_si128(_mm_unpacklo_epi32(m1, m1), bit));
                a3 = _mm_or_si128(a3, _mm_and_si128(_mm_unpackhi_epi32(m1, m1), bit));
            }
            _mm_storel_epi64((__m128i *)(o), a0);
            _mm_storel_epi64((__m128i *)(o + cw), _mm_unpackhi_epi64(a0, a0));
            _mm_storel_epi64((__m128i *)(o + 2 * (size_t)cw), a1);
            _mm_storel_epi64((__m128i *)(o + 3 * (size_t)cw), _mm_unpackhi_epi64(a1, a1));
            _mm_storel_epi64((__m128i *)(o + 4 * (size_t)cw), a2);
            _mm_storel_epi64((__m128i *)(o + 5 * (size_t)cw), _mm_unpackhi_epi64(a2, a2));
            _mm_storel_epi64((__m128i *)(o + 6 * (size_t)cw), a3);
            _mm_storel_epi64((__m128i *)(o + 7 * (size_t)cw), _mm_unpackhi_epi64(a3, a3));
        }
    }
#endif
    for (; i < w; i++) {
        for (wd = 0; wd < cw; wd++) {
            const int c1 = c < (wd + 1) * 64 ? c : (wd + 1) * 64;
            uint64_t v = 0;
            for (ch = wd * 64; ch < c1; ch++)
                v |= (uint64_t)(x[(size_t)ch * plane + i] > 0.0f) << (ch & 63);
            dst[(size_t)i * cw + wd] = v;
        }
    }
}

/* OR nbits of src (cw words, unused tail bits zero) into a window row at bit offset; the row's
 * words are `stride` apart (XN_PW in the pixel panels, 1 in a contiguous buffer). */
static inline void xn_append_bits(uint64_t *row, int offset, const uint64_t *src, int cw,
                                  int nbits, int stride) {
    const int sh = offset & 63;
    int i;
    row += (size_t)(offset >> 6) * stride;
    if (sh == 0) {
        for (i = 0; i < cw; i++) row[(size_t)i * stride] |= src[i];
        return;
    }
    for (i = 0; i < cw; i++) {
        row[(size_t)i * stride] |= src[i] << sh;
        if (nbits - 64 * i > 64 - sh) row[(size_t)(i + 1) * stride] |= src[i] >> (64 - sh);
    }
}

/* Windows up to this many words are assembled on the stack (3x3 windows up to C = 455). */
#define XN_ROWBUF 64

/* Windows of output row oy (pixels p0 = oy*out_w ...): pixel p gets the size x size taps of
 * packed rows iy0 .. iy0+size-1 from column ox*stride_x, tap-major (ky, kx, c), written into
 * its panel lane. cols is zeroed. */
#define XN_MAXTAPS 64

/* One pixel's window when C divides 64: word j ORs taps j*per .. j*per+per-1, shifted. */
static inline void xn_im2col_pixel_c64(const uint64_t *base, int c, int per, int kw,
                                       const int *offs, int ntaps, uint64_t *row) {
    int j, q, t = 0;
    for (j = 0; j < kw; j++) {
        uint64_t v = 0;
        for (q = 0; q < per && t < ntaps; q++, t++) v |= base[offs[t]] << (q * c);
        row[(size_t)j * XN_PW] = v;
    }
}

#ifdef XN_X86
/* The same for whole panels of 8 consecutive pixels (stride 1): tap t of the panel's pixels is
 * one (AVX-512) or two (AVX2) vector loads, window word j of the 8 pixels one panel row.
 * base: the panel's first pixel; panel: its row 0 in cols. */
__attribute__((target(XN_AVX512_TARGET))) static void xn_im2col_panels_avx512(
    const uint64_t *base, int c, int npanels, uint64_t *panel, int kw, const int *offs,
    int ntaps) {
    const int per = 64 / c;
    int n, j, q, t;
    for (n = 0; n < npanels; n++, base += XN_PW, panel += (size_t)kw * XN_PW) {
        for (j = 0, t = 0; j < kw; j++) {
            __m512i v = _mm512_setzero_si512();
            for (q = 0; q < per && t < ntaps; q++, t++)
                v = _mm512_or_si512(v, _mm512_sllv_epi64(_mm512_loadu_si512(
                                                             (const void *)(base + offs[t])),
                                                         _mm512_set1_epi64(q * c)));
            _mm512_storeu_si512((void *)(panel + (size_t)j * XN_PW), v);
        }
    }
}

__attribute__((target("avx2"))) static void xn_im2col_panels_avx2(const uint64_t *base, int c,
                                                                   int npanels, uint64_t *panel,
                                                                   int kw, const int *offs,
                                                                   int ntaps) {
    const int per = 64 / c;
    int n, j, q, t;
    for (n = 0; n < npanels; n++, base += XN_PW, panel += (size_t)kw * XN_PW) {
        for (j = 0, t = 0; j < kw; j++) {
            __m256i v0 = _mm256_setzero_si256(), v1 = v0;
            for (q = 0; q < per && t < ntaps; q++, t++) {
                const __m128i sh = _mm_cvtsi32_si128(q * c);
                const uint64_t *src = base + offs[t];
                v0 = _mm256_or_si256(v0, _mm256_sll_epi64(
                                             _mm256_loadu_si256((const __m256i *)src), sh));
                v1 = _mm256_or_si256(v1, _mm256_sll_epi64(
                                             _mm256_loadu_si256((const __m256i *)(src + 4)), sh));
            }
            _mm256_storeu_si256((__m256i *)(panel + (size_t)j * XN_PW), v0);
            _mm256_storeu_si256((__m256i *)(panel + (size_t)j * XN_PW + 4), v1);
        }
    }
}
#endif

static void xn_im2col_row(int isa, const uint64_t *packed, int wp, int cw, int c, int size,
                          int iy0, int stride_x, int out_w, int p0, uint64_t *cols, int kw) {
    uint64_t buf[XN_ROWBUF + 1];
    int ox, ky, kx, j;
    const int ntaps = size * size;
    if (cw == 1 && 64 % c == 0 && ntaps <= XN_MAXTAPS) {
        /* C divides 64 (1, 2, 4, 8, 16, 32, 64): taps never straddle a word, so each window
         * word is 64/C whole taps OR-ed in registers; tap t sits at word offs[t] from the
         * window's first pixel. */
        int offs[XN_MAXTAPS];
        const int per = 64 / c;
        for (j = 0; j < ntaps; j++) offs[j] = (j / size) * wp + j % size;
        /* pixel by pixel up to a panel boundary, whole panels with SIMD, then the tail */
#ifdef XN_X86
        int head = out_w, npanels = 0;
        if ((isa == XN_AVX512 || isa == XN_AVX2) && stride_x == 1) {
            head = (XN_PW - p0 % XN_PW) % XN_PW;
            head = head < out_w ? head : out_w;
            npanels = (out_w - head) / XN_PW;
        }
#endif
        for (ox = 0; ox < out_w; ox++) {
            const int p = p0 + ox;
#ifdef XN_X86
            if (ox == head && npanels > 0) {
                const uint64_t *base = packed + (size_t)iy0 * wp + ox;
                uint64_t *panel = cols + (size_t)(p / XN_PW) * kw * XN_PW;
                if (isa == XN_AVX512)
                    xn_im2col_panels_avx512(base, c, npanels, panel, kw, offs, ntaps);
                else
                    xn_im2col_panels_avx2(base, c, npanels, panel, kw, offs, ntaps);
                ox += npanels * XN_PW - 1;
                continue;
            }
#endif
            xn_im2col_pixel_c64(packed + (size_t)iy0 * wp + (size_t)ox * stride_x, c, per, kw,
                                offs, ntaps,
                                cols + ((size_t)(p / XN_PW) * kw) * XN_PW + p % XN_PW);
        }
        return;
    }
    memset(buf, 0, sizeof(buf));
    for (ox = 0; ox < out_w; ox++) {
        const int p = p0 + ox;
        uint64_t *row = cols + ((size_t)(p / XN_PW) * kw) * XN_PW + p % XN_PW;
        for (ky = 0; ky < size; ky++) {
            const uint64_t *src = packed + ((size_t)(iy0 + ky) * wp + (size_t)ox * stride_x) * cw;
            if ((c & 63) == 0) {
                /* a window row's taps are consecutive pixels: contiguous words */
                uint64_t *dst = row + (size_t)ky * size * cw * XN_PW;
                for (j = 0; j < size * cw; j++) dst[(size_t)j * XN_PW] = src[j];
            } else if (cw == 1 && kw <= XN_ROWBUF) {
                /* C < 64: each tap is one word, appended at a running bit offset */
                int off = ky * size * c;
                for (kx = 0; kx < size; kx++, off += c) {
                    const uint64_t v = src[kx];
                    const int sh = off & 63;
                    buf[off >> 6] |= v << sh;
                    if (sh + c > 64) buf[(off >> 6) + 1] |= v >> (64 - sh);
                }
            } else if (kw <= XN_ROWBUF) {
                for (kx = 0; kx < size; kx++)
                    xn_append_bits(buf, (ky * size + kx) * c, src + (size_t)kx * cw, cw, c, 1);
            } else {
                for (kx = 0; kx < size; kx++)
                    xn_append_bits(row, (ky * size + kx) * c, src + (size_t)kx * cw, cw, c,
                                   XN_PW);
            }
        }
        if ((c & 63) != 0 && kw <= XN_ROWBUF) {
            /* the window was assembled in a contiguous buffer: one store per word */
            for (j = 0; j < kw; j++) {
                row[(size_t)j * XN_PW] = buf[j];
                buf[j] = 0;
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Direct float convolution for thin inputs (the first layer: C*size*size small), stride_x 1.
 * xp: zero-padded input (c, hp, wp); W: (F rounded up to 4, K) with zero rows; writes output
 * row oy (input rows iy0 ..) of every filter: out + f*plane. 4 filters x 16 pixels per step. */

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
 * 16-pixel blocks. W has rows padded to a multiple of 8 filters. */
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
            __m512 acc[16];
            int t = 0;
            for (r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, t++) {
                        const __m512 x0 = _mm512_loadu_ps(row + kx);
                        const __m512 x1 = _mm512_loadu_ps(row + kx + 16);
                        for (r = 0; r < 8; r++) {
                            const __m512 w = _mm512_set1_ps(w0[(size_t)r * K + t]);
                            acc[2 * r] = _mm512_fmadd_ps(w, x0, acc[2 * r]);
                            acc[2 * r + 1] = _mm512_fmadd_ps(w, x1, acc[2 * r + 1]);
                        }
                    }
                }
            for (r = 0; r < nf; r++) {
                float *o = out + (size_t)(f0 + r) * plane + ox;
                _mm512_storeu_ps(o, xn_bias_act16(acc[2 * r], bias[f0 + r], ract));
                _mm512_storeu_ps(o + 16, xn_bias_act16(acc[2 * r + 1], bias[f0 + r], ract));
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
            __m512 acc[8];
            int t = 0;
            for (r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
            for (ch = 0; ch < c; ch++)
                for (ky = 0; ky < size; ky++) {
                    const float *row = xp + ((size_t)ch * hp + iy0 + ky) * wp + ox;
                    for (kx = 0; kx < size; kx++, t++) {
                        const __m512 x0 = _mm512_maskz_loadu_ps(live, row + kx);
                        for (r = 0; r < 8; r++)
                            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w0[(size_t)r * K + t]), x0,
                                                     acc[r]);
                    }
                }
            for (r = 0; r < nf; r++)
                _mm512_mask_storeu_ps(out + (size_t)(f0 + r) * plane + ox, live,
                                      xn_bias_act16(acc[r], bias[f0 + r], ract));
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
    (void)isa;
    xn_direct_row_portable(xp, c, hp, wp, W, F, size, iy0, out_w, out, plane);
    for (f = 0; f < F; f++) xn_bias_act_row(out + (size_t)f * plane, out_w, bias[f], act);
}

/* ------------------------------------------------------------------------------------------ */
/* Float GEMM on packed panels: C (F x N) = A (F x K) * B (K x N). A packed once per layer as
 * [F/6][K][6] (zero rows past F), B per call as [N/16][K][16] (zero columns past N). One call
 * computes one 6 x 16 tile over the whole K with 12 ymm accumulators. */

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

/* ------------------------------------------------------------------------------------------ */
/* Maxpool of one channel plane, darknet's semantics: window origin (-off, -off), taps outside
 * the image ignored, -FLT_MAX where a window has none. */

/* Output rows oy0 .. oy1-1 of one channel (out points at row oy0). */
static void xn_maxpool_rows(const float *x, int h, int w, int size, int sy, int sx, int off,
                            int oy0, int oy1, int ow, float *out) {
    int oy, ox, ky, kx;
    const int oh = oy1;
    if (size == 2 && sy == 2 && sx == 2 && off == 0 && 2 * oh <= h && 2 * ow <= w) {
        /* tiny-YOLO's 2x2/2: every window lies inside the image */
        for (oy = oy0; oy < oh; oy++) {
            const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
            float *o = out + (size_t)(oy - oy0) * ow;
            ox = 0;
#ifdef XN_X86
            /* 4 outputs from 8 inputs per row: even and odd lanes split with shuffles */
            for (; ox + 4 <= ow; ox += 4) {
                const __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), a1 = _mm_loadu_ps(r0 + 2 * ox + 4);
                const __m128 b0 = _mm_loadu_ps(r1 + 2 * ox), b1 = _mm_loadu_ps(r1 + 2 * ox + 4);
                const __m128 ma = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)),
                                             _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)));
                const __m128 mb = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)),
                                             _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)));
                _mm_storeu_ps(o + ox, _mm_max_ps(ma, mb));
            }
#endif
            for (; ox < ow; ox++) {
                float a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
                float b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
                o[ox] = a > b ? a : b;
            }
        }
        return;
    }
    if (size == 2 && sy == 1 && sx == 1 && off == 0 && oh <= h && ow <= w) {
        /* 2x2/1 (tiny-YOLO's last pool): windows reach one past the last row/column, where
         * the missing taps are ignored */
        for (oy = oy0; oy < oh; oy++) {
            const float *r0 = x + (size_t)oy * w;
            const float *r1 = oy + 1 < h ? r0 + w : r0;
            float *o = out + (size_t)(oy - oy0) * ow;
            const int inner = ow < w ? ow : w - 1;
            for (ox = 0; ox < inner; ox++) {
                float a = r0[ox] > r0[ox + 1] ? r0[ox] : r0[ox + 1];
                float b = r1[ox] > r1[ox + 1] ? r1[ox] : r1[ox + 1];
                o[ox] = a > b ? a : b;
            }
            for (; ox < ow; ox++) o[ox] = r0[ox] > r1[ox] ? r0[ox] : r1[ox];
        }
        return;
    }
    for (oy = oy0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            float m = -3.402823466e+38f;
            for (ky = 0; ky < size; ky++) {
                int iy = oy * sy - off + ky;
                if (iy < 0 || iy >= h) continue;
                for (kx = 0; kx < size; kx++) {
                    int ix = ox * sx - off + kx;
                    if (ix >= 0 && ix < w && x[(size_t)iy * w + ix] > m) m = x[(size_t)iy * w + ix];
                }
            }
            out[(size_t)(oy - oy0) * ow + ox] = m;
        }
    }
}

static void xn_maxpool_plane(const float *x, int h, int w, int size, int sy, int sx, int off,
                             int oh, int ow, float *out) {
    xn_maxpool_rows(x, h, w, size, sy, sx, off, 0, oh, ow, out);
}

/* Maxpool on sign bits (max of signs = OR of bits, taps outside the image ignored), output
 * row oy of every channel word: in holds the h x w image at (ipad, ipad) in rows of iwp
 * pixels of cw words; out points at the row's first pixel, pixels cw words apart. */
static void xn_maxpool_bits_row(const uint64_t *in, int iwp, int ipad, int cw, int h, int w,
                                int size, int sy, int sx, int off, int oy, int ow,
                                uint64_t *out) {
    int ox, ky, kx, k;
    const int iy0 = oy * sy - off;
    const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = h - iy0 < size ? h - iy0 : size;
    const uint64_t *base = in + ((size_t)(iy0 + ipad) * iwp + ipad) * cw;
    if (cw == 1 && size == 2 && sx == 2 && off == 0 && 2 * ow <= w && ky0 == 0) {
        /* tiny-YOLO's 2x2/2, one word per pixel: 4 loads, 3 ORs */
        const uint64_t *r0 = base, *r1 = ky1 > 1 ? base + iwp : base;
        for (ox = 0; ox < ow; ox++)
            out[ox] = r0[2 * ox] | r0[2 * ox + 1] | r1[2 * ox] | r1[2 * ox + 1];
        return;
    }
    for (ox = 0; ox < ow; ox++) {
        const int ix0 = ox * sx - off;
        const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = w - ix0 < size ? w - ix0 : size;
        for (k = 0; k < cw; k++) {
            uint64_t v = 0;
            for (ky = ky0; ky < ky1; ky++)
                for (kx = kx0; kx < kx1; kx++)
                    v |= base[((size_t)ky * iwp + ix0 + kx) * cw + k];
            out[(size_t)ox * cw + k] = v;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Popcount peak: xor + popcount + add over an L1-resident buffer, each load used twice (the
 * ratio the GEMM micro-kernels reach), independent accumulators. Returns a checksum. */

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

#endif /* XNORYOLO_XCONV_SIMD_H */
