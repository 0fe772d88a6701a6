/* SIMD variants of the xnoryolo convolution kernels, one per instruction set, chosen at run time.
 *
 * Built without -march flags: every x86 variant carries its own target attribute, so the module
 * loads on any x86-64 CPU and only calls what __builtin_cpu_supports reports. The bit layout is
 * described in kernels/README.md; every variant computes identical integers.
 *
 * The output transform (int -> float, x scale, + bias, activation) lives in one portable function
 * compiled without FMA contraction, so results do not depend on the variant either.
 *
 * One header per concern, in dependency order (each includes what it uses):
 *   xn_common.h     ISA switches and codes, tile geometry, run-time ISA choice, helpers
 *   xn_transform.h  output transform: portable rows, vector epilogue forms, sign-bit output
 *   xn_bgemm.h      binary GEMM tiles per ISA (xor + popcount), fused epilogues, one tile call
 *   xn_bitpack.h    sign-bit packing, bit-im2col into pixel panels, AVX2 nibble split
 *   xn_direct.h     direct float convolution for thin inputs (the first layer)
 *   xn_sgemm.h      float GEMM on packed panels
 *   xn_pool.h       maxpool on floats and on sign bits
 *   xn_peak.h       xor + popcount throughput loop (bench)
 * xconv.pxd declares, from this header, what xconv.pyx calls. */
#ifndef XNORYOLO_XCONV_SIMD_H
#define XNORYOLO_XCONV_SIMD_H

#include "xn_common.h"
#include "xn_transform.h"
#include "xn_bgemm.h"
#include "xn_bitpack.h"
#include "xn_direct.h"
#include "xn_sgemm.h"
#include "xn_pool.h"
#include "xn_peak.h"

#endif /* XNORYOLO_XCONV_SIMD_H */
