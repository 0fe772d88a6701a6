/* int8 convolution (qconv.pyx): quantise, im2col into byte panels, int32 GEMM per path, one
 * output transform. The arithmetic is written down in kernels/README.md ("int8 layers") and
 * in detector/quantize.py (the NumPy reference); every path computes the same int32 sums.
 *
 * Panels: the im2col matrix (rows k = (c, ky, kx), darknet's order, padded to a multiple of 4
 * with zero rows) is stored XQ_PW pixels at a time, 4 taps per pixel together:
 * pan[p / 16][k / 4][p % 16][k % 4]. One 64-byte load is 4 taps of 16 pixels, which is what
 * vpdpbusd (4 u8 x s8 products summed into each int32 lane) and sdot want; each 32-bit lane
 * accumulates one pixel, so no horizontal sums are needed. Weights are rows of Kp int8, the
 * 4 taps of a lane read as one int32 and broadcast. Missing pixels of the last panel are 0. */
#ifndef XNORYOLO_XN_INT8_H
#define XNORYOLO_XN_INT8_H

#include "xn_common.h"

#if defined(XN_EMULATE_NEON) && !defined(__aarch64__)
/* tests only: the int8 NEON intrinsics in plain C (tests/helpers/neon_emu_int8.h) */
#include "neon_emu_int8.h"
#endif

#if defined(XN_X86) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

#define XQ_PW 16

enum {
    XQ_PORTABLE = 0,
    XQ_AVX2 = 1,
    XQ_AVXVNNI = 2,
    XQ_AVX512VNNI = 3,
    XQ_NEON = 4,
    XQ_NEONDOT = 5,
    XQ_AMX = 6,
    XQ_NPATH = 7,
    /* not a path of its own, only xq_tile's: the avx2 tile where vpmaddubsw is exact (inputs
     * whose bytes stay in 0..127, or weights in -64..64: xq_tile_avx2u7) */
    XQ_AVX2U7 = 8
};

#ifdef XN_X86
#define XQ_AVX2_TARGET "avx2"
#define XQ_AVXVNNI_TARGET "avx2,avxvnni"
#define XQ_AVX512_TARGET "avx512f,avx512bw,avx512vnni,avx2"
#define XQ_AMX_TARGET "amx-tile,amx-int8,avx512f,avx512bw,avx512vnni,avx2"

/* AMX needs the CPU (CPUID 7.0 EDX bits 24, 25: AMX-TILE, AMX-INT8) and, on Linux, the
 * process's permission for the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once;
 * it covers every thread of the process). */
static int xq_amx_ready(void) {
#ifdef __linux__
    static int state = -1;
    if (state < 0) {
        unsigned a, b, c, d;
        int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 24)) && (d & (1u << 25));
        if (ok) ok = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                             18 /* XFEATURE_XTILEDATA */) == 0;
        state = ok;
    }
    return state;
#else
    return 0;
#endif
}
#endif

static int xq_path_supported(int path) {
    switch (path) {
    case XQ_PORTABLE:
        return 1;
#ifdef XN_X86
    case XQ_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    case XQ_AVXVNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni");
    case XQ_AVX512VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
    case XQ_AMX:
        return xq_path_supported(XQ_AVX512VNNI) && xq_amx_ready();
#endif
#ifdef XN_HAVE_NEON
    case XQ_NEON:
        return 1;
    case XQ_NEONDOT:
#if defined(__aarch64__) && defined(__linux__)
        return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(XN_EMULATE_NEON)
        return 1;
#else
        return 0;
#endif
#endif
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ quantisation */

/* q = clamp(floor(x * inv + 0.5) + zero, 0, top): float32 products and sums, no contraction,
 * so it equals detector/quantize.py's quantize_activations to the byte. top is 255, or 127
 * for a layer calibrated to 7 bits. */
XN_NOCONTRACT static void xq_quantize(const float *x, uint8_t *q, int64_t n, float inv, int zero,
                                      int top) {
    const float lo = (float)(-zero), hi = (float)(top - zero);
    for (int64_t i = 0; i < n; i++) {
        float u = x[i] * inv;
        u = u + 0.5f;
        /* clamp first (also maps NaN to lo), so the conversion below is in range */
        u = u >= lo ? u : lo;
        u = u <= hi ? u : hi;
        int t = (int)u; /* truncation; floor for u >= 0, one more than floor below */
        t -= (float)t > u;
        q[i] = (uint8_t)(t + zero);
    }
}

#ifdef XN_X86
/* The same in vectors: max(u, lo) gives lo for NaN (the second operand), as the scalar clamp;
 * floor of an in-range float, then an exact conversion. Bit-identical with xq_quantize. */
__attribute__((target(XQ_AVX512_TARGET))) XN_NOCONTRACT static void
xq_quantize_avx512(const float *x, uint8_t *q, int64_t n, float inv, int zero, int top) {
    const __m512 vi = _mm512_set1_ps(inv), half = _mm512_set1_ps(0.5f);
    const __m512 lo = _mm512_set1_ps((float)(-zero)), hi = _mm512_set1_ps((float)(top - zero));
    const __m512i vz = _mm512_set1_epi32(zero);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 u = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vi), half);
        u = _mm512_min_ps(_mm512_max_ps(u, lo), hi);
        u = _mm512_roundscale_ps(u, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, k, _mm512_add_epi32(_mm512_cvtps_epi32(u), vz));
    }
}

__attribute__((target(XQ_AVX2_TARGET))) XN_NOCONTRACT static void
xq_quantize_avx2(const float *x, uint8_t *q, int64_t n, float inv, int zero, int top) {
    const __m256 vi = _mm256_set1_ps(inv), half = _mm256_set1_ps(0.5f);
    const __m256 lo = _mm256_set1_ps((float)(-zero)), hi = _mm256_set1_ps((float)(top - zero));
    const __m256i vz = _mm256_set1_epi32(zero);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i v[2];
        for (int h = 0; h < 2; h++) {
            __m256 u = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * h), vi), half);
            u = _mm256_floor_ps(_mm256_min_ps(_mm256_max_ps(u, lo), hi));
            v[h] = _mm256_add_epi32(_mm256_cvtps_epi32(u), vz);
        }
        /* 0..255 in every lane: the saturating packs are exact; undo their lane interleave */
        __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(v[0], v[1]), 0xD8);
        __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        _mm_storeu_si128((__m128i *)(q + i), b);
    }
    xq_quantize(x + i, q + i, n - i, inv, zero, top);
}
#endif

/* xq_quantize on the vectors of an int8 path. */
static void xq_quantize_path(int path, const float *x, uint8_t *q, int64_t n, float inv,
                             int zero, int top) {
#ifdef XN_X86
    if (path == XQ_AVX512VNNI || path == XQ_AMX) {
        xq_quantize_avx512(x, q, n, inv, zero, top);
        return;
    }
    if (path == XQ_AVX2 || path == XQ_AVXVNNI) {
        xq_quantize_avx2(x, q, n, inv, zero, top);
        return;
    }
#endif
    (void)path;
    xq_quantize(x, q, n, inv, zero, top);
}

/* ------------------------------------------------------------------ im2col into panels */

/* Rows of the im2col matrix for pixels p0 .. p0+np_-1: rows[k][0 .. np_-1] (k < kp), taps
 * past K are 0. The block is cut at output-row ends into runs; per run, each tap row gets the
 * run's in-image bytes in one copy (stride 1) and `zero` (the quantised 0.0) where a tap falls
 * in the padding. Runs outermost and no division per tap: 13- and 26-pixel rows made one
 * memcpy call (and a div) per tap and run the cost of the deep layers' im2col. */
static inline void xq_copy_bytes(uint8_t *d, const uint8_t *s, int64_t n) {
    /* short runs as two overlapping fixed-size copies (GCC makes them single moves) */
    if (n >= 32) {
        memcpy(d, s, (size_t)n);
    } else if (n >= 16) {
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else {
        for (int64_t i = 0; i < n; i++) d[i] = s[i];
    }
}

static void xq_im2col_rows(const uint8_t *q, int cg, int h, int w, int size, int sy, int sx,
                           int pad, int dil, int ow, int64_t p0, int np_, int kp, uint8_t zero,
                           uint8_t *rows, int ld) {
    const int k = cg * size * size;
    for (int kk = k; kk < kp; kk++) memset(rows + (int64_t)kk * ld, 0, (size_t)np_);
    int64_t p = p0;
    const int64_t end = p0 + np_;
    int oy = (int)(p0 / ow), ox0 = (int)(p0 % ow);
    while (p < end) {
        int64_t run = ow - ox0;
        if (run > end - p) run = end - p;
        uint8_t *d0 = rows + (p - p0);
        int kk = 0;
        for (int c = 0; c < cg; c++) {
            const uint8_t *plane = q + (int64_t)c * h * w;
            for (int ky = 0; ky < size; ky++) {
                const int iy = oy * sy - pad + ky * dil;
                const uint8_t *src = iy >= 0 && iy < h ? plane + (int64_t)iy * w : NULL;
                for (int kx = 0; kx < size; kx++, kk++) {
                    uint8_t *d = d0 + (int64_t)kk * ld;
                    if (src == NULL) {
                        memset(d, zero, (size_t)run);
                        continue;
                    }
                    /* taps ix + i sx inside [0, w) for i in [i0, i1): padding either side */
                    const int ix = ox0 * sx - pad + kx * dil;
                    int64_t i0, i1;
                    if (sx == 1) {
                        i0 = ix >= 0 ? 0 : -(int64_t)ix;
                        i1 = (int64_t)w - ix;
                    } else {
                        i0 = ix >= 0 ? 0 : (-(int64_t)ix + sx - 1) / sx;
                        i1 = ix >= w ? 0 : ((int64_t)w - ix + sx - 1) / sx;
                    }
                    if (i0 > run) i0 = run;
                    if (i1 > run) i1 = run;
                    if (i1 < i0) i1 = i0;
                    for (int64_t i = 0; i < i0; i++) d[i] = zero;
                    if (sx == 1)
                        xq_copy_bytes(d + i0, src + ix + i0, i1 - i0);
                    else
                        for (int64_t i = i0; i < i1; i++) d[i] = src[ix + i * sx];
                    for (int64_t i = i1; i < run; i++) d[i] = zero;
                }
            }
        }
        p += run;
        ox0 = 0;
        oy++;
    }
}

/* rows (kp x ld bytes, np_ pixels used) -> panels of 16 pixels x 4 taps; missing pixels 0. */
static void xq_interleave(const uint8_t *rows, int ld, int np_, int kp, uint8_t *pan) {
    const int npan = (np_ + XQ_PW - 1) / XQ_PW;
    for (int j = 0; j < npan; j++) {
        uint8_t *pj = pan + (int64_t)j * kp * XQ_PW;
        const int m = np_ - j * XQ_PW < XQ_PW ? np_ - j * XQ_PW : XQ_PW;
        for (int g = 0; g < kp / 4; g++) {
            const uint8_t *r0 = rows + (int64_t)(4 * g) * ld + j * XQ_PW;
            uint8_t *d = pj + (int64_t)g * 64;
#ifdef XN_X86
            if (m == XQ_PW) {
                /* SSE2 (every x86-64): 4 rows of 16 bytes -> 16 pixels of 4 bytes */
                __m128i a = _mm_loadu_si128((const __m128i *)r0);
                __m128i b = _mm_loadu_si128((const __m128i *)(r0 + ld));
                __m128i c = _mm_loadu_si128((const __m128i *)(r0 + 2 * ld));
                __m128i e = _mm_loadu_si128((const __m128i *)(r0 + 3 * ld));
                __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
                __m128i ce_lo = _mm_unpacklo_epi8(c, e), ce_hi = _mm_unpackhi_epi8(c, e);
                _mm_storeu_si128((__m128i *)d, _mm_unpacklo_epi16(ab_lo, ce_lo));
                _mm_storeu_si128((__m128i *)(d + 16), _mm_unpackhi_epi16(ab_lo, ce_lo));
                _mm_storeu_si128((__m128i *)(d + 32), _mm_unpacklo_epi16(ab_hi, ce_hi));
                _mm_storeu_si128((__m128i *)(d + 48), _mm_unpackhi_epi16(ab_hi, ce_hi));
                continue;
            }
#endif
            for (int l = 0; l < XQ_PW; l++)
                for (int t = 0; t < 4; t++) d[4 * l + t] = l < m ? r0[(int64_t)t * ld + l] : 0;
        }
    }
}

/* ------------------------------------------------------------------ direct (thin inputs) */

/* Thin inputs (up to 4 channels, stride_x 1) skip im2col: the input is stored once as quad
 * pixels, xi[r][s][4] = its (up to 4) channel bytes at (r - pad, s - pad), `zero` (the
 * quantised 0.0) outside the image and 0 in unused channels (their weights are 0). Then tap
 * (ky, kx) of 16 consecutive output pixels of a row is 64 consecutive bytes of xi, laid out
 * as a panel's tap group: the tiles read xi in place (pstride 64, goff[ky size + kx] = the
 * tap's offset), with weight rows in (ky, kx, channel) order. Row r of xi for r < hp, wp
 * quads a row; rows past the image and the columns the last partial panel reads are padding. */
static void xq_quads_row(const uint8_t *q, int c, int h, int w, int pad, int wp, int r,
                         uint8_t zero, uint8_t *xr) {
    const int iy = r - pad;
    if (iy < 0 || iy >= h) {
        memset(xr, zero, (size_t)wp * 4);
        return;
    }
    const int lead = pad < wp ? pad : wp;
    const int in = w < wp - lead ? w : wp - lead;
    memset(xr, zero, (size_t)lead * 4);
    const uint8_t *src[4];
    for (int ch = 0; ch < 4; ch++) src[ch] = ch < c ? q + ((int64_t)ch * h + iy) * w : NULL;
    uint8_t *d = xr + (int64_t)lead * 4;
    int64_t x = 0;
#ifdef XN_X86
    /* SSE2 (every x86-64): 4 channel rows of 16 bytes -> 16 quads; missing channels 0 */
    const __m128i nil = _mm_setzero_si128();
    for (; x + 16 <= in; x += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src[0] + x));
        __m128i b = c > 1 ? _mm_loadu_si128((const __m128i *)(src[1] + x)) : nil;
        __m128i e = c > 2 ? _mm_loadu_si128((const __m128i *)(src[2] + x)) : nil;
        __m128i f = c > 3 ? _mm_loadu_si128((const __m128i *)(src[3] + x)) : nil;
        __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
        __m128i ef_lo = _mm_unpacklo_epi8(e, f), ef_hi = _mm_unpackhi_epi8(e, f);
        _mm_storeu_si128((__m128i *)(d + 4 * x), _mm_unpacklo_epi16(ab_lo, ef_lo));
        _mm_storeu_si128((__m128i *)(d + 4 * x + 16), _mm_unpackhi_epi16(ab_lo, ef_lo));
        _mm_storeu_si128((__m128i *)(d + 4 * x + 32), _mm_unpacklo_epi16(ab_hi, ef_hi));
        _mm_storeu_si128((__m128i *)(d + 4 * x + 48), _mm_unpackhi_epi16(ab_hi, ef_hi));
    }
#endif
    for (; x < in; x++)
        for (int ch = 0; ch < 4; ch++) d[4 * x + ch] = ch < c ? src[ch][x] : 0;
    if (lead + in < wp) memset(d + (int64_t)in * 4, zero, (size_t)(wp - lead - in) * 4);
}

/* ------------------------------------------------------------------ output transform */

/* y = float(acc - corr) * mult + bias, then linear / leaky / relu (others: the caller's
 * activation on the result), like quantize.py's int8_output_transform. */
XN_NOCONTRACT static inline float xq_transform(int32_t acc, int32_t corr, float mult, float bias,
                                               int act) {
    float y = (float)(acc - corr) * mult;
    y = y + bias;
    if (act == XN_LEAKY) return y > 0.0f ? y : 0.1f * y;
    if (act == XN_RELU) return y > 0.0f ? y : 0.0f;
    return y;
}

#ifdef XN_X86
/* The transform of one row, 16 (8) lanes at a time: the same operations in the same order as
 * xq_transform, so the same floats. */
__attribute__((target(XQ_AVX512_TARGET))) XN_NOCONTRACT static void
xq_store_row_avx512(const int32_t *a, int64_t m, int32_t corr, float mult, float bias, int act,
                    float *o) {
    const __m512i vc = _mm512_set1_epi32(corr);
    const __m512 vm = _mm512_set1_ps(mult), vb = _mm512_set1_ps(bias);
    const __m512 z = _mm512_setzero_ps(), tenth = _mm512_set1_ps(0.1f);
    for (int64_t j = 0; j < m; j += 16) {
        __mmask16 k = m - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (m - j)) - 1);
        __m512i v = _mm512_maskz_loadu_epi32(k, a + j);
        __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, vc)), vm);
        y = _mm512_add_ps(y, vb);
        __mmask16 pos = _mm512_cmp_ps_mask(y, z, _CMP_GT_OQ);
        if (act == XN_LEAKY)
            y = _mm512_mask_blend_ps(pos, _mm512_mul_ps(tenth, y), y);
        else if (act == XN_RELU)
            y = _mm512_mask_blend_ps(pos, z, y);
        _mm512_mask_storeu_ps(o + j, k, y);
    }
}

__attribute__((target(XQ_AVX2_TARGET))) XN_NOCONTRACT static void
xq_store_row_avx2(const int32_t *a, int64_t m, int32_t corr, float mult, float bias, int act,
                  float *o) {
    const __m256i vc = _mm256_set1_epi32(corr);
    const __m256 vm = _mm256_set1_ps(mult), vb = _mm256_set1_ps(bias);
    const __m256 z = _mm256_setzero_ps(), tenth = _mm256_set1_ps(0.1f);
    int64_t j = 0;
    for (; j + 8 <= m; j += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(a + j));
        __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, vc)), vm);
        y = _mm256_add_ps(y, vb);
        __m256 pos = _mm256_cmp_ps(y, z, _CMP_GT_OQ);
        if (act == XN_LEAKY)
            y = _mm256_blendv_ps(_mm256_mul_ps(tenth, y), y, pos);
        else if (act == XN_RELU)
            y = _mm256_blendv_ps(z, y, pos);
        _mm256_storeu_ps(o + j, y);
    }
    for (; j < m; j++) o[j] = xq_transform(a[j], corr, mult, bias, act);
}
#endif

/* One filter's row of m sums into floats: the transform, vectorised where the path allows
 * (bit-identical with the scalar xq_transform). */
static void xq_store_row(int path, const int32_t *a, int64_t m, int32_t corr, float mult,
                         float bias, int act, float *o) {
#ifdef XN_X86
    if (path == XQ_AVX512VNNI || path == XQ_AMX) {
        xq_store_row_avx512(a, m, corr, mult, bias, act, o);
        return;
    }
    if (path == XQ_AVX2 || path == XQ_AVXVNNI) {
        xq_store_row_avx2(a, m, corr, mult, bias, act, o);
        return;
    }
#endif
    (void)path;
    for (int64_t j = 0; j < m; j++) o[j] = xq_transform(a[j], corr, mult, bias, act);
}

/* Rows f0 .. f0+nf-1, pixels p0 .. p0+16*np_-1 (those < pend) of a tile of sums
 * acc[nf][16*np_]: the transform into out (F, n) floats, or the sums less the zero-point term
 * into out_int. */
static void xq_store_tile(int path, const int32_t *acc, int nf, int np_, int f0, int64_t p0,
                          int64_t pend, int64_t n, const int32_t *corr, const float *mult,
                          const float *bias, int act, float *out, int32_t *out_int) {
    int64_t m = pend - p0;
    if (m > (int64_t)np_ * XQ_PW) m = (int64_t)np_ * XQ_PW;
    for (int i = 0; i < nf; i++) {
        const int32_t *a = acc + (int64_t)i * np_ * XQ_PW;
        int f = f0 + i;
        if (out_int) {
            int32_t *o = out_int + (int64_t)f * n + p0;
            for (int64_t j = 0; j < m; j++) o[j] = a[j] - corr[f];
            continue;
        }
        xq_store_row(path, a, m, corr[f], mult[f], bias[f], act, out + (int64_t)f * n + p0);
    }
}

/* The same tile handed on as the next int8 layer's input bytes: each row's floats (the very
 * values xq_store_tile writes) go through tmp (16*np_ floats, stays in L1) and are quantised
 * with that layer's 1/scale and zero point, so out holds the bytes the next layer would have
 * made of the floats. */
static void xq_store_tile_u8(int path, const int32_t *acc, int nf, int np_, int f0, int64_t p0,
                             int64_t pend, int64_t n, const int32_t *corr, const float *mult,
                             const float *bias, int act, float inv, int zero, int top,
                             float *tmp, uint8_t *out) {
    int64_t m = pend - p0;
    if (m > (int64_t)np_ * XQ_PW) m = (int64_t)np_ * XQ_PW;
    for (int i = 0; i < nf; i++) {
        int f = f0 + i;
        xq_store_row(path, acc + (int64_t)i * np_ * XQ_PW, m, corr[f], mult[f], bias[f], act, tmp);
        xq_quantize_path(path, tmp, out + (int64_t)f * n + p0, m, inv, zero, top);
    }
}

/* ------------------------------------------------------------------ maxpool on bytes */

/* yr[ox] = max of columns 2 ox, 2 ox + 1 (those < w) of rows r0 and r1, ox < ow <= (w + 1) / 2:
 * the 2x2 / 2 window (r1 = r0 for one row). */
static void xq_max_pairs_u8(const uint8_t *r0, const uint8_t *r1, int w, int ow, uint8_t *yr) {
    const int full = 2 * ow <= w ? ow : w / 2;
    int ox = 0;
#ifdef XN_X86
    /* SSE2 (every x86-64): the vertical max of 32 bytes, then each 16-bit lane's two
     * bytes, packed back to 16 bytes (lanes hold 0..255: the pack is exact) */
    const __m128i low = _mm_set1_epi16(0xFF);
    for (; ox + 16 <= full; ox += 16) {
        __m128i a = _mm_max_epu8(_mm_loadu_si128((const __m128i *)(r0 + 2 * ox)),
                                 _mm_loadu_si128((const __m128i *)(r1 + 2 * ox)));
        __m128i b = _mm_max_epu8(_mm_loadu_si128((const __m128i *)(r0 + 2 * ox + 16)),
                                 _mm_loadu_si128((const __m128i *)(r1 + 2 * ox + 16)));
        a = _mm_max_epi16(_mm_and_si128(a, low), _mm_srli_epi16(a, 8));
        b = _mm_max_epi16(_mm_and_si128(b, low), _mm_srli_epi16(b, 8));
        _mm_storeu_si128((__m128i *)(yr + ox), _mm_packus_epi16(a, b));
    }
#endif
    for (; ox < full; ox++) {
        uint8_t a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
        uint8_t b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
        yr[ox] = a > b ? a : b;
    }
    if (full < ow) { /* odd width: the last window has one column */
        uint8_t a = r0[2 * full], b = r1[2 * full];
        yr[full] = a > b ? a : b;
    }
}

/* dst[i] = max(dst[i], src[i]) over n int32: the vertical step of a maxpool on the sums
 * (every x86 int8 path but portable has AVX2; GCC vectorises the loop on arm64). */
#ifdef XN_X86
__attribute__((target(XQ_AVX2_TARGET))) static void xq_max_i32_avx2(int32_t *dst,
                                                                   const int32_t *src,
                                                                   int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(dst + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_max_epi32(a, b));
    }
    for (; i < n; i++) dst[i] = src[i] > dst[i] ? src[i] : dst[i];
}
#endif

static void xq_max_i32(int path, int32_t *dst, const int32_t *src, int64_t n) {
#ifdef XN_X86
    if (path != XQ_PORTABLE) {
        xq_max_i32_avx2(dst, src, n);
        return;
    }
#endif
    (void)path;
    for (int64_t i = 0; i < n; i++) dst[i] = src[i] > dst[i] ? src[i] : dst[i];
}

/* m[px] = max(v[2 px], v[2 px + 1]) for px < n: the horizontal step of a 2 x 2 / 2 maxpool
 * on the sums. */
#ifdef XN_X86
__attribute__((target(XQ_AVX512_TARGET))) static int xq_max_pairs_i32_avx512(const int32_t *v,
                                                                             int n, int32_t *m) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    int px = 0;
    for (; px + 16 <= n; px += 16) {
        __m512i a = _mm512_loadu_si512(v + 2 * px), b = _mm512_loadu_si512(v + 2 * px + 16);
        _mm512_storeu_si512(m + px, _mm512_max_epi32(_mm512_permutex2var_epi32(a, even, b),
                                                     _mm512_permutex2var_epi32(a, odd, b)));
    }
    return px;
}

__attribute__((target(XQ_AVX2_TARGET))) static int xq_max_pairs_i32_avx2(const int32_t *v, int n,
                                                                        int32_t *m) {
    /* each 64-bit lane's max in its low half, then the low halves gathered in order */
    const __m256i low = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    int px = 0;
    for (; px + 4 <= n; px += 4) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(v + 2 * px));
        __m256i mx = _mm256_max_epi32(a, _mm256_srli_epi64(a, 32));
        _mm_storeu_si128((__m128i *)(m + px),
                         _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(mx, low)));
    }
    return px;
}
#endif

static void xq_max_pairs_i32(int path, const int32_t *v, int n, int32_t *m) {
    int px = 0;
#ifdef XN_X86
    if (path == XQ_AVX512VNNI || path == XQ_AMX)
        px = xq_max_pairs_i32_avx512(v, n, m);
    else if (path != XQ_PORTABLE)
        px = xq_max_pairs_i32_avx2(v, n, m);
#endif
    (void)path;
    for (; px < n; px++) m[px] = v[2 * px] > v[2 * px + 1] ? v[2 * px] : v[2 * px + 1];
}

/* One filter's row of pooled bytes from the row of its sums max'ed over the window's rows
 * (v, ow sums): the max of each window's columns on the sums (into m, pw sums), then the
 * transform and quantisation of those alone (tmp, then out: pw bytes). The transform and
 * quantisation are monotone non-decreasing in the sum (mult >= 0; linear, leaky and relu
 * keep the order), so this is the pool of the bytes of the full-size output, from a
 * quarter of its transforms (2 x 2 windows). */
static void xq_pooled_row_u8(int path, const int32_t *v, int ow, int32_t corr, float mult,
                             float bias, int act, float inv, int zero, int top, int size,
                             int sx, int pw, float *tmp, int32_t *m, uint8_t *out) {
    if (size == 2 && sx == 2 && 2 * pw <= ow + 1) {
        const int full = 2 * pw <= ow ? pw : pw - 1;
        xq_max_pairs_i32(path, v, full, m);
        if (full < pw) m[full] = v[2 * full]; /* odd width: the last window has one column */
    } else {
        for (int px = 0; px < pw; px++) {
            int32_t mx = v[px * sx];
            for (int kx = 1; kx < size && px * sx + kx < ow; kx++)
                mx = v[px * sx + kx] > mx ? v[px * sx + kx] : mx;
            m[px] = mx;
        }
    }
    xq_store_row(path, m, pw, corr, mult, bias, act, tmp);
    xq_quantize_path(path, tmp, out, pw, inv, zero, top);
}


/* Darknet's maxpool of one channel, on quantised bytes: quantisation is monotone, so the max
 * of the bytes is the byte of the max. Window origin -off; taps outside the image are skipped
 * (0, the least byte, is what the float pool's -FLT_MAX quantises to). */
static void xq_maxpool_u8(const uint8_t *x, int h, int w, int size, int sy, int sx, int off,
                          int oh, int ow, uint8_t *y) {
    for (int oy = 0; oy < oh; oy++) {
        uint8_t *yr = y + (int64_t)oy * ow;
        const int y0 = oy * sy - off;
        if (size == 2 && sy == 2 && sx == 2 && off == 0 && y0 + 1 < h) {
            /* the common 2x2 / 2: two rows, pairs of columns */
            const uint8_t *r0 = x + (int64_t)y0 * w;
            xq_max_pairs_u8(r0, r0 + w, w, ow, yr);
            continue;
        }
        for (int ox = 0; ox < ow; ox++) {
            const int x0 = ox * sx - off;
            uint8_t mx = 0;
            for (int ky = 0; ky < size; ky++) {
                const int iy = y0 + ky;
                if (iy < 0 || iy >= h) continue;
                for (int kx = 0; kx < size; kx++) {
                    const int ix = x0 + kx;
                    if (ix < 0 || ix >= w) continue;
                    const uint8_t v = x[(int64_t)iy * w + ix];
                    mx = v > mx ? v : mx;
                }
            }
            yr[ox] = mx;
        }
    }
}

/* ------------------------------------------------------------------ GEMM tiles */

/* Sums of nf filters (rows of wt, kp bytes each) over np_ panels; acc[nf][np_*16]. Panel j's
 * tap group g (16 pixels x 4 taps, 64 bytes) is at src + j * pstride + goff[g]: goff[g] = 64 g
 * on im2col panels (pstride = kp * 16), the offset of tap (ky, kx) in the quad-pixel input
 * on the direct path (pstride = 64: the next 16 pixels of the row). */
static void xq_tile_portable(const int8_t *wt, int kp, int nf, const uint8_t *pan,
                             int64_t pstride, const int64_t *goff, int np_, int32_t *acc) {
    for (int i = 0; i < nf; i++) {
        const int8_t *wr = wt + (int64_t)i * kp;
        for (int j = 0; j < np_; j++) {
            int32_t s[XQ_PW] = {0};
            const uint8_t *b = pan + j * pstride;
            for (int g = 0; g < kp / 4; g++) {
                const uint8_t *bg = b + goff[g];
                const int8_t *wg = wr + 4 * g;
                for (int l = 0; l < XQ_PW; l++)
                    s[l] += wg[0] * bg[4 * l] + wg[1] * bg[4 * l + 1] + wg[2] * bg[4 * l + 2] +
                            wg[3] * bg[4 * l + 3];
            }
            memcpy(acc + ((int64_t)i * np_ + j) * XQ_PW, s, sizeof s);
        }
    }
}

static inline int32_t xq_load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

#ifdef XN_X86
/* AVX-512 VNNI: 8 filters x 2 panels (32 pixels), 16 zmm accumulators; vpdpbusd multiplies
 * the panel's unsigned bytes by the broadcast signed weights, 4 taps per lane. */
__attribute__((target(XQ_AVX512_TARGET))) static void
xq_tile_avx512vnni(const int8_t *wt, int kp, int nf, const uint8_t *pan, int64_t pstride,
                   const int64_t *goff, int np_, int32_t *acc) {
    const int groups = kp / 4;
    for (int i0 = 0; i0 < nf; i0 += 8) {
        for (int j0 = 0; j0 < np_; j0 += 2) {
            const int two = j0 + 1 < np_;
            __m512i c[8][2];
            for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = _mm512_setzero_si512();
            const uint8_t *b0 = pan + j0 * pstride, *b1 = two ? b0 + pstride : b0;
            const int8_t *w0 = wt + (int64_t)i0 * kp;
            for (int g = 0; g < groups; g++) {
                __m512i x0 = _mm512_loadu_si512(b0 + goff[g]);
                __m512i x1 = _mm512_loadu_si512(b1 + goff[g]);
#define XQ_STEP(i)                                                                                 \
    do {                                                                                           \
        __m512i wv = _mm512_set1_epi32(xq_load4(w0 + (int64_t)(i)*kp + 4 * g));                    \
        c[i][0] = _mm512_dpbusd_epi32(c[i][0], x0, wv);                                            \
        c[i][1] = _mm512_dpbusd_epi32(c[i][1], x1, wv);                                            \
    } while (0)
                XQ_STEP(0);
                XQ_STEP(1);
                XQ_STEP(2);
                XQ_STEP(3);
                XQ_STEP(4);
                XQ_STEP(5);
                XQ_STEP(6);
                XQ_STEP(7);
#undef XQ_STEP
            }
            for (int i = 0; i < 8 && i0 + i < nf; i++) {
                int32_t *a = acc + ((int64_t)(i0 + i) * np_ + j0) * XQ_PW;
                _mm512_storeu_si512(a, c[i][0]);
                if (two) _mm512_storeu_si512(a + XQ_PW, c[i][1]);
            }
        }
    }
}

/* AMX: one 16 x 16 int32 tile per (16 filters, panel), TDPBSUD (signed weights x unsigned
 * activations, 4 taps a lane) over kr tap groups (4 kr taps) a step: the A tile is 16 weight
 * rows of 4 kr bytes, the B tile the kr tap groups g = kr s .. kr s + kr - 1 of one panel
 * (16 pixels x 4 taps each), rows goff[1] - goff[0] bytes apart. That holds on both layouts
 * AMX runs: im2col panels (kr 16, goff[g] = 64 g: a panel is AMX's B layout) and the direct
 * path's quad pixels, kept once per kernel column kx, shifted by kx, as planes in (channel
 * block, kx) order: K ordered (ky, block, kx), a step's groups are consecutive planes at one
 * ky, a plane apart, so B tiles are read in place (no im2col), each row one aligned line. kp
 * is a multiple of 4 kr; the weights of 16 filters hold each step's A tile as 16 rows of 64
 * bytes (the first 4 kr used): 1 KB in a row per step. Up to 32 filters a call. */
typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} xq_tilecfg;

__attribute__((target(XQ_AMX_TARGET))) static void
xq_tile_amx(const int8_t *wt, int kp, int kr, int nf, const uint8_t *pan, int64_t pstride,
            const int64_t *goff, int np_, int32_t *acc) {
    /* tiles: 0-3 sums; 32 filters: 4-5 weights, 6-7 panels; 16: 2 and 5 weights, 3-4 and
     * 6-7 panels (even and odd steps, so one step's loads need not wait for the last step's
     * products) */
    xq_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    const int wa = nf > 16 ? 4 : 2; /* first weight tile */
    for (int t = wa; t < 8; t++) {
        int weights = t == wa || t == 5;
        cfg.rows[t] = weights ? 16 : (uint8_t)kr;
        cfg.colsb[t] = weights ? (uint16_t)(4 * kr) : 64;
    }
    _tile_loadconfig(&cfg);
    /* the tile loads are asm statements that only see pointers: the panels' stores first */
    __asm__ volatile("" ::: "memory");
    const long cstride = (long)np_ * XQ_PW * 4;
    const long bstride = kr > 1 ? (long)(goff[1] - goff[0]) : 64L;
    const int steps = kp / (4 * kr);
    int j = 0;
    if (nf > 16) {
        /* 32 filters x two panels: four sums, each tile load serving two products */
        const int8_t *w1 = wt + (int64_t)16 * 64 * steps;
        int32_t *acc1 = acc + (int64_t)16 * np_ * XQ_PW;
        for (; j < np_; j += 2) {
            const int two = j + 1 < np_;
            const uint8_t *b0 = pan + j * pstride, *b1 = two ? b0 + pstride : b0;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int s = 0; s < steps; s++) {
                const int64_t o = goff[kr * s];
                _tile_loadd(4, wt + 1024 * s, 64L);
                _tile_loadd(5, w1 + 1024 * s, 64L);
                _tile_loadd(6, b0 + o, bstride);
                _tile_loadd(7, b1 + o, bstride);
                _tile_dpbsud(0, 4, 6);
                _tile_dpbsud(1, 4, 7);
                _tile_dpbsud(2, 5, 6);
                _tile_dpbsud(3, 5, 7);
            }
            _tile_stored(0, acc + (int64_t)j * XQ_PW, cstride);
            _tile_stored(2, acc1 + (int64_t)j * XQ_PW, cstride);
            if (two) {
                _tile_stored(1, acc + (int64_t)(j + 1) * XQ_PW, cstride);
                _tile_stored(3, acc1 + (int64_t)(j + 1) * XQ_PW, cstride);
            }
        }
        _tile_release();
        return;
    }
    /* up to 16 filters: always 16 rows, padded weights give sums nobody reads */
    for (; j + 2 <= np_; j += 2) {
        const uint8_t *b0 = pan + j * pstride, *b1 = b0 + pstride;
        _tile_zero(0);
        _tile_zero(1);
        int s = 0;
        for (; s + 2 <= steps; s += 2) {
            const int64_t o0 = goff[kr * s], o1 = goff[kr * s + kr];
            _tile_loadd(2, wt + 1024 * s, 64L);
            _tile_loadd(3, b0 + o0, bstride);
            _tile_loadd(4, b1 + o0, bstride);
            _tile_loadd(5, wt + 1024 * s + 1024, 64L);
            _tile_loadd(6, b0 + o1, bstride);
            _tile_loadd(7, b1 + o1, bstride);
            _tile_dpbsud(0, 2, 3);
            _tile_dpbsud(1, 2, 4);
            _tile_dpbsud(0, 5, 6);
            _tile_dpbsud(1, 5, 7);
        }
        if (s < steps) {
            const int64_t o0 = goff[kr * s];
            _tile_loadd(2, wt + 1024 * s, 64L);
            _tile_loadd(3, b0 + o0, bstride);
            _tile_loadd(4, b1 + o0, bstride);
            _tile_dpbsud(0, 2, 3);
            _tile_dpbsud(1, 2, 4);
        }
        _tile_stored(0, acc + (int64_t)j * XQ_PW, cstride);
        _tile_stored(1, acc + (int64_t)(j + 1) * XQ_PW, cstride);
    }
    if (j < np_) {
        /* one panel: two sums (even and odd steps, added at the end) */
        const uint8_t *b0 = pan + j * pstride;
        _tile_zero(0);
        _tile_zero(1);
        int s = 0;
        for (; s + 2 <= steps; s += 2) {
            _tile_loadd(2, wt + 1024 * s, 64L);
            _tile_loadd(3, b0 + goff[kr * s], bstride);
            _tile_loadd(5, wt + 1024 * s + 1024, 64L);
            _tile_loadd(6, b0 + goff[kr * s + kr], bstride);
            _tile_dpbsud(0, 2, 3);
            _tile_dpbsud(1, 5, 6);
        }
        if (s < steps) {
            _tile_loadd(2, wt + 1024 * s, 64L);
            _tile_loadd(3, b0 + goff[kr * s], bstride);
            _tile_dpbsud(0, 2, 3);
        }
        int32_t *a = acc + (int64_t)j * XQ_PW;
        int32_t odd[XQ_PW * XQ_PW];
        _tile_stored(0, a, cstride);
        _tile_stored(1, odd, (long)XQ_PW * 4);
        for (int r = 0; r < XQ_PW; r++)
            for (int l = 0; l < XQ_PW; l++) a[(int64_t)r * np_ * XQ_PW + l] += odd[r * XQ_PW + l];
    }
    _tile_release();
}

/* The 256-bit tiles on the vpdpbusd layout: 4 filters x 1 panel (two halves of 8 pixels),
 * DOT(c, x, w) adding each 32-bit lane's 4 byte products of x and w to c (one body for the
 * avxvnni tile and the avx2 7-bit one). */
#define XQ_TILE256_BODY(DOT)                                                                       \
    const int groups = kp / 4;                                                                     \
    for (int i0 = 0; i0 < nf; i0 += 4) {                                                           \
        for (int j = 0; j < np_; j++) {                                                            \
            __m256i c[4][2];                                                                       \
            for (int i = 0; i < 4; i++) c[i][0] = c[i][1] = _mm256_setzero_si256();               \
            const uint8_t *b = pan + j * pstride;                                                  \
            const int8_t *w0 = wt + (int64_t)i0 * kp;                                              \
            for (int g = 0; g < groups; g++) {                                                     \
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(b + goff[g]));                   \
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(b + goff[g] + 32));              \
                for (int i = 0; i < 4; i++) {                                                      \
                    __m256i wv = _mm256_set1_epi32(xq_load4(w0 + (int64_t)i * kp + 4 * g));        \
                    c[i][0] = DOT(c[i][0], x0, wv);                                                \
                    c[i][1] = DOT(c[i][1], x1, wv);                                                \
                }                                                                                  \
            }                                                                                      \
            for (int i = 0; i < 4 && i0 + i < nf; i++) {                                           \
                int32_t *a = acc + ((int64_t)(i0 + i) * np_ + j) * XQ_PW;                          \
                _mm256_storeu_si256((__m256i *)a, c[i][0]);                                        \
                _mm256_storeu_si256((__m256i *)(a + 8), c[i][1]);                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* AVX-VNNI: VEX vpdpbusd on 256 bits. */
__attribute__((target(XQ_AVXVNNI_TARGET))) static void
xq_tile_avxvnni(const int8_t *wt, int kp, int nf, const uint8_t *pan, int64_t pstride,
                const int64_t *goff, int np_, int32_t *acc) {
    XQ_TILE256_BODY(_mm256_dpbusd_avx_epi32)
}

/* AVX2: vpmaddubsw would saturate (2 x 255 x 127 > 32767), so the bytes are widened to int16
 * and multiplied with vpmaddwd (exact). A lane then holds the sum of 2 of a pixel's 4 taps;
 * the pairs are added once, at the end of the K loop (vphaddd). The weights on this path are
 * int16, widened once at load (wt holds rows of kp int16: 2 kp bytes), so a tap group's 4
 * weights are one 64-bit broadcast. 4 filters x 8 pixels a pass, two passes a panel: the
 * widened panel bytes serve 4 filters (madd + add is the bound: 16 multiply-adds per 2 ops). */
__attribute__((target(XQ_AVX2_TARGET))) static void
xq_tile_avx2(const int8_t *wt, int kp, int nf, const uint8_t *pan, int64_t pstride,
             const int64_t *goff, int np_, int32_t *acc) {
    const int16_t *w16 = (const int16_t *)(const void *)wt;
    const int groups = kp / 4;
    for (int i0 = 0; i0 < nf; i0 += 4) {
        const int16_t *w0 = w16 + (int64_t)i0 * kp;
        for (int j = 0; j < np_; j++) {
            const uint8_t *b = pan + j * pstride;
            for (int h = 0; h < 2; h++) {
                __m256i c[4][2];
                for (int i = 0; i < 4; i++) c[i][0] = c[i][1] = _mm256_setzero_si256();
                for (int g = 0; g < groups; g++) {
                    const uint8_t *bg = b + goff[g] + 32 * h;
                    __m256i x0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)bg));
                    __m256i x1 =
                        _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(bg + 16)));
                    for (int i = 0; i < 4; i++) {
                        long long w4;
                        memcpy(&w4, w0 + (int64_t)i * kp + 4 * g, 8);
                        const __m256i wv = _mm256_set1_epi64x(w4);
                        c[i][0] = _mm256_add_epi32(c[i][0], _mm256_madd_epi16(x0, wv));
                        c[i][1] = _mm256_add_epi32(c[i][1], _mm256_madd_epi16(x1, wv));
                    }
                }
                for (int i = 0; i < 4 && i0 + i < nf; i++) {
                    /* pixels 8h .. 8h+7: lanes (p, half) of c[0] (4 pixels) and c[1] */
                    int32_t *a = acc + ((int64_t)(i0 + i) * np_ + j) * XQ_PW + 8 * h;
                    __m256i s = _mm256_hadd_epi32(c[i][0], c[i][1]);
                    _mm256_storeu_si256((__m256i *)a, _mm256_permute4x64_epi64(s, 0xD8));
                }
            }
        }
    }
}

/* AVX2 where a pair of products fits int16: inputs calibrated to 7 bits (bytes 0..127:
 * 2 x 127 x 128 < 32767) or weights in -64..64 (2 x 255 x 64 < 32767; the first conv of a 7-bit
 * model, on the pixels). vpmaddubsw multiplies the panel's bytes by the broadcast int8 weights
 * and adds each pair, exactly here, and vpmaddwd by ones adds the pairs into the 4-tap int32
 * lane vpdpbusd would give: the avxvnni tile with two instructions for its one, on its layout
 * (int8 weights). 4 filters x 1 panel. On a Zen 3 core, 1.9-2.4x the int16 tile's rate at
 * layer 14's size, 1.6x at the first conv's (3 channels, 416 x 416, pooled to bits). */
__attribute__((target(XQ_AVX2_TARGET))) static void
xq_tile_avx2u7(const int8_t *wt, int kp, int nf, const uint8_t *pan, int64_t pstride,
               const int64_t *goff, int np_, int32_t *acc) {
    const __m256i ones = _mm256_set1_epi16(1);
#define XQ_DOT_U7(c, x, w) _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones))
    XQ_TILE256_BODY(XQ_DOT_U7)
#undef XQ_DOT_U7
}
#endif

#ifdef XN_HAVE_NEON
/* NEON without the dot product: bytes widened to 16 bits, vmlal into 4 lanes per pixel
 * (its 4 taps), reduced once per tile. 1 filter x 1 panel: 16 accumulators. */
static void xq_tile_neon(const int8_t *wt, int kp, int nf, const uint8_t *pan, int64_t pstride,
                         const int64_t *goff, int np_, int32_t *acc) {
    const int groups = kp / 4;
    for (int i = 0; i < nf; i++) {
        const int8_t *wr = wt + (int64_t)i * kp;
        for (int j = 0; j < np_; j++) {
            int32x4_t c[XQ_PW];
            for (int l = 0; l < XQ_PW; l++) c[l] = vdupq_n_s32(0);
            const uint8_t *b = pan + j * pstride;
            for (int g = 0; g < groups; g++) {
                int8x8_t w8 = vreinterpret_s8_s32(vdup_n_s32(xq_load4(wr + 4 * g)));
                int16x4_t w16 = vget_low_s16(vmovl_s8(w8));
                const uint8_t *bg = b + goff[g];
                for (int q = 0; q < 4; q++) {
                    uint8x16_t x = vld1q_u8(bg + 16 * q);
                    int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(x)));
                    int16x8_t hi = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(x)));
                    c[4 * q] = vmlal_s16(c[4 * q], vget_low_s16(lo), w16);
                    c[4 * q + 1] = vmlal_s16(c[4 * q + 1], vget_high_s16(lo), w16);
                    c[4 * q + 2] = vmlal_s16(c[4 * q + 2], vget_low_s16(hi), w16);
                    c[4 * q + 3] = vmlal_s16(c[4 * q + 3], vget_high_s16(hi), w16);
                }
            }
            int32_t *a = acc + ((int64_t)i * np_ + j) * XQ_PW;
            for (int l = 0; l < XQ_PW; l++) a[l] = vaddvq_s32(c[l]);
        }
    }
}

/* NEON with the dot product (sdot, signed x signed): the panel bytes are flipped to x - 128
 * (xor 0x80) and 128 * sum(w) added back per filter, so the sums equal the other paths'.
 * 1 filter x 1 panel: 4 accumulators of 4 pixels. */
#if defined(__aarch64__) && defined(__clang__)
__attribute__((target("dotprod")))
#elif defined(__aarch64__)
__attribute__((target("arch=armv8.2-a+dotprod")))
#endif
static void
xq_tile_neondot(const int8_t *wt, int kp, int nf, const uint8_t *pan, int64_t pstride,
                const int64_t *goff, int np_, int32_t *acc) {
    const int groups = kp / 4;
    const uint8x16_t flip = vdupq_n_u8(0x80);
    for (int i = 0; i < nf; i++) {
        const int8_t *wr = wt + (int64_t)i * kp;
        int32_t wsum = 0;
        for (int k = 0; k < kp; k++) wsum += wr[k];
        for (int j = 0; j < np_; j++) {
            int32x4_t c[4];
            for (int q = 0; q < 4; q++) c[q] = vdupq_n_s32(0);
            const uint8_t *b = pan + j * pstride;
            for (int g = 0; g < groups; g++) {
                int8x16_t wv = vreinterpretq_s8_s32(vdupq_n_s32(xq_load4(wr + 4 * g)));
                const uint8_t *bg = b + goff[g];
                for (int q = 0; q < 4; q++) {
                    int8x16_t x = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(bg + 16 * q), flip));
                    c[q] = vdotq_s32(c[q], x, wv);
                }
            }
            int32_t *a = acc + ((int64_t)i * np_ + j) * XQ_PW;
            int32x4_t add = vdupq_n_s32(128 * wsum);
            for (int q = 0; q < 4; q++) vst1q_s32(a + 4 * q, vaddq_s32(c[q], add));
        }
    }
}
#endif

/* The tile of `path` (see xq_tile_portable for the layout; AMX takes kr tap groups a step,
 * a constant stride apart: xq_tile_amx; the others ignore kr). */
static void xq_tile(int path, const int8_t *wt, int kp, int kr, int nf, const uint8_t *pan,
                    int64_t pstride, const int64_t *goff, int np_, int32_t *acc) {
    switch (path) {
#ifdef XN_X86
    case XQ_AMX:
        xq_tile_amx(wt, kp, kr, nf, pan, pstride, goff, np_, acc);
        return;
    case XQ_AVX512VNNI:
        xq_tile_avx512vnni(wt, kp, nf, pan, pstride, goff, np_, acc);
        return;
    case XQ_AVXVNNI:
        xq_tile_avxvnni(wt, kp, nf, pan, pstride, goff, np_, acc);
        return;
    case XQ_AVX2:
        xq_tile_avx2(wt, kp, nf, pan, pstride, goff, np_, acc);
        return;
    case XQ_AVX2U7:
        xq_tile_avx2u7(wt, kp, nf, pan, pstride, goff, np_, acc);
        return;
#endif
#ifdef XN_HAVE_NEON
    case XQ_NEONDOT:
        xq_tile_neondot(wt, kp, nf, pan, pstride, goff, np_, acc);
        return;
    case XQ_NEON:
        xq_tile_neon(wt, kp, nf, pan, pstride, goff, np_, acc);
        return;
#endif
    default:
        (void)kr;
        xq_tile_portable(wt, kp, nf, pan, pstride, goff, np_, acc);
    }
}

/* ------------------------------------------------------------------ sign bits, pooled */

/* Sign bits of a tile's outputs: the transform is monotone in the sum (mult > 0) and linear,
 * leaky and relu keep the sign, so y > 0 exactly when acc >= thr[f] (found at load by
 * evaluating the transform, Int8Conv.sign_thresholds). Word f / 64 of pixel p - mbase in m
 * (cw words a pixel) gets bit f % 64; pixels p0 .. min(p0 + 16 np_, pend) - 1. */
#ifdef XN_X86
/* A tile's filters (up to 32, f0 a multiple of their count: all in word f0 / 64): their
 * compare masks over 16 pixels set bits 0..nf-1 of 16 32-bit lanes (one OR each), then the
 * lanes are widened, shifted to bit f0 % 64 and ORed into the 16 pixels' words, mw[p cw]
 * (one word a pixel: vector loads and stores; more: one OR a pixel). */
__attribute__((target(XQ_AVX512_TARGET))) static void
xq_bits_tile_avx512(const int32_t *acc, int nf, int np_, int f0, int64_t cnt, const int32_t *thr,
                    uint64_t *mw, int cw) {
    const __m128i sh = _mm_cvtsi32_si128(f0 & 63);
    for (int64_t j = 0; j < cnt; j += 16) {
        const __mmask16 live =
            cnt - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cnt - j)) - 1);
        __m512i b = _mm512_setzero_si512();
        for (int i = 0; i < nf; i++) {
            const int32_t *a = acc + (int64_t)i * np_ * XQ_PW + j;
            __mmask16 m = _mm512_mask_cmpge_epi32_mask(live, _mm512_maskz_loadu_epi32(live, a),
                                                       _mm512_set1_epi32(thr[f0 + i]));
            b = _mm512_mask_or_epi32(b, m, b, _mm512_set1_epi32((int)(1u << i)));
        }
        if (cw > 1) {
            uint32_t lanes[16];
            _mm512_storeu_si512(lanes, b);
            const int64_t n = cnt - j < 16 ? cnt - j : 16;
            for (int64_t l = 0; l < n; l++) mw[(j + l) * cw] |= (uint64_t)lanes[l] << (f0 & 63);
            continue;
        }
        __m512i lo = _mm512_sll_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(b)), sh);
        __m512i hi = _mm512_sll_epi64(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(b, 1)), sh);
        lo = _mm512_or_si512(lo, _mm512_maskz_loadu_epi64((__mmask8)live, mw + j));
        hi = _mm512_or_si512(hi, _mm512_maskz_loadu_epi64((__mmask8)(live >> 8), mw + j + 8));
        _mm512_mask_storeu_epi64(mw + j, (__mmask8)live, lo);
        _mm512_mask_storeu_epi64(mw + j + 8, (__mmask8)(live >> 8), hi);
    }
}

/* The same with 256-bit registers, 8 pixels at a time. */
__attribute__((target(XQ_AVX2_TARGET))) static void
xq_bits_tile_avx2(const int32_t *acc, int nf, int np_, int f0, int64_t cnt, const int32_t *thr,
                  uint64_t *mw, int cw) {
    const __m128i sh = _mm_cvtsi32_si128(f0 & 63);
    int64_t j = 0;
    for (; j + 8 <= cnt; j += 8) {
        __m256i b = _mm256_setzero_si256();
        for (int i = 0; i < nf; i++) {
            const int32_t *a = acc + (int64_t)i * np_ * XQ_PW + j;
            const __m256i t = _mm256_set1_epi32(thr[f0 + i] - 1); /* a >= t <=> a > t - 1 */
            __m256i gt = _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)a), t);
            b = _mm256_or_si256(b, _mm256_and_si256(gt, _mm256_set1_epi32((int)(1u << i))));
        }
        if (cw > 1) {
            uint32_t lanes[8];
            _mm256_storeu_si256((__m256i *)lanes, b);
            for (int l = 0; l < 8; l++) mw[(j + l) * cw] |= (uint64_t)lanes[l] << (f0 & 63);
            continue;
        }
        __m256i lo = _mm256_sll_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(b)), sh);
        __m256i hi = _mm256_sll_epi64(_mm256_cvtepu32_epi64(_mm256_extracti128_si256(b, 1)), sh);
        __m256i *w = (__m256i *)(mw + j);
        _mm256_storeu_si256(w, _mm256_or_si256(lo, _mm256_loadu_si256(w)));
        _mm256_storeu_si256(w + 1, _mm256_or_si256(hi, _mm256_loadu_si256(w + 1)));
    }
    for (; j < cnt; j++)
        for (int i = 0; i < nf; i++)
            mw[j * cw] |= acc[(int64_t)i * np_ * XQ_PW + j] >= thr[f0 + i]
                         ? (uint64_t)1 << ((f0 + i) & 63)
                         : 0;
}
#endif

static void xq_bits_tile(int path, const int32_t *acc, int nf, int np_, int f0, int64_t p0,
                         int64_t pend, const int32_t *thr, uint64_t *m, int cw, int64_t mbase) {
    int64_t cnt = pend - p0;
    if (cnt > (int64_t)np_ * XQ_PW) cnt = (int64_t)np_ * XQ_PW;
#ifdef XN_X86
    /* the SIMD tiles need the tile's filters in one word (f0 a multiple of 16 or 32, at
     * most as many filters) */
    if ((path == XQ_AVX512VNNI || path == XQ_AMX) && (f0 & 63) + nf <= 64) {
        xq_bits_tile_avx512(acc, nf, np_, f0, cnt, thr, m + (p0 - mbase) * cw + (f0 >> 6), cw);
        return;
    }
    if ((path == XQ_AVX2 || path == XQ_AVXVNNI) && (f0 & 63) + nf <= 64) {
        xq_bits_tile_avx2(acc, nf, np_, f0, cnt, thr, m + (p0 - mbase) * cw + (f0 >> 6), cw);
        return;
    }
#endif
    (void)path;
    for (int i = 0; i < nf; i++) {
        const int32_t *a = acc + (int64_t)i * np_ * XQ_PW;
        const int f = f0 + i;
        const int32_t t = thr[f];
        const uint64_t bit = (uint64_t)1 << (f & 63);
        uint64_t *mw = m + (p0 - mbase) * cw + (f >> 6);
        for (int64_t j = 0; j < cnt; j++) mw[j * cw] |= a[j] >= t ? bit : 0;
    }
}

/* One pooled row of sign bits: the OR of each window's in-image taps (darknet's maxpool
 * ignores taps outside the image; the max of signs is the OR of their bits) over nr rows of
 * ow pixels of m, into dst[px * cw + word] for px < pw. */
static void xq_pool_bits_row(const uint64_t *m, int cw, int nr, int ow, int size, int sx, int pw,
                             uint64_t *dst) {
    if (cw == 1 && nr <= 2 && size == 2 && sx == 2 && 2 * pw <= ow + 1) {
        /* the common 2x2 / 2 on one word a pixel (a loop GCC vectorises); an odd last column */
        const uint64_t *m1 = nr == 2 ? m + ow : m;
        const int full = 2 * pw <= ow ? pw : ow / 2;
        for (int px = 0; px < full; px++)
            dst[px] = m[2 * px] | m[2 * px + 1] | m1[2 * px] | m1[2 * px + 1];
        if (full < pw) dst[full] = m[2 * full] | m1[2 * full];
        return;
    }
    for (int px = 0; px < pw; px++) {
        for (int wd = 0; wd < cw; wd++) {
            uint64_t v = 0;
            for (int r = 0; r < nr; r++)
                for (int kx = 0; kx < size; kx++) {
                    int ox = px * sx + kx;
                    if (ox < ow) v |= m[((int64_t)r * ow + ox) * cw + wd];
                }
            dst[(int64_t)px * cw + wd] = v;
        }
    }
}

#endif /* XNORYOLO_XN_INT8_H */
