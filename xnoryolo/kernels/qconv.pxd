# Contract of the int8 convolution kernel (see kernels/README.md, "int8 layers").
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t


cdef extern from "xn_int8.h" nogil:
    enum:
        XQ_PW
        XQ_PORTABLE
        XQ_AVX2
        XQ_AVXVNNI
        XQ_AVX512VNNI
        XQ_NEON
        XQ_NEONDOT
        XQ_AMX
        XQ_NPATH
        XQ_AVX2U7
        XN_LINEAR
        XN_LEAKY
        XN_RELU

    int xq_path_supported(int path)
    void xq_quantize(const float *x, uint8_t *q, int64_t n, float inv, int zero, int top)
    void xq_quantize_path(int path, const float *x, uint8_t *q, int64_t n, float inv, int zero,
                          int top)
    void xq_im2col_rows(const uint8_t *q, int cg, int h, int w, int size, int sy, int sx,
                        int pad, int dil, int ow, int64_t p0, int np_, int kp, uint8_t zero,
                        uint8_t *rows, int ld)
    void xq_interleave(const uint8_t *rows, int ld, int np_, int kp, uint8_t *pan)
    void xq_quads_row(const uint8_t *q, int c, int h, int w, int pad, int wp, int r,
                      uint8_t zero, uint8_t *xr)
    void xq_tile(int path, const int8_t *wt, int kp, int kr, int nf, const uint8_t *pan,
                 int64_t pstride, const int64_t *goff, int np_, int32_t *acc)
    void xq_store_tile(int path, const int32_t *acc, int nf, int np_, int f0, int64_t p0,
                       int64_t pend, int64_t n, const int32_t *corr, const float *mult,
                       const float *bias, int act, float *out, int32_t *out_int)
    void xq_store_tile_u8(int path, const int32_t *acc, int nf, int np_, int f0, int64_t p0,
                          int64_t pend, int64_t n, const int32_t *corr, const float *mult,
                          const float *bias, int act, float inv, int zero, int top,
                          float *tmp, uint8_t *out)
    void xq_max_i32(int path, int32_t *dst, const int32_t *src, int64_t n)
    void xq_pooled_row_u8(int path, const int32_t *v, int ow, int32_t corr, float mult,
                          float bias, int act, float inv, int zero, int top, int size, int sx,
                          int pw, float *tmp, int32_t *m, uint8_t *out)
    void xq_maxpool_u8(const uint8_t *x, int h, int w, int size, int sy, int sx, int off,
                       int oh, int ow, uint8_t *y)
    void xq_bits_tile(int path, const int32_t *acc, int nf, int np_, int f0, int64_t p0,
                      int64_t pend, const int32_t *thr, uint64_t *m, int cw, int64_t mbase)
    void xq_pool_bits_row(const uint64_t *m, int cw, int nr, int ow, int size, int sx, int pw,
                          uint64_t *dst)


cdef class Int8Conv:
    cdef readonly int c, h, w, filters, size, stride_y, stride_x, padding, dilation, groups
    cdef readonly int out_h, out_w, k, kp, kr, fgp, threads, path, zero, block, tf
    cdef readonly int top          # the input's largest byte: 255, or 127 (7 bits)
    cdef int tpath                 # the tile's path: path, or XQ_AVX2U7 where pairs fit int16
    cdef readonly bint direct      # thin input: no im2col, the tiles read quad pixels
    cdef int hp, wp, nb            # the quad-pixel input's rows, quads a row, channel blocks
    cdef int shifts                # copies of it, shifted by one kernel column each (AMX)
    cdef readonly float in_scale
    cdef readonly str activation
    cdef int act
    cdef float inv
    cdef object activate_
    # (groups, fgp, kp): rows padded to 16 filters, taps to 4; direct: (1, fgp, nb*size*size*4),
    # taps in (block, ky, kx, channel) order; the avx2 tile: as int16 (2 kp bytes a row)
    cdef int8_t[:, :, ::1] wt
    cdef int64_t[::1] goff         # per tap group: its offset in a panel / in the quad pixels
    cdef uint8_t[:, ::1] xi_       # (nb hp, 4 wp): the input as quad pixels (direct)
    cdef int32_t[::1] corr_
    cdef float[::1] mult_, bias_
    cdef int32_t[::1] thr_         # sign thresholds on the raw sums (pooled bits)
    cdef uint8_t[:, ::1] q_        # (c, h*w) quantised input
    cdef uint8_t[:, ::1] pan_      # per thread: one block of panels
    cdef uint8_t[:, ::1] rows_     # per thread: the block's im2col rows
    cdef int32_t[:, ::1] acc_      # per thread: one tile of sums
    cdef float[:, ::1] tmp_        # per thread: one row of a tile as floats (bytes output)
    cdef object xin_               # the input bytes of the current call
    cdef const uint8_t *_quantized(self, x) except NULL
    cdef const uint8_t *_quads(self, const uint8_t *qp) noexcept nogil
    cdef object _run(self, x, int mode, float out_inv, int out_zero, int out_top)
    cdef void _bytes_pooled_direct(self, const uint8_t *qp, float inv, int out_zero,
                                   int out_top, int ps, uint8_t[:, :, ::1] out)
    cdef void _run_direct(self, const uint8_t *qp, int mode, float out_inv, int out_zero,
                          int out_top, float *fo, int32_t *io, uint8_t *bo) noexcept
