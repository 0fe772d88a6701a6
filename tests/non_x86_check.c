/* The kernels header as a non-x86 (arm64) build sees it: the libc headers first, then the x86
 * macros removed, so XN_X86 is off and the NEON path (emulated, tests/neon_emu.h) is on.
 * Compiled with -Wall -Werror -fsyntax-only by tests/test_neon_emulated.py: nothing outside
 * `#ifdef XN_X86` may use an x86-only name. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#undef __x86_64__
#undef __i386__
#define XN_EMULATE_NEON 1
#include "xconv_simd.h"

int main(void) { return xn_fused_epilogue(xn_best_isa(), XN_LEAKY, 1); }
