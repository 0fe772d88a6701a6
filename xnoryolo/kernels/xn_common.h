/* What every kernel header shares (xconv_simd.h includes them all, in dependency order): the
 * instruction-set switches, the ISA and activation codes, the tile geometry and small helpers.
 *
 * XN_X86 and XN_HAVE_NEON say which variants are compiled; everything outside them is plain C
 * that every platform compiles and may call (tests/kernels/test_neon_emulated.py builds the headers
 * and the module's C with the x86 macros off).
 *
 * The bit layout (words, window rows, pixel panels, the AVX2 nibble split) is written down
 * once, in kernels/README.md; every variant computes identical integers. */
#ifndef XNORYOLO_XN_COMMON_H
#define XNORYOLO_XN_COMMON_H

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
/* tests only: plain-C stand-ins for the NEON intrinsics used here (tests/helpers/neon_emu.h), so the
 * NEON code path is checked on machines without an arm64 CPU */
#define XN_HAVE_NEON 1
#include "neon_emu.h"
#endif

enum { XN_PORTABLE = 0, XN_POPCNT = 1, XN_AVX2 = 2, XN_AVX512 = 3, XN_NEON = 4, XN_NISA = 5 };
enum { XN_LINEAR = 0, XN_LEAKY = 1, XN_RELU = 2, XN_LOGISTIC = 3 };

/* Tile of the binary GEMM handled by one call (one OpenMP work item). Multiples of 4. */
#define XN_TF 16
#define XN_TP 64

/* Pixels per panel of window rows (kernels/README.md, "Pixel panels"): word k of pixel p
 * at panel p / XN_PW, row k, lane p % XN_PW. */
#define XN_PW 8

#if defined(__GNUC__) && !defined(__clang__)
#define XN_NOCONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define XN_NOCONTRACT
#endif

/* Keeps the compiler from hoisting the popcount-peak work out of its repetition loop. */
#define XN_BARRIER(p) __asm__ volatile("" : : "r"(p) : "memory")

#ifdef XN_X86
#define XN_AVX512_TARGET "avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt"
#endif

static inline int xn_popcount64_portable(uint64_t v) {
    /* SWAR popcount: no dependence on compiler builtins or CPU instructions. */
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((v * 0x0101010101010101ULL) >> 56);
}

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

#endif /* XNORYOLO_XN_COMMON_H */
