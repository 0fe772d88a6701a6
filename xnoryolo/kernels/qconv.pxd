# Contract of the int8 convolution kernel (see kernels/README.md, "int8 layers").
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t


cdef extern from "xn_int8.h" nogil:
    enum:
        XQ_PW
        XQ_PORTABLE
        XQ_AVX2
        XQ_AVXVNNI
        XQ_AVX512VNNI
        XQ_NEON
        XQ_NEONDOT
        XQ_NPATH
        XN_LINEAR
        XN_LEAKY
        XN_RELU

    int xq_path_supported(int path)
    void xq_quantize(const float *x, uint8_t *q, int64_t n, float inv, int zero)
    void xq_im2col_panel(const uint8_t *q, int cg, int h, int w, int size, int sy, int sx,
                         int pad, int dil, int ow, int64_t n, int kp, uint8_t zero, int64_t pb,
                         uint8_t *pan)
    void xq_tile(int path, const int8_t *wt, int kp, int nf, const uint8_t *pan, int np_,
                 int32_t *acc)
    void xq_store_tile(const int32_t *acc, int nf, int np_, int f0, int64_t p0, int64_t n,
                       const int32_t *corr, const float *mult, const float *bias, int act,
                       float *out, int32_t *out_int)


cdef class Int8Conv:
    cdef readonly int c, h, w, filters, size, stride_y, stride_x, padding, dilation, groups
    cdef readonly int out_h, out_w, k, kp, fgp, threads, path, zero
    cdef readonly float in_scale
    cdef readonly str activation
    cdef int act
    cdef float inv
    cdef object activate_
    cdef int8_t[:, :, ::1] wt      # (groups, fgp, kp): rows padded to 8 filters, taps to 4
    cdef int32_t[::1] corr_
    cdef float[::1] mult_, bias_
    cdef uint8_t[:, ::1] q_        # (c, h*w) quantised input
    cdef uint8_t[:, ::1] pan_      # per thread: one block of panels
    cdef int32_t[:, ::1] acc_      # per thread: one tile of sums
    cdef object _run(self, x, bint want_int)
