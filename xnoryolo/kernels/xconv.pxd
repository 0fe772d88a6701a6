# Contract of the xnoryolo convolution kernels (see kernels/README.md for the bit layout).
from libc.stdint cimport int32_t, int64_t, uint64_t


cdef extern from "xconv_simd.h" nogil:
    enum:
        XN_PORTABLE
        XN_POPCNT
        XN_AVX2
        XN_AVX512
        XN_NEON
        XN_NISA
        XN_LINEAR
        XN_LEAKY
        XN_RELU
        XN_LOGISTIC
        XN_TF
        XN_TFB
        XN_ROWBUF
        XN_TP
        XN_PW
        XN_GF
        XN_GN
        XN_KC
        XN_PACK_ROWS
        XN_MC

    ctypedef struct xn_bits_out:
        uint64_t *data
        const int32_t *limit
        int out_w, wp, pad, cw

    int xn_isa_supported(int isa)
    int xn_best_isa()
    int xn_fused_epilogue(int isa, int act, int kw)
    void xn_split_nibbles(uint64_t *lo, uint64_t *hi, size_t n)
    void xn_binary_tile(int isa, const uint64_t *A, const uint64_t *B, int kw, int K, int f0,
                        int nf, int p0, int np, int F, int N, const float *scale,
                        const float *bias, int act, int32_t *dot_out, float *out,
                        const xn_bits_out *bits)
    void xn_bias_act_row(float *row, int n, float bias, int act)
    void xn_pack_row(int isa, const float *x, size_t plane, int c, int w, uint64_t *dst, int cw)
    void xn_im2col_row(int isa, const uint64_t *packed, int wp, int cw, int c, int size,
                       int iy0, int stride_x, int out_w, int p0, uint64_t *cols, int kw)
    void xn_maxpool_plane(const float *x, int h, int w, int size, int sy, int sx, int off,
                          int oh, int ow, float *out)
    void xn_maxpool_rows(const float *x, int h, int w, int size, int sy, int sx, int off,
                         int oy0, int oy1, int ow, float *out)
    void xn_maxpool_bits_row(const uint64_t *inp, int iwp, int ipad, int cw, int h, int w,
                             int size, int sy, int sx, int off, int oy, int ow, uint64_t *out)
    void xn_direct_row(int isa, const float *xp, int c, int hp, int wp, const float *W, int F,
                       int size, int iy0, int out_w, float *out, size_t plane,
                       const float *bias, int act)
    void xn_pack_b_rows(const float *rows, int nrows, int ldr, int N, int k0, int kstride,
                        float *panels)
    void xn_sgemm_block(int isa, const float *Ap, size_t astride, const float *Bp, int q,
                        int nnb, int kstride, int kc, int nf, int n, float *C, int ldc,
                        int accumulate)
    uint64_t xn_popcount_peak(int isa, const uint64_t *buf, int nwords, long reps)


cdef void pack_activations(int isa, const float[:, :, ::1] x, int pad_t, int pad_l,
                           uint64_t[:, :, ::1] packed, int threads) noexcept nogil

cdef class BinaryConv:
    cdef readonly int c, h, w, filters, size, stride_y, stride_x, padding
    cdef readonly int out_h, out_w, k, kw, cw, fpad, isa, threads, team
    cdef readonly str activation
    cdef readonly bint emits_bits
    cdef int act
    cdef object activate_  # the caller's function for an activation not fused here, or None
    cdef uint64_t[:, ::1] weights
    cdef float[::1] scale_, bias_
    cdef int32_t[::1] limit_
    cdef tuple _pshape
    cdef object _run(self, x, bint want_dot, bint want_float, bits, int bits_pad)


cdef class MaxPool:
    cdef readonly int c, h, w, size, stride_y, stride_x, padding, out_h, out_w, threads, isa
    cdef readonly int team, team_bits
    cdef void _bits_row(self, const uint64_t *inp, int oy, uint64_t *dst) noexcept nogil


cdef class FloatConv:
    cdef readonly int c, h, w, filters, size, stride_y, stride_x, padding, dilation, groups
    cdef readonly int out_h, out_w, k, threads, isa
    cdef readonly bint direct
    cdef readonly str activation
    cdef int act
    cdef object activate_  # the caller's function for an activation not fused here, or None
    cdef object weights
    cdef float[:, ::1] wdirect
    cdef readonly bint own_gemm
    cdef float[:, :, :, ::1] apacked
    cdef float[::1] bias_
    cdef int _conv_pool(self, x, MaxPool pool, float *fout, uint64_t *bout, int64_t bwp,
                        int out_pad) except -1
