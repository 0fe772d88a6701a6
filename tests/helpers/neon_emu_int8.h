/* Plain-C stand-ins for the NEON intrinsics of the int8 kernel (kernels/xn_int8.h), beside
 * neon_emu.h's, so its NEON paths (with and without sdot) are compiled and checked on x86
 * (tests/kernels/test_int8_kernels.py). Little-endian lanes; semantics as in the Arm
 * intrinsics reference for each name. */
#ifndef XNORYOLO_NEON_EMU_INT8_H
#define XNORYOLO_NEON_EMU_INT8_H
#include <stdint.h>
#include <string.h>

typedef struct { int8_t v[8]; } int8x8_t;
typedef struct { int8_t v[16]; } int8x16_t;
typedef struct { int16_t v[4]; } int16x4_t;
typedef struct { int16_t v[8]; } int16x8_t;
typedef struct { int32_t v[2]; } int32x2_t;
typedef struct { int32_t v[4]; } int32x4_t;
typedef struct { uint8_t v[8]; } uint8x8_t;

static inline int32x4_t vdupq_n_s32(int32_t x) {
    int32x4_t r = {{x, x, x, x}};
    return r;
}
static inline int32x2_t vdup_n_s32(int32_t x) {
    int32x2_t r = {{x, x}};
    return r;
}
static inline uint8x16_t vdupq_n_u8(uint8_t x) {
    uint8x16_t r;
    memset(r.v, x, 16);
    return r;
}
static inline int8x8_t vreinterpret_s8_s32(int32x2_t a) {
    int8x8_t r;
    memcpy(r.v, a.v, 8);
    return r;
}
static inline int8x16_t vreinterpretq_s8_s32(int32x4_t a) {
    int8x16_t r;
    memcpy(r.v, a.v, 16);
    return r;
}
static inline int8x16_t vreinterpretq_s8_u8(uint8x16_t a) {
    int8x16_t r;
    memcpy(r.v, a.v, 16);
    return r;
}
static inline int16x8_t vreinterpretq_s16_u16(uint16x8_t a) {
    int16x8_t r;
    memcpy(r.v, a.v, 16);
    return r;
}
static inline uint8x16_t vld1q_u8(const uint8_t *p) {
    uint8x16_t r;
    memcpy(r.v, p, 16);
    return r;
}
static inline void vst1q_s32(int32_t *p, int32x4_t a) { memcpy(p, a.v, 16); }
static inline uint8x8_t vget_low_u8(uint8x16_t a) {
    uint8x8_t r;
    memcpy(r.v, a.v, 8);
    return r;
}
static inline uint8x8_t vget_high_u8(uint8x16_t a) {
    uint8x8_t r;
    memcpy(r.v, a.v + 8, 8);
    return r;
}
static inline int16x4_t vget_low_s16(int16x8_t a) {
    int16x4_t r;
    memcpy(r.v, a.v, 8);
    return r;
}
static inline int16x4_t vget_high_s16(int16x8_t a) {
    int16x4_t r;
    memcpy(r.v, a.v + 4, 8);
    return r;
}
static inline uint16x8_t vmovl_u8(uint8x8_t a) {
    uint16x8_t r;
    int i;
    for (i = 0; i < 8; i++) r.v[i] = a.v[i];
    return r;
}
static inline int16x8_t vmovl_s8(int8x8_t a) {
    int16x8_t r;
    int i;
    for (i = 0; i < 8; i++) r.v[i] = a.v[i];
    return r;
}
static inline int32x4_t vmlal_s16(int32x4_t a, int16x4_t b, int16x4_t c) {
    int i;
    for (i = 0; i < 4; i++) a.v[i] += (int32_t)b.v[i] * c.v[i];
    return a;
}
static inline int32x4_t vaddq_s32(int32x4_t a, int32x4_t b) {
    int i;
    for (i = 0; i < 4; i++) a.v[i] += b.v[i];
    return a;
}
static inline int32_t vaddvq_s32(int32x4_t a) { return a.v[0] + a.v[1] + a.v[2] + a.v[3]; }
/* sdot: each 32-bit lane adds the products of its 4 signed bytes */
static inline int32x4_t vdotq_s32(int32x4_t a, int8x16_t b, int8x16_t c) {
    int i, j;
    for (i = 0; i < 4; i++)
        for (j = 0; j < 4; j++) a.v[i] += (int32_t)b.v[4 * i + j] * c.v[4 * i + j];
    return a;
}
#endif /* XNORYOLO_NEON_EMU_INT8_H */
