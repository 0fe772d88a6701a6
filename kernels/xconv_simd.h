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
#include <arm_neon.h>
#endif

enum { XN_PORTABLE = 0, XN_POPCNT = 1, XN_AVX2 = 2, XN_AVX512 = 3, XN_NEON = 4, XN_NISA = 5 };
enum { XN_LINEAR = 0, XN_LEAKY = 1, XN_RELU = 2, XN_LOGISTIC = 3 };

/* Tile of the binary GEMM handled by one call (one OpenMP work item). Multiples of 4. */
#define XN_TF 16
#define XN_TP 32

#if defined(__GNUC__) && !defined(__clang__)
#define XN_NOCONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define XN_NOCONTRACT
#endif

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
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    case XN_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx2");
#endif
#ifdef __aarch64__
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

static XN_NOCONTRACT void xn_store_row(const int32_t *dot, int n, float scale, float bias, int act,
                                       float *out) {
    int i;
    for (i = 0; i < n; i++) {
        float y = (float)dot[i] * scale;
        out[i] = y + bias;
    }
    xn_activate_row(out, n, act);
}

static XN_NOCONTRACT void xn_bias_act_row(float *row, int n, float bias, int act) {
    int i;
    for (i = 0; i < n; i++) row[i] = row[i] + bias;
    xn_activate_row(row, n, act);
}

/* ------------------------------------------------------------------------------------------ */
/* Binary micro-kernels: cnt[i][j] = popcount(A[f0+i] XOR B[p0+j]) over kw words, for a tile of
 * nf x np (both multiples of 4; A and B have rows of kw words, zero-padded to the multiple).   */

static inline int xn_popcount64_portable(uint64_t v) {
    /* SWAR popcount: no dependence on compiler builtins or CPU instructions. */
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((v * 0x0101010101010101ULL) >> 56);
}

static void xn_tile_portable(const uint64_t *A, const uint64_t *B, int kw, int nf, int np,
                             int32_t *cnt) {
    int i, j, k;
    for (i = 0; i < nf; i += 4) {
        const uint64_t *a0 = A + (size_t)i * kw;
        for (j = 0; j < np; j += 2) {
            const uint64_t *b0 = B + (size_t)j * kw, *b1 = b0 + kw;
            int32_t c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (k = 0; k < kw; k++) {
                uint64_t x0 = b0[k], x1 = b1[k];
                int r;
                for (r = 0; r < 4; r++) {
                    uint64_t w = a0[(size_t)r * kw + k];
                    c[2 * r] += xn_popcount64_portable(w ^ x0);
                    c[2 * r + 1] += xn_popcount64_portable(w ^ x1);
                }
            }
            for (k = 0; k < 4; k++) {
                cnt[(i + k) * XN_TP + j] = c[2 * k];
                cnt[(i + k) * XN_TP + j + 1] = c[2 * k + 1];
            }
        }
    }
}

#ifdef XN_X86
__attribute__((target("popcnt"))) static void xn_tile_popcnt(const uint64_t *A, const uint64_t *B,
                                                             int kw, int nf, int np,
                                                             int32_t *cnt) {
    int i, j, k;
    for (i = 0; i < nf; i += 4) {
        const uint64_t *a0 = A + (size_t)i * kw, *a1 = a0 + kw, *a2 = a1 + kw, *a3 = a2 + kw;
        for (j = 0; j < np; j += 2) {
            const uint64_t *b0 = B + (size_t)j * kw, *b1 = b0 + kw;
            uint64_t c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
            for (k = 0; k < kw; k++) {
                uint64_t x0 = b0[k], x1 = b1[k];
                c00 += (uint64_t)__builtin_popcountll(a0[k] ^ x0);
                c01 += (uint64_t)__builtin_popcountll(a0[k] ^ x1);
                c10 += (uint64_t)__builtin_popcountll(a1[k] ^ x0);
                c11 += (uint64_t)__builtin_popcountll(a1[k] ^ x1);
                c20 += (uint64_t)__builtin_popcountll(a2[k] ^ x0);
                c21 += (uint64_t)__builtin_popcountll(a2[k] ^ x1);
                c30 += (uint64_t)__builtin_popcountll(a3[k] ^ x0);
                c31 += (uint64_t)__builtin_popcountll(a3[k] ^ x1);
            }
            cnt[i * XN_TP + j] = (int32_t)c00;
            cnt[i * XN_TP + j + 1] = (int32_t)c01;
            cnt[(i + 1) * XN_TP + j] = (int32_t)c10;
            cnt[(i + 1) * XN_TP + j + 1] = (int32_t)c11;
            cnt[(i + 2) * XN_TP + j] = (int32_t)c20;
            cnt[(i + 2) * XN_TP + j + 1] = (int32_t)c21;
            cnt[(i + 3) * XN_TP + j] = (int32_t)c30;
            cnt[(i + 3) * XN_TP + j + 1] = (int32_t)c31;
        }
    }
}

/* AVX2 has no vector popcount: nibble lookup with vpshufb, byte sums folded with vpsadbw. */
__attribute__((target("avx2,popcnt"))) static inline __m256i xn_pc8_avx2(__m256i v, __m256i lut,
                                                                        __m256i low) {
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

__attribute__((target("avx2,popcnt"))) static inline uint64_t xn_hsum_avx2(__m256i v) {
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_extract_epi64(s, 1);
}

__attribute__((target("avx2,popcnt"))) static void xn_tile_avx2(const uint64_t *A,
                                                                const uint64_t *B, int kw, int nf,
                                                                int np, int32_t *cnt) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
    const int kv = kw & ~3;
    int i, j, k, r, s;
    for (i = 0; i < nf; i += 4) {
        const long long *a[4];
        for (r = 0; r < 4; r++) a[r] = (const long long *)(A + (size_t)(i + r) * kw);
        for (j = 0; j < np; j += 2) {
            const long long *b0 = (const long long *)(B + (size_t)j * kw);
            const long long *b1 = b0 + kw;
            __m256i t[8];
            for (r = 0; r < 8; r++) t[r] = zero;
            k = 0;
            while (k < kv) {
                /* byte counters hold at most 8 per step: flush to 64-bit lanes every 31 steps */
                int stop = k + 31 * 4 < kv ? k + 31 * 4 : kv;
                __m256i c[8];
                for (r = 0; r < 8; r++) c[r] = zero;
                for (; k < stop; k += 4) {
                    __m256i x0 = _mm256_loadu_si256((const __m256i *)(b0 + k));
                    __m256i x1 = _mm256_loadu_si256((const __m256i *)(b1 + k));
                    for (r = 0; r < 4; r++) {
                        __m256i w = _mm256_loadu_si256((const __m256i *)(a[r] + k));
                        c[2 * r] = _mm256_add_epi8(
                            c[2 * r], xn_pc8_avx2(_mm256_xor_si256(w, x0), lut, low));
                        c[2 * r + 1] = _mm256_add_epi8(
                            c[2 * r + 1], xn_pc8_avx2(_mm256_xor_si256(w, x1), lut, low));
                    }
                }
                for (r = 0; r < 8; r++) t[r] = _mm256_add_epi64(t[r], _mm256_sad_epu8(c[r], zero));
            }
            for (r = 0; r < 4; r++) {
                uint64_t s0 = xn_hsum_avx2(t[2 * r]), s1 = xn_hsum_avx2(t[2 * r + 1]);
                for (s = kv; s < kw; s++) {
                    s0 += (uint64_t)__builtin_popcountll((uint64_t)(a[r][s] ^ b0[s]));
                    s1 += (uint64_t)__builtin_popcountll((uint64_t)(a[r][s] ^ b1[s]));
                }
                cnt[(i + r) * XN_TP + j] = (int32_t)s0;
                cnt[(i + r) * XN_TP + j + 1] = (int32_t)s1;
            }
        }
    }
}

#define XN_AVX512_TARGET "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt"

__attribute__((target(XN_AVX512_TARGET))) static void xn_tile_avx512(const uint64_t *A,
                                                                     const uint64_t *B, int kw,
                                                                     int nf, int np,
                                                                     int32_t *cnt) {
    /* 4 filters x 4 pixels: 16 accumulators, 8 loads per 16 xor/popcount/add. The last, partial
     * group of 8 words uses masked loads (masked-off lanes read as 0 in both operands). */
    const __mmask8 tail = (__mmask8)((1u << (kw & 7)) - 1u);
    const int kv = kw & ~7;
    int i, j, k, r, q;
    for (i = 0; i < nf; i += 4) {
        const uint64_t *a = A + (size_t)i * kw;
        for (j = 0; j < np; j += 4) {
            const uint64_t *b = B + (size_t)j * kw;
            __m512i acc[16];
            __m512i w[4], x[4];
            for (r = 0; r < 16; r++) acc[r] = _mm512_setzero_si512();
            for (k = 0; k < kv; k += 8) {
                for (r = 0; r < 4; r++) w[r] = _mm512_loadu_si512((const void *)(a + (size_t)r * kw + k));
                for (q = 0; q < 4; q++) x[q] = _mm512_loadu_si512((const void *)(b + (size_t)q * kw + k));
                for (r = 0; r < 4; r++)
                    for (q = 0; q < 4; q++)
                        acc[4 * r + q] = _mm512_add_epi64(
                            acc[4 * r + q], _mm512_popcnt_epi64(_mm512_xor_si512(w[r], x[q])));
            }
            if (tail) {
                for (r = 0; r < 4; r++)
                    w[r] = _mm512_maskz_loadu_epi64(tail, (const void *)(a + (size_t)r * kw + kv));
                for (q = 0; q < 4; q++)
                    x[q] = _mm512_maskz_loadu_epi64(tail, (const void *)(b + (size_t)q * kw + kv));
                for (r = 0; r < 4; r++)
                    for (q = 0; q < 4; q++)
                        acc[4 * r + q] = _mm512_add_epi64(
                            acc[4 * r + q], _mm512_popcnt_epi64(_mm512_xor_si512(w[r], x[q])));
            }
            for (r = 0; r < 4; r++)
                for (q = 0; q < 4; q++)
                    cnt[(i + r) * XN_TP + j + q] = (int32_t)_mm512_reduce_add_epi64(acc[4 * r + q]);
        }
    }
}
#endif /* XN_X86 */

#ifdef __aarch64__
static void xn_tile_neon(const uint64_t *A, const uint64_t *B, int kw, int nf, int np,
                         int32_t *cnt) {
    /* vcnt counts bits per byte; pairwise widening adds keep 16-bit lanes from overflowing
     * (each step adds at most 16 per lane; flushed to 64-bit lanes every 1024 steps). */
    const int kv = kw & ~1;
    int i, j, k, r, s;
    for (i = 0; i < nf; i += 4) {
        for (j = 0; j < np; j += 2) {
            const uint64_t *b0 = B + (size_t)j * kw, *b1 = b0 + kw;
            for (r = 0; r < 4; r++) {
                const uint64_t *a = A + (size_t)(i + r) * kw;
                uint64x2_t t0 = vdupq_n_u64(0), t1 = vdupq_n_u64(0);
                k = 0;
                while (k < kv) {
                    int stop = k + 2048 < kv ? k + 2048 : kv;
                    uint16x8_t c0 = vdupq_n_u16(0), c1 = vdupq_n_u16(0);
                    for (; k < stop; k += 2) {
                        uint8x16_t w = vreinterpretq_u8_u64(vld1q_u64(a + k));
                        uint8x16_t x0 = vreinterpretq_u8_u64(vld1q_u64(b0 + k));
                        uint8x16_t x1 = vreinterpretq_u8_u64(vld1q_u64(b1 + k));
                        c0 = vpadalq_u8(c0, vcntq_u8(veorq_u8(w, x0)));
                        c1 = vpadalq_u8(c1, vcntq_u8(veorq_u8(w, x1)));
                    }
                    t0 = vaddq_u64(t0, vpaddlq_u32(vpaddlq_u16(c0)));
                    t1 = vaddq_u64(t1, vpaddlq_u32(vpaddlq_u16(c1)));
                }
                uint64_t s0 = vgetq_lane_u64(t0, 0) + vgetq_lane_u64(t0, 1);
                uint64_t s1 = vgetq_lane_u64(t1, 0) + vgetq_lane_u64(t1, 1);
                for (s = kv; s < kw; s++) {
                    s0 += (uint64_t)xn_popcount64_portable(a[s] ^ b0[s]);
                    s1 += (uint64_t)xn_popcount64_portable(a[s] ^ b1[s]);
                }
                cnt[(i + r) * XN_TP + j] = (int32_t)s0;
                cnt[(i + r) * XN_TP + j + 1] = (int32_t)s1;
            }
        }
    }
}
#endif

/* One tile of the binary convolution: filters [f0, f0+nf), pixels [p0, p0+np) (padded counts),
 * stored for f < F and p < N only. out is (F, N) row-major. */
static void xn_binary_tile(int isa, const uint64_t *A, const uint64_t *B, int kw, int K, int f0,
                           int nf, int p0, int np, int F, int N, const float *scale,
                           const float *bias, int act, int32_t *dot_out, float *out) {
    int32_t cnt[XN_TF * XN_TP];
    const uint64_t *a = A + (size_t)f0 * kw, *b = B + (size_t)p0 * kw;
    int i, j, nvalid;
    switch (isa) {
#ifdef XN_X86
    case XN_POPCNT:
        xn_tile_popcnt(a, b, kw, nf, np, cnt);
        break;
    case XN_AVX2:
        xn_tile_avx2(a, b, kw, nf, np, cnt);
        break;
    case XN_AVX512:
        xn_tile_avx512(a, b, kw, nf, np, cnt);
        break;
#endif
#ifdef __aarch64__
    case XN_NEON:
        xn_tile_neon(a, b, kw, nf, np, cnt);
        break;
#endif
    default:
        xn_tile_portable(a, b, kw, nf, np, cnt);
    }
    nvalid = N - p0 < np ? N - p0 : np;
    for (i = 0; i < nf && f0 + i < F; i++) {
        int32_t *row = cnt + i * XN_TP;
        /* mismatches -> +-1 dot product over the K real taps (padded bits never mismatch) */
        for (j = 0; j < nvalid; j++) row[j] = K - 2 * row[j];
        if (dot_out)
            memcpy(dot_out + (size_t)(f0 + i) * N + p0, row, (size_t)nvalid * sizeof(int32_t));
        else
            xn_store_row(row, nvalid, scale[f0 + i], bias[f0 + i], act,
                         out + (size_t)(f0 + i) * N + p0);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Packing and bit-im2col (layout in kernels/README.md).                                      */

#define XN_PACK_CHUNK 512

/* One input row: x points at channel 0 of the row, plane = H*W floats between channels.
 * dst points at the row's first real pixel in the packed image (pixel stride cw words).
 * Branch-free so the compiler vectorises the inner loop over pixels. */
static void xn_pack_row(const float *x, size_t plane, int c, int w, uint64_t *dst, int cw) {
    uint64_t tmp[XN_PACK_CHUNK];
    int i0, wd, ch, i;
    for (i0 = 0; i0 < w; i0 += XN_PACK_CHUNK) {
        int n = w - i0 < XN_PACK_CHUNK ? w - i0 : XN_PACK_CHUNK;
        for (wd = 0; wd < cw; wd++) {
            int c1 = c < (wd + 1) * 64 ? c : (wd + 1) * 64;
            for (i = 0; i < n; i++) tmp[i] = 0;
            for (ch = wd * 64; ch < c1; ch++) {
                const float *s = x + (size_t)ch * plane + i0;
                const uint64_t bit = (uint64_t)1 << (ch & 63);
                for (i = 0; i < n; i++) tmp[i] |= s[i] > 0.0f ? bit : 0;
            }
            for (i = 0; i < n; i++) dst[(size_t)(i0 + i) * cw + wd] = tmp[i];
        }
    }
}

/* OR nbits of src (cw words, unused tail bits zero) into row at bit offset. */
static inline void xn_append_bits(uint64_t *row, int offset, const uint64_t *src, int cw,
                                  int nbits) {
    const int sh = offset & 63;
    int i;
    row += offset >> 6;
    if (sh == 0) {
        for (i = 0; i < cw; i++) row[i] |= src[i];
        return;
    }
    for (i = 0; i < cw; i++) {
        row[i] |= src[i] << sh;
        if (nbits - 64 * i > 64 - sh) row[i + 1] |= src[i] >> (64 - sh);
    }
}

/* Windows of one output row: row ox of cols (kw words each, zeroed) gets the size x size taps
 * of packed rows iy0 .. iy0+size-1 starting at pixel ox*stride_x, tap-major (ky, kx, c). */
static void xn_im2col_row(const uint64_t *packed, int wp, int cw, int c, int size, int iy0,
                          int stride_x, int out_w, uint64_t *cols, int kw) {
    int ox, ky, kx;
    for (ox = 0; ox < out_w; ox++) {
        uint64_t *row = cols + (size_t)ox * kw;
        for (ky = 0; ky < size; ky++) {
            const uint64_t *src = packed + ((size_t)(iy0 + ky) * wp + (size_t)ox * stride_x) * cw;
            if ((c & 63) == 0) {
                /* a window row's taps are consecutive pixels: one contiguous copy */
                memcpy(row + ky * size * cw, src, (size_t)size * cw * sizeof(uint64_t));
            } else if (cw == 1) {
                for (kx = 0; kx < size; kx++)
                    xn_append_bits(row, (ky * size + kx) * c, src + kx, 1, c);
            } else {
                for (kx = 0; kx < size; kx++)
                    xn_append_bits(row, (ky * size + kx) * c, src + (size_t)kx * cw, cw, c);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Maxpool of one channel plane, darknet's semantics: window origin (-off, -off), taps outside
 * the image ignored, -FLT_MAX where a window has none. */

static void xn_maxpool_plane(const float *x, int h, int w, int size, int sy, int sx, int off,
                             int oh, int ow, float *out) {
    int oy, ox, ky, kx;
    if (size == 2 && sy == 2 && sx == 2 && off == 0 && 2 * oh <= h && 2 * ow <= w) {
        /* tiny-YOLO's 2x2/2: every window lies inside the image */
        for (oy = 0; oy < oh; oy++) {
            const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
            float *o = out + (size_t)oy * ow;
            for (ox = 0; ox < ow; ox++) {
                float a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
                float b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
                o[ox] = a > b ? a : b;
            }
        }
        return;
    }
    for (oy = 0; oy < oh; oy++) {
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
            out[(size_t)oy * ow + ox] = m;
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
    for (r = 0; r < reps; r++)
        for (k = 0; k < nwords; k++) {
            s0 += (uint64_t)xn_popcount64_portable(buf[k] ^ k0);
            s1 += (uint64_t)xn_popcount64_portable(buf[k] ^ k1);
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
    for (r = 0; r < reps; r++)
        for (k = 0; k + 2 <= nwords; k += 2) {
            s0 += (uint64_t)__builtin_popcountll(buf[k] ^ k0);
            s1 += (uint64_t)__builtin_popcountll(buf[k] ^ k1);
            s2 += (uint64_t)__builtin_popcountll(buf[k + 1] ^ k0);
            s3 += (uint64_t)__builtin_popcountll(buf[k + 1] ^ k1);
        }
    return s0 + s1 + s2 + s3;
}

__attribute__((target("avx2,popcnt"))) static uint64_t xn_peak_avx2(const uint64_t *buf,
                                                                    int nwords, long reps) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                         2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    const __m256i k0 = _mm256_set1_epi64x(0x1e3779b97f4a7c15LL);
    const __m256i k1 = _mm256_set1_epi64x(0x42b2ae3d27d4eb4fLL);
    __m256i t0 = zero, t1 = zero;
    long r;
    int k;
    for (r = 0; r < reps; r++) {
        __m256i c0 = zero, c1 = zero;
        /* nwords <= 31*4 keeps the byte counters from overflowing */
        for (k = 0; k + 4 <= nwords; k += 4) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(buf + k));
            c0 = _mm256_add_epi8(c0, xn_pc8_avx2(_mm256_xor_si256(x, k0), lut, low));
            c1 = _mm256_add_epi8(c1, xn_pc8_avx2(_mm256_xor_si256(x, k1), lut, low));
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
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    long r;
    int k;
    for (r = 0; r < reps; r++)
        for (k = 0; k + 16 <= nwords; k += 16) {
            __m512i x = _mm512_loadu_si512((const void *)(buf + k));
            __m512i y = _mm512_loadu_si512((const void *)(buf + k + 8));
            s0 = _mm512_add_epi64(s0, _mm512_popcnt_epi64(_mm512_xor_si512(x, k0)));
            s1 = _mm512_add_epi64(s1, _mm512_popcnt_epi64(_mm512_xor_si512(x, k1)));
            s2 = _mm512_add_epi64(s2, _mm512_popcnt_epi64(_mm512_xor_si512(y, k0)));
            s3 = _mm512_add_epi64(s3, _mm512_popcnt_epi64(_mm512_xor_si512(y, k1)));
        }
    return (uint64_t)_mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
}
#endif

#ifdef __aarch64__
static uint64_t xn_peak_neon(const uint64_t *buf, int nwords, long reps) {
    uint8x16_t k0 = vreinterpretq_u8_u64(vdupq_n_u64(0x9e3779b97f4a7c15ULL));
    uint8x16_t k1 = vreinterpretq_u8_u64(vdupq_n_u64(0xc2b2ae3d27d4eb4fULL));
    uint64x2_t t = vdupq_n_u64(0);
    long r;
    int k;
    for (r = 0; r < reps; r++) {
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
#ifdef __aarch64__
    case XN_NEON:
        return xn_peak_neon(buf, nwords, reps);
#endif
    default:
        return xn_peak_portable(buf, nwords, reps);
    }
}

#endif /* XNORYOLO_XCONV_SIMD_H */
