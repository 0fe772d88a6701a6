/* Plain-C stand-ins for the few NEON intrinsics the kernel headers (kernels/xn_*.h) use, so
 * their NEON path can be compiled and checked on x86 (tests/kernels/test_neon_emulated.py).
 * Little-endian lanes, as on arm64 Linux. Semantics follow the Arm intrinsics reference for
 * each name. */
#ifndef XNORYOLO_NEON_EMU_H
#define XNORYOLO_NEON_EMU_H
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct { uint8_t v[16]; } uint8x16_t;
typedef struct { uint16_t v[8]; } uint16x8_t;
typedef struct { uint32_t v[4]; } uint32x4_t;
typedef struct { uint64_t v[2]; } uint64x2_t;

static inline uint64x2_t vdupq_n_u64(uint64_t x) {
    uint64x2_t r = {{x, x}};
    return r;
}
static inline uint16x8_t vdupq_n_u16(uint16_t x) {
    uint16x8_t r;
    int i;
    for (i = 0; i < 8; i++) r.v[i] = x;
    return r;
}
static inline uint64x2_t vld1q_u64(const uint64_t *p) {
    uint64x2_t r = {{p[0], p[1]}};
    return r;
}
static inline uint8x16_t vreinterpretq_u8_u64(uint64x2_t a) {
    uint8x16_t r;
    memcpy(r.v, a.v, 16);
    return r;
}
static inline uint8x16_t veorq_u8(uint8x16_t a, uint8x16_t b) {
    int i;
    for (i = 0; i < 16; i++) a.v[i] ^= b.v[i];
    return a;
}
static inline uint8x16_t vcntq_u8(uint8x16_t a) {
    int i;
    for (i = 0; i < 16; i++) a.v[i] = (uint8_t)__builtin_popcount(a.v[i]);
    return a;
}
/* pairwise add of adjacent bytes, accumulated into 16-bit lanes */
static inline uint16x8_t vpadalq_u8(uint16x8_t a, uint8x16_t b) {
    int i;
    for (i = 0; i < 8; i++) a.v[i] = (uint16_t)(a.v[i] + b.v[2 * i] + b.v[2 * i + 1]);
    return a;
}
static inline uint32x4_t vpaddlq_u16(uint16x8_t a) {
    uint32x4_t r;
    int i;
    for (i = 0; i < 4; i++) r.v[i] = (uint32_t)a.v[2 * i] + a.v[2 * i + 1];
    return r;
}
static inline uint64x2_t vpaddlq_u32(uint32x4_t a) {
    uint64x2_t r = {{(uint64_t)a.v[0] + a.v[1], (uint64_t)a.v[2] + a.v[3]}};
    return r;
}
static inline uint64x2_t vaddq_u64(uint64x2_t a, uint64x2_t b) {
    a.v[0] += b.v[0];
    a.v[1] += b.v[1];
    return a;
}
static inline uint16x8_t vaddq_u16(uint16x8_t a, uint16x8_t b) {
    int i;
    for (i = 0; i < 8; i++) a.v[i] = (uint16_t)(a.v[i] + b.v[i]);
    return a;
}
#define vgetq_lane_u64(a, lane) ((a).v[(lane)])

/* float32x4 lanes, for the direct float convolution (kernels/xn_direct.h) */
typedef struct { float v[4]; } float32x4_t;

static inline float32x4_t vdupq_n_f32(float x) {
    float32x4_t r = {{x, x, x, x}};
    return r;
}
static inline float32x4_t vld1q_f32(const float *p) {
    float32x4_t r;
    memcpy(r.v, p, sizeof(r.v));
    return r;
}
static inline void vst1q_f32(float *p, float32x4_t a) { memcpy(p, a.v, sizeof(a.v)); }
/* a + b * c, fused (one rounding), as FMLA */
static inline float32x4_t vfmaq_f32(float32x4_t a, float32x4_t b, float32x4_t c) {
    int i;
    for (i = 0; i < 4; i++) a.v[i] = fmaf(b.v[i], c.v[i], a.v[i]);
    return a;
}
static inline float32x4_t vaddq_f32(float32x4_t a, float32x4_t b) {
    int i;
    for (i = 0; i < 4; i++) a.v[i] = a.v[i] + b.v[i];
    return a;
}
static inline float32x4_t vmulq_f32(float32x4_t a, float32x4_t b) {
    int i;
    for (i = 0; i < 4; i++) a.v[i] = a.v[i] * b.v[i];
    return a;
}
/* lane mask: all ones where a > b (ordered: NaN compares false) */
static inline uint32x4_t vcgtq_f32(float32x4_t a, float32x4_t b) {
    uint32x4_t r;
    int i;
    for (i = 0; i < 4; i++) r.v[i] = a.v[i] > b.v[i] ? 0xFFFFFFFFu : 0u;
    return r;
}
/* bitwise select: bits of a where mask is 1, of b where it is 0 */
static inline float32x4_t vbslq_f32(uint32x4_t mask, float32x4_t a, float32x4_t b) {
    float32x4_t r;
    uint32_t x, y;
    int i;
    for (i = 0; i < 4; i++) {
        memcpy(&x, &a.v[i], 4);
        memcpy(&y, &b.v[i], 4);
        x = (x & mask.v[i]) | (y & ~mask.v[i]);
        memcpy(&r.v[i], &x, 4);
    }
    return r;
}

#endif
