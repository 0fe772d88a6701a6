/* The kernels as a non-x86 (arm64) build sees them: the libc headers first, then the x86
 * macros removed, so XN_X86 is off and the NEON path (emulated, tests/neon_emu.h) is on.
 * Compiled -fsyntax-only by tests/test_neon_emulated.py, two ways:
 * - alone, with -Wall -Werror: nothing outside `#ifdef XN_X86` may use an x86-only name;
 * - with XN_GENERATED_C naming the C file Cython generates from xconv.pyx, with
 *   -Werror=implicit-function-declaration: every kernel the module calls must be declared on
 *   every platform (a name defined only under XN_X86 compiles there but fails the arm64 import
 *   as an undefined symbol). CPython's headers come first there, while the macros still describe
 *   the real platform. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef XN_GENERATED_C
#include <Python.h>
#endif
#undef __x86_64__
#undef __i386__
#define XN_EMULATE_NEON 1
#ifdef XN_GENERATED_C
#include XN_GENERATED_C
#else
#include "xconv_simd.h"

int main(void) { return xn_fused_epilogue(xn_best_isa(), XN_LEAKY, 1); }
#endif
