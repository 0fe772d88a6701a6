"""Fast convolution kernels: XNOR (bit-packed) and float, matching detector.ops.

The bit layout is written down in kernels/README.md. In short: activations are packed per pixel
along channels into 64-bit words (bit c%64 of word c//64 is 1 iff x[c] > 0), with a border of
all-zero pixels (= input -1) for padding; each output pixel's window is then concatenated into
K = size*size*C bits, tap-major (ky, kx, c), stored in panels of 8 pixels; weights use the same
bit order. dot = K - 2*popcount(weights XOR window) counts only real taps because unused bits
are zero in both operands.
"""

from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.string cimport memcpy, memset

cimport numpy as cnp

import time

import numpy as np

from xnoryolo.kernels.blas import blas_threads

_ISA_NAMES = ("portable", "popcnt", "avx2", "avx512", "neon")
cnp.import_array()

_EMPTY3 = np.zeros((1, 1, 1), dtype=np.float32)
_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_NATIVE_ACT = {"linear": XN_LINEAR, "leaky": XN_LEAKY, "relu": XN_RELU, "logistic": XN_LOGISTIC}


cdef object _fallback(str activation, activate):
    """The function computing an activation the kernels do not fuse (None for those they do):
    the caller's `activate(y, name)`, required when the activation needs it."""
    if activation in _NATIVE_ACT:
        return None
    if activate is None:
        raise ValueError(f"activation {activation!r} is not fused in the kernels: pass "
                         "activate=(a function (y, name) -> activated y) to compute it")
    return activate


def isa_names():
    """Names of every SIMD path this build knows, in order of their codes."""
    return _ISA_NAMES


def isa_supported(str name):
    """Whether this CPU (and build) can run the named path."""
    return bool(xn_isa_supported(_ISA_NAMES.index(name)))


def best_isa():
    """The fastest path this CPU supports."""
    return _ISA_NAMES[xn_best_isa()]


def _isa_code(str name):
    if name not in _ISA_NAMES:
        raise ValueError(f"unknown SIMD path {name!r}: use one of {', '.join(_ISA_NAMES)}")
    code = _ISA_NAMES.index(name)
    if not xn_isa_supported(code):
        raise ValueError(f"SIMD path {name!r} is not supported by this CPU")
    return code


cdef inline int _round_up(int v, int m) noexcept nogil:
    return (v + m - 1) // m * m


# Below ~40 us of work one thread does a binary layer alone: waking an idle worker costs
# ~25 us on the 2-core dev VM, more than its share. The work is timed by a nominal one-thread
# rate per SIMD path (bit-MACs per us), so slower paths hand medium layers to the team
# (yolov3-tiny's 1x1 conv 13, 44 M bit-MACs: AVX2 one thread 88 us, two 50 us; AVX-512 18 us
# alone; conv 18, 5.5 M: two threads 15 -> 40 us on AVX2).
_MIN_TEAM_US = 40.0
_BIT_MACS_PER_US = {"portable": 3.0e4, "popcnt": 1.4e5, "avx2": 6.0e5, "avx512": 2.5e6,
                    "neon": 1.3e5}
_MIN_TEAM_POOL_TAPS = 128 * 1024
# a pool over sign bits ORs one word per 64 channels a tap: yolov3-tiny's largest (32
# channels, 208 -> 104) is 43 K word taps, 31 us alone and 85 us on two threads (the
# team's wake-up costs more than the work)
_MIN_TEAM_POOL_WORDS = 128 * 1024


cdef int _check_bits_buffer(object out, int c, int h, int w, int pad) except -1:
    """Raise unless `out` is a C-contiguous uint64 (>= h + pad, >= w + pad, ceil(c/64))
    packed image."""
    cdef cnp.npy_intp *dims
    if cnp.PyArray_Check(out) and cnp.PyArray_TYPE(<cnp.ndarray>out) == cnp.NPY_UINT64 and \
            cnp.PyArray_NDIM(<cnp.ndarray>out) == 3 and \
            cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>out) and pad >= 0:
        dims = cnp.PyArray_DIMS(<cnp.ndarray>out)
        if dims[2] == (c + 63) // 64 and dims[0] >= h + pad and dims[1] >= w + pad:
            return 0
    raise ValueError(f"bits buffer {getattr(out, 'shape', None)} (pad {pad}) cannot hold "
                     f"{c}x{h}x{w} (C-contiguous uint64)")


cdef inline int _chunk(int n, int threads) noexcept nogil:
    # dynamic schedule in ~8 chunks per thread: balances a descheduled thread's share
    # without paying the scheduler per iteration
    return max(1, n // (8 * threads))


cdef void pack_activations(int isa, const float[:, :, ::1] x, int pad_t, int pad_l,
                           uint64_t[:, :, ::1] packed, int threads) noexcept nogil:
    """Sign bits of x (C,H,W) into packed (Hp, Wp, CW); the border is left as the caller set
    it (zero = input -1)."""
    cdef int c = x.shape[0], h = x.shape[1], w = x.shape[2]
    cdef int y
    for y in prange(h, num_threads=threads, schedule="dynamic", chunksize=_chunk(h, threads)):
        xn_pack_row(isa, &x[0, y, 0], <size_t>h * w, c, w, &packed[y + pad_t, pad_l, 0],
                    packed.shape[2])


def pack_weights(signs):
    """signs int8 (F, C, k, k) in {-1,+1} -> (F rounded up to 4, ceil(K/64)) uint64 rows."""
    signs = np.asarray(signs)
    f, c, kh, kwid = signs.shape
    k = c * kh * kwid
    kw = (k + 63) // 64
    fpad = (f + 3) // 4 * 4
    bits = np.zeros((fpad, kw * 64), dtype=np.uint8)
    # tap-major (ky, kx, c) order, the order bit_im2col writes the window in
    bits[:f, :k] = (signs.transpose(0, 2, 3, 1).reshape(f, k) > 0).astype(np.uint8)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return np.ascontiguousarray(packed.view("<u8"), dtype=np.uint64)


# activations whose output is > 0 exactly when their input is: such a layer can hand the next
# binary layer its sign bits instead of floats (kernels/README.md, "Chained binary layers")
_SIGN_KEEPING = ("linear", "leaky", "relu")


def sign_limits(int k, scale, bias):
    """Per filter, how many mismatch counts m = 0, 1, ... give an output > 0: the output
    transform float32(k - 2m) * scale + bias (two roundings, as the kernels compute it) is
    monotone in m, so bit = m < limit reproduces the float path's sign exactly."""
    scale = np.asarray(scale, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    m = np.arange(k + 1, dtype=np.int32)
    d = (k - 2 * m).astype(np.float32)
    limits = np.empty(scale.shape[0], dtype=np.int32)
    for f0 in range(0, scale.shape[0], 64):
        y = d[None, :] * scale[f0:f0 + 64, None]
        y = y + bias[f0:f0 + 64, None]
        pos = y > 0
        lim = pos.sum(axis=1).astype(np.int32)
        if not np.array_equal(pos, m[None, :] < lim[:, None]):
            raise ValueError("output transform is not monotone in the mismatch count")
        limits[f0:f0 + 64] = lim
    return limits


cdef struct _ConvJob:
    # one BinaryConv call: geometry and buffers shared by its three steps
    int isa, c, h, w, cw, size, stride_y, stride_x, pad, out_w, kw, k, filters, n, fpad, npad
    int act, tf, nft, npt, pwp
    bint f_outer
    size_t plane
    const float *x
    uint64_t *packed
    uint64_t *cols
    const uint64_t *weights
    const float *scale
    const float *bias
    int32_t *dot
    float *out
    const xn_bits_out *bits


cdef object _aligned_words(size_t n, bint zero):
    """A buffer of at least n uint64 words whose first word (_words_at) is 64-byte aligned:
    the panels are read 32 or 64 bytes at a time, and numpy only promises 16-byte alignment
    (a layer ran 1.25 or 1.6 ms on AVX2 by where its buffer happened to start)."""
    cdef cnp.npy_intp dims[1]
    dims[0] = <cnp.npy_intp>(n + 8)
    return cnp.PyArray_ZEROS(1, dims, cnp.NPY_UINT64, 0) if zero else \
        cnp.PyArray_EMPTY(1, dims, cnp.NPY_UINT64, 0)


cdef inline uint64_t *_words_at(object buf):
    cdef size_t addr = <size_t>cnp.PyArray_DATA(<cnp.ndarray>buf)
    return <uint64_t *>((addr + 63) & ~(<size_t>63))


cdef inline void _pack_step(const _ConvJob *j, int y) noexcept nogil:
    # input row y -> row y + pad of the packed image
    xn_pack_row(j.isa, j.x + <size_t>y * j.w, j.plane, j.c, j.w,
                j.packed + (<size_t>(y + j.pad) * j.pwp + j.pad) * j.cw, j.cw)


cdef inline void _im2col_step(const _ConvJob *j, int oy) noexcept nogil:
    # the windows of output row oy -> their pixel panels
    xn_im2col_row(j.isa, j.packed, j.pwp, j.cw, j.c, j.size, oy * j.stride_y, j.stride_x,
                  j.out_w, oy * j.out_w, j.cols, j.kw)


cdef inline void _split_step(const _ConvJob *j, int t) noexcept nogil:
    # AVX2: the panels of pixel tile t into their nibble halves
    cdef size_t start = <size_t>t * XN_TP * j.kw
    cdef size_t total = <size_t>j.npad * j.kw
    xn_split_nibbles(j.cols + start, j.cols + total + start,
                     min(<size_t>XN_TP * j.kw, total - start))


cdef inline void _tile_step(const _ConvJob *j, int t) noexcept nogil:
    cdef int f0, p0
    if j.f_outer:
        f0 = (t // j.npt) * j.tf
        p0 = (t % j.npt) * XN_TP
    else:
        f0 = (t % j.nft) * j.tf
        p0 = (t // j.nft) * XN_TP
    xn_binary_tile(j.isa, j.weights, j.cols, j.kw, j.k, f0, min(j.tf, j.fpad - f0), p0,
                   min(XN_TP, j.npad - p0), j.filters, j.n, j.scale, j.bias, j.act, j.dot,
                   j.out, j.bits)


cdef class BinaryConv:
    """XNOR convolution of one layer: call with x float32 (C,H,W) -> float32 (F,oh,ow)."""

    def __init__(self, signs, scale, bias, spec, str activation, int threads, str isa, *,
                 activate=None):
        self.c, self.h, self.w = spec.c, spec.h, spec.w
        self.filters, self.size = spec.filters, spec.size
        self.stride_y, self.stride_x, self.padding = spec.stride_y, spec.stride_x, spec.padding
        self.out_h, self.out_w = spec.out_h, spec.out_w
        self.k = self.c * self.size * self.size
        self.kw = (self.k + 63) // 64
        self.cw = (self.c + 63) // 64
        if tuple(np.shape(signs)) != (self.filters, self.c, self.size, self.size):
            raise ValueError(f"signs shape {np.shape(signs)} does not match {spec}")
        self.fpad = _round_up(self.filters, 4)
        self.isa = _isa_code(isa)
        weights = pack_weights(signs)
        if self.isa == XN_AVX2:  # nibble-split rows: lo then hi (xn_bgemm.h, xn_acc_avx2)
            weights = np.concatenate([weights & _NIBBLES, (weights >> 4) & _NIBBLES])
        self.weights = weights
        self.scale_ = np.ascontiguousarray(scale, dtype=np.float32)
        self.bias_ = np.ascontiguousarray(bias, dtype=np.float32)
        self.activation = activation
        self.act = _NATIVE_ACT.get(activation, XN_LINEAR)
        self.activate_ = _fallback(activation, activate)
        self.threads = max(1, threads)
        work = <double>self.filters * self.k * self.out_h * self.out_w
        est_us = work / _BIT_MACS_PER_US[_ISA_NAMES[self.isa]]
        self.team = self.threads if est_us >= _MIN_TEAM_US else 1
        self.emits_bits = activation in _SIGN_KEEPING
        self.limit_ = sign_limits(self.k, self.scale_, self.bias_) if self.emits_bits else \
            np.zeros(1, dtype=np.int32)
        need_h = (self.out_h - 1) * self.stride_y + self.size
        need_w = (self.out_w - 1) * self.stride_x + self.size
        self._pshape = (max(self.padding + self.h, need_h), max(self.padding + self.w, need_w),
                        self.cw)

    @property
    def isa_name(self):
        return _ISA_NAMES[self.isa]

    @property
    def packed_shape(self):
        """Shape of this layer's packed input (uint64, border of `padding` pixels of -1)."""
        return self._pshape

    def __call__(self, x):
        return self._run(x, False, True, None, 0)

    def dot(self, x):
        """Integer part only: int32 (F, out_h*out_w) = sum of sign(w)*sign(x) over the taps."""
        return self._run(x, True, False, None, 0)

    def run(self, x, bits=None, int bits_pad=0, bint want_float=True):
        """x: float32 (C,H,W), or uint64 `packed_shape` bits (a previous layer's `bits`), or
        uint64 (H, W, ceil(C/64)) bits without the border.
        With `bits` (uint64 (hp, wp, ceil(F/64)), zero where not written), output pixel (y, x)
        also goes, as sign bits, to pixel (y + bits_pad, x + bits_pad) of it. Returns the float
        output (F, out_h, out_w), or None when not want_float."""
        return self._run(x, False, want_float, bits, bits_pad)

    def pack(self, x):
        """Bit-pack x with this layer's padding border: uint64 (Hp, Wp, ceil(C/64))."""
        xv = self._checked(x)
        packed = self._packed_buffer()
        cdef const float[:, :, ::1] xm = xv
        cdef uint64_t[:, :, ::1] pm = packed
        with nogil:
            pack_activations(self.isa, xm, self.padding, self.padding, pm, self.threads)
        return packed

    def _checked(self, x):
        xv = np.ascontiguousarray(x, dtype=np.float32)
        if xv.shape != (self.c, self.h, self.w):
            raise ValueError(f"input shape {xv.shape} != {(self.c, self.h, self.w)}")
        return xv

    def _packed_buffer(self):
        return np.zeros(self._pshape, dtype=np.uint64)

    cdef object _run(self, x, bint want_dot, bint want_float, bits, int bits_pad):
        # buffers are reached through the NumPy C API, not typed memoryviews: a small layer's
        # whole run is a few microseconds, and each memoryview costs a fraction of one
        cdef int n = self.out_h * self.out_w
        cdef int npad = _round_up(n, XN_PW)
        cdef bint need_pack = True
        cdef cnp.npy_intp cdims[3]
        if cnp.PyArray_Check(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_UINT64:
            if x.shape == self._pshape and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x):
                packed = x
            elif x.shape == (self.h, self.w, self.cw):  # no border: copied into one
                packed = self._packed_buffer()
                packed[self.padding:self.padding + self.h, self.padding:self.padding + self.w] = x
            else:
                raise ValueError(f"packed input shape {x.shape} is neither {self.packed_shape} "
                                 f"nor {(self.h, self.w, self.cw)}")
            xv, need_pack = _EMPTY3, False
        else:
            xv = self._checked(x)
            packed = self._packed_buffer()
        # every window word of a real pixel is written, except where the bit-im2col ORs taps
        # straight into the panels (C % 64 != 0 and windows over XN_ROWBUF words); lanes of
        # pixels past N are computed but never stored, so they need not be zero
        # AVX2: the panels' nibble-split hi half follows (split after the bit-im2col)
        cols = _aligned_words(<size_t>npad * self.kw * (2 if self.isa == XN_AVX2 else 1),
                              self.c % 64 != 0 and self.kw > XN_ROWBUF)
        cdef xn_bits_out bo
        cdef xn_bits_out *bop = NULL
        if bits is not None:
            if not self.emits_bits:
                raise ValueError(f"a {self.activation} layer cannot emit sign bits")
            _check_bits_buffer(bits, self.filters, self.out_h, self.out_w, bits_pad)
            bo.data = <uint64_t *>cnp.PyArray_DATA(<cnp.ndarray>bits)
            bo.limit = &self.limit_[0]
            bo.out_w, bo.pad = self.out_w, bits_pad
            bo.wp, bo.cw = bits.shape[1], bits.shape[2]
            bop = &bo
        cdef _ConvJob job
        job.isa, job.c, job.h, job.w, job.cw = self.isa, self.c, self.h, self.w, self.cw
        job.size, job.stride_y, job.stride_x = self.size, self.stride_y, self.stride_x
        job.pad, job.out_w, job.kw, job.k = self.padding, self.out_w, self.kw, self.k
        job.filters, job.n, job.fpad, job.npad, job.act = self.filters, n, self.fpad, npad, self.act
        # bits out: a tile spans a whole output word of filters, so no two tiles share a word;
        # a fused-epilogue tile spans up to a whole output word of filters too
        job.tf = XN_TFB if bop != NULL or (
            not want_dot and xn_fused_epilogue(self.isa, self.act, self.kw)) else XN_TF
        job.nft = (self.fpad + job.tf - 1) // job.tf
        job.npt = (npad + XN_TP - 1) // XN_TP
        # filter blocks outermost (each block of weights read once, from memory, and kept in
        # L1) unless the windows are too big to be re-read from L2
        job.f_outer = <size_t>npad * self.kw * 8 <= 512 * 1024
        job.plane = <size_t>self.h * self.w
        job.x = <const float *>cnp.PyArray_DATA(<cnp.ndarray>xv)
        job.packed = <uint64_t *>cnp.PyArray_DATA(<cnp.ndarray>packed)
        job.pwp = self._pshape[1]
        job.cols = _words_at(cols)
        job.weights = &self.weights[0, 0]
        job.scale, job.bias = &self.scale_[0], &self.bias_[0]
        job.bits = bop
        job.dot, job.out = NULL, NULL
        result = None
        cdims[0], cdims[1] = self.filters, n
        if want_dot:
            result = cnp.PyArray_EMPTY(2, cdims, cnp.NPY_INT32, 0)
            job.dot = <int32_t *>cnp.PyArray_DATA(<cnp.ndarray>result)
        elif want_float:
            result = cnp.PyArray_EMPTY(2, cdims, cnp.NPY_FLOAT32, 0)
            job.out = <float *>cnp.PyArray_DATA(<cnp.ndarray>result)
        cdef int t, y, oy, ntiles = job.nft * job.npt
        cdef bint split = self.isa == XN_AVX2
        if self.team == 1:
            # no OpenMP team at all: libgomp's barriers make futex calls even for one thread,
            # which cost more than a small layer's work
            with nogil:
                if need_pack:
                    for y in range(self.h):
                        _pack_step(&job, y)
                for oy in range(self.out_h):
                    _im2col_step(&job, oy)
                if split:
                    xn_split_nibbles(job.cols, job.cols + <size_t>npad * self.kw,
                                     <size_t>npad * self.kw)
                for t in range(ntiles):
                    _tile_step(&job, t)
        else:
            # one OpenMP team for the three steps (the loops end in barriers): fewer fork/joins
            with nogil, parallel(num_threads=self.team):
                if need_pack:
                    for y in prange(self.h, schedule="dynamic",
                                    chunksize=_chunk(self.h, self.team)):
                        _pack_step(&job, y)
                for oy in prange(self.out_h, schedule="dynamic",
                                 chunksize=_chunk(self.out_h, self.team)):
                    _im2col_step(&job, oy)
                if split:
                    for t in prange(job.npt, schedule="static"):
                        _split_step(&job, t)
                for t in prange(ntiles, schedule="dynamic",
                                chunksize=_chunk(ntiles, self.team)):
                    _tile_step(&job, t)
        if want_dot or result is None:
            return result
        if self.activation not in _NATIVE_ACT:
            result = self.activate_(result, self.activation)
        return result.reshape(self.filters, self.out_h, self.out_w)


cdef inline void _float_im2col_row(const float[:, :, ::1] x, int c0, int r, int size,
                                   int stride_y, int stride_x, int pad, int dil, int out_h,
                                   int out_w, float *dst) noexcept nogil:
    """Row r = (c, ky, kx) of darknet's im2col_cpu_ext on channels from c0, zero padding."""
    cdef int h = x.shape[1], w = x.shape[2]
    cdef int ch = r // (size * size), ky = (r // size) % size, kx = r % size
    cdef int off = kx * dil - pad
    cdef int oy, ox, iy, lo = 0, hi = 0
    cdef const float *src
    # output columns whose tap falls inside the row: lo <= ox < hi
    if off < 0:
        lo = (-off + stride_x - 1) // stride_x
    if w - 1 - off >= 0:
        hi = min(out_w, (w - 1 - off) // stride_x + 1)
    if hi < lo:
        hi = lo
    for oy in range(out_h):
        iy = oy * stride_y - pad + ky * dil
        if iy < 0 or iy >= h:
            memset(dst, 0, out_w * sizeof(float))
        else:
            src = &x[c0 + ch, iy, 0]
            if lo > 0:
                memset(dst, 0, lo * sizeof(float))
            if stride_x == 1:
                memcpy(dst + lo, src + lo + off, (hi - lo) * sizeof(float))
            else:
                for ox in range(lo, hi):
                    dst[ox] = src[ox * stride_x + off]
            if hi < out_w:
                memset(dst + hi, 0, (out_w - hi) * sizeof(float))
        dst += out_w


cdef class FloatConv:
    """Float convolution of one layer (BN folded): Cython im2col, numpy's BLAS sgemm, then
    bias and activation fused in one pass. Call with x float32 (C,H,W) -> float32 (F,oh,ow)."""

    def __init__(self, weights, bias, spec, str activation, int threads, str isa="portable", *,
                 activate=None):
        self.c, self.h, self.w = spec.c, spec.h, spec.w
        self.filters, self.size = spec.filters, spec.size
        self.stride_y, self.stride_x, self.padding = spec.stride_y, spec.stride_x, spec.padding
        self.dilation, self.groups = spec.dilation, spec.groups
        self.out_h, self.out_w = spec.out_h, spec.out_w
        self.k = (self.c // self.groups) * self.size * self.size
        self.weights = np.ascontiguousarray(
            np.asarray(weights, dtype=np.float32).reshape(self.filters, self.k)
        )
        self.bias_ = np.ascontiguousarray(bias, dtype=np.float32)
        self.activation = activation
        self.act = _NATIVE_ACT.get(activation, XN_LINEAR)
        self.activate_ = _fallback(activation, activate)
        self.threads = max(1, threads)
        self.isa = _isa_code(isa)
        # thin inputs (RGB, or up to 32 channels): im2col would copy size*size times a large
        # input for a GEMM with a small K, so convolve directly (vector code only: the plain C
        # loop is slower than im2col + BLAS). From 64 channels up the rows of one output row
        # no longer fit L1 and the GEMM wins. The direct path is also what lets the first
        # conv run the pool after it and emit sign bits (run_pooled_bits).
        self.direct = (self.groups == 1 and self.dilation == 1 and self.stride_x == 1
                       and self.c <= 32 and self.size > 1
                       and self.isa in (XN_AVX2, XN_AVX512, XN_NEON))
        if self.direct:
            fpad = _round_up(self.filters, 8)
            wd = np.zeros((fpad, self.k), dtype=np.float32)
            wd[:self.filters] = self.weights
            if self.isa == XN_AVX512:
                # [F/8][K][8]: one tap's eight weights in one line (xn_direct.h)
                wd = np.ascontiguousarray(
                    wd.reshape(fpad // 8, 8, self.k).transpose(0, 2, 1)
                ).reshape(fpad, self.k)
            self.wdirect = wd
        # our own threaded SGEMM on vector CPUs; numpy's BLAS (one thread) otherwise
        self.own_gemm = self.isa in (XN_AVX2, XN_AVX512)
        if self.own_gemm:
            fg = self.filters // self.groups
            nfb = (fg + XN_GF - 1) // XN_GF
            ap = np.zeros((self.groups, nfb * XN_GF, self.k), dtype=np.float32)
            ap[:, :fg] = self.weights.reshape(self.groups, fg, self.k)
            # [group][filter block][k][6 filters]
            self.apacked = np.ascontiguousarray(
                ap.reshape(self.groups, nfb, XN_GF, self.k).transpose(0, 1, 3, 2)
            )

    @property
    def isa_name(self):
        return _ISA_NAMES[self.isa]

    def __call__(self, x):
        xv = np.ascontiguousarray(x, dtype=np.float32)
        if xv.shape != (self.c, self.h, self.w):
            raise ValueError(f"input shape {xv.shape} != {(self.c, self.h, self.w)}")
        if self.direct:
            return self._direct(xv)
        cdef int n = self.out_h * self.out_w
        cdef int cg = self.c // self.groups, fg = self.filters // self.groups
        cdef bint pointwise = (self.size == 1 and self.stride_y == 1 and self.stride_x == 1
                               and self.padding == 0)
        cdef const float[:, :, ::1] xm = xv
        cdef int kk = self.k, pad = self.padding * self.dilation
        cdef int nfb = (fg + XN_GF - 1) // XN_GF, nnb = (n + XN_GN - 1) // XN_GN
        cdef int npair = (nnb + 1) // 2, nfb2 = (nfb + 1) // 2
        cdef int nmc = (nfb2 + XN_MC - 1) // XN_MC
        cdef int nrb
        cdef int g, f, r, t, k0, kc, f0, f2, tid, rb, r0, nr
        cdef const float *ag
        cdef bint last
        cdef const float *src
        out = np.empty((self.filters, n), dtype=np.float32)
        # numpy's path: the whole im2col matrix; ours: XN_PACK_ROWS im2col rows per thread
        cols = np.empty(
            (1 if pointwise else (self.threads * XN_PACK_ROWS if self.own_gemm else kk), n),
            dtype=np.float32)
        # B panels of one K block (own GEMM)
        bp = np.empty((nnb if self.own_gemm else 1, XN_KC, XN_GN), dtype=np.float32)
        cdef float[:, ::1] om = out
        cdef float[:, ::1] cm = cols
        cdef float[:, :, ::1] bm = bp
        for g in range(self.groups):
            last = g == self.groups - 1
            src = &xm[g * cg, 0, 0] if pointwise else &cm[0, 0]
            if not self.own_gemm:
                with nogil:
                    if not pointwise:
                        for r in prange(kk, num_threads=self.threads, schedule="dynamic",
                                        chunksize=_chunk(kk, self.threads)):
                            _float_im2col_row(xm, g * cg, r, self.size, self.stride_y,
                                              self.stride_x, pad, self.dilation, self.out_h,
                                              self.out_w, &cm[r, 0])
                blas_threads(1)
                b = xv[g * cg:(g + 1) * cg].reshape(cg, n) if pointwise else cols
                np.matmul(self.weights[g * fg:(g + 1) * fg], b, out=out[g * fg:(g + 1) * fg])
                if last:
                    with nogil:
                        for f in prange(self.filters, num_threads=self.threads,
                                        schedule="dynamic",
                                        chunksize=_chunk(self.filters, self.threads)):
                            xn_bias_act_row(&om[f, 0], n, self.bias_[f], self.act)
                continue
            # own SGEMM, per K block: its im2col rows, 16 at a time, straight into 16-column B
            # panels (the block's panels stay in L2 for the GEMM), then the tiles: per block
            # of XN_MC 12-filter blocks (A's block, in L2) each thread takes whole B pairs
            # (their block stays in its L1) and runs the filter blocks over them; tiles after
            # the first K block accumulate into the output
            ag = &self.apacked[g, 0, 0, 0]
            for k0 in range(0, kk, XN_KC):
                kc = min(XN_KC, kk - k0)
                nrb = (kc + XN_PACK_ROWS - 1) // XN_PACK_ROWS
                with nogil, parallel(num_threads=self.threads):
                    tid = threadid()
                    for rb in prange(nrb, schedule="dynamic",
                                     chunksize=_chunk(nrb, self.threads)):
                        r0 = rb * XN_PACK_ROWS
                        nr = min(XN_PACK_ROWS, kc - r0)
                        if pointwise:
                            xn_pack_b_rows(src + <size_t>(k0 + r0) * n, nr, n, n, r0, XN_KC,
                                           &bm[0, 0, 0])
                        else:
                            for r in range(nr):
                                _float_im2col_row(xm, g * cg, k0 + r0 + r, self.size,
                                                  self.stride_y, self.stride_x, pad,
                                                  self.dilation, self.out_h, self.out_w,
                                                  &cm[tid * XN_PACK_ROWS + r, 0])
                            xn_pack_b_rows(&cm[tid * XN_PACK_ROWS, 0], nr, n, n, r0, XN_KC,
                                           &bm[0, 0, 0])
                with nogil:
                    for t in prange(nmc * npair * XN_MC, num_threads=self.threads,
                                    schedule="dynamic", chunksize=XN_MC):
                        f2 = (t // (npair * XN_MC)) * XN_MC + t % XN_MC
                        if f2 >= nfb2:
                            continue
                        f0 = f2 * 2 * XN_GF
                        xn_sgemm_block(self.isa, ag + <size_t>f0 * kk + <size_t>k0 * XN_GF,
                                       <size_t>kk * XN_GF, &bm[0, 0, 0],
                                       (t // XN_MC) % npair, nnb, XN_KC, kc,
                                       min(2 * XN_GF, fg - f0), n, &om[g * fg + f0, 0], n,
                                       k0 > 0)
            if last:
                with nogil:
                    for f in prange(self.filters, num_threads=self.threads, schedule="dynamic",
                                    chunksize=_chunk(self.filters, self.threads)):
                        xn_bias_act_row(&om[f, 0], n, self.bias_[f], self.act)
        if self.activation not in _NATIVE_ACT:
            out = self.activate_(out, self.activation)
        return out.reshape(self.filters, self.out_h, self.out_w)

    def _padded(self, xv):
        """The zero-padded copy of the input the direct path reads (c, hp, wp)."""
        cdef int p = self.padding
        cdef int hp = max(self.h + 2 * p, (self.out_h - 1) * self.stride_y + self.size)
        cdef int wp = max(self.w + 2 * p, self.out_w - 1 + self.size)
        xp = np.zeros((self.c, hp, wp), dtype=np.float32)
        xp[:, p:p + self.h, p:p + self.w] = xv
        return xp

    def _direct(self, xv):
        xp = self._padded(xv)
        out = np.empty((self.filters, self.out_h, self.out_w), dtype=np.float32)
        cdef const float[:, :, ::1] xm = xp
        cdef int hp = xp.shape[1], wp = xp.shape[2]
        cdef float[:, :, ::1] om = out
        cdef int oy
        cdef size_t plane = <size_t>self.out_h * self.out_w
        with nogil:
            for oy in prange(self.out_h, num_threads=self.threads, schedule="dynamic",
                             chunksize=_chunk(self.out_h, self.threads)):
                xn_direct_row(self.isa, &xm[0, 0, 0], self.c, hp, wp, &self.wdirect[0, 0],
                              self.filters, self.size, oy * self.stride_y, self.out_w,
                              &om[0, oy, 0], plane, &self.bias_[0], self.act)
        if self.activation not in _NATIVE_ACT:
            out = self.activate_(out, self.activation)
        return out

    def takes_pool(self, MaxPool pool):
        """Whether run_pooled / run_pooled_bits can take this pool over: the direct path, a
        native activation, and pool windows that tile this output's rows (no vertical overlap
        or offset), so each conv row is computed once."""
        return (self.direct and self.activation in _NATIVE_ACT and pool.c == self.filters
                and pool.h == self.out_h and pool.w == self.out_w
                and pool.stride_y == pool.size and pool.padding // 2 == 0)

    def run_pooled(self, x, MaxPool pool):
        """This conv then `pool`: the pool's output, float32 (F, pool.out_h, pool.out_w). The
        conv rows under one pooled row are computed and pooled while in cache, so the conv's
        own output (the first conv's is the network's largest) is never stored. Same floats
        as the two layers run apart."""
        out = np.empty((self.filters, pool.out_h, pool.out_w), dtype=np.float32)
        cdef float[:, :, ::1] om = out
        self._conv_pool(x, pool, &om[0, 0, 0], NULL, 0, 0)
        return out

    def run_pooled_bits(self, x, MaxPool pool, out, int out_pad=0):
        """This conv then `pool`, as the pool's sign bits into pixel (y + out_pad,
        x + out_pad) of `out` (uint64 (hp, wp, ceil(F/64))), as run_pooled computes it, each
        pooled row packed while in cache: no float output is stored. Same bits as the two
        layers run apart."""
        _check_bits_buffer(out, self.filters, pool.out_h, pool.out_w, out_pad)
        cdef uint64_t[:, :, ::1] om = out
        self._conv_pool(x, pool, NULL, &om[0, 0, 0], om.shape[1], out_pad)
        return out

    cdef int _conv_pool(self, x, MaxPool pool, float *fout, uint64_t *bout, int64_t bwp,
                        int out_pad) except -1:
        # pooled rows straight into fout (F, ph, pw), or packed into bout (rows of bwp pixels
        # of cw words) at (py + out_pad, out_pad)
        if not self.takes_pool(pool):
            raise ValueError("this pool cannot be fused into this convolution")
        xv = np.ascontiguousarray(x, dtype=np.float32)
        if xv.shape != (self.c, self.h, self.w):
            raise ValueError(f"input shape {xv.shape} != {(self.c, self.h, self.w)}")
        cdef int cw = (self.filters + 63) // 64
        cdef int ph = pool.out_h, pw = pool.out_w
        xp = self._padded(xv)
        cdef const float[:, :, ::1] xm = xp
        cdef int hp = xp.shape[1], wp = xp.shape[2]
        cdef int ps = pool.size
        # per thread: the conv rows under one pooled row, and that pooled row (for bits)
        rows = np.empty((self.threads, self.filters, ps, self.out_w), dtype=np.float32)
        pooled = np.empty((self.threads, self.filters, pw), dtype=np.float32)
        cdef float[:, :, :, ::1] rm = rows
        cdef float[:, :, ::1] pm = pooled
        cdef int py, r, nr, f, tid
        cdef float *dst
        with nogil, parallel(num_threads=self.threads):
            tid = threadid()
            for py in prange(ph, schedule="dynamic", chunksize=_chunk(ph, self.threads)):
                nr = min(ps, self.out_h - py * ps)
                for r in range(nr):
                    xn_direct_row(self.isa, &xm[0, 0, 0], self.c, hp, wp, &self.wdirect[0, 0],
                                  self.filters, self.size, (py * ps + r) * self.stride_y,
                                  self.out_w, &rm[tid, 0, r, 0], <size_t>ps * self.out_w,
                                  &self.bias_[0], self.act)
                for f in range(self.filters):
                    if fout != NULL:
                        dst = fout + (<int64_t>f * ph + py) * pw
                    else:
                        dst = &pm[tid, f, 0]
                    xn_maxpool_rows(&rm[tid, f, 0, 0], nr, self.out_w, ps, ps, pool.stride_x,
                                    0, 0, 1, pw, dst)
                if fout == NULL:
                    xn_pack_row(self.isa, &pm[tid, 0, 0], pw, self.filters, pw,
                                bout + ((py + out_pad) * bwp + out_pad) * cw, cw)
        return 0


cdef class MaxPool:
    """Darknet maxpool (ops.maxpool): call with x float32 (C,H,W) -> float32 (C,oh,ow)."""

    def __init__(self, int c, int h, int w, int size, int stride_y, int stride_x, int padding,
                 int out_h, int out_w, int threads, str isa="portable"):
        self.c, self.h, self.w = c, h, w
        self.size, self.stride_y, self.stride_x, self.padding = size, stride_y, stride_x, padding
        self.out_h, self.out_w = out_h, out_w
        self.threads = max(1, threads)
        taps = <double>c * out_h * out_w * size * size
        self.team = self.threads if taps >= _MIN_TEAM_POOL_TAPS else 1
        words = <double>((c + 63) // 64) * out_h * out_w * size * size
        self.team_bits = self.threads if words >= _MIN_TEAM_POOL_WORDS else 1
        self.isa = _isa_code(isa)

    @property
    def packed_shape(self):
        """Shape of a packed (sign bits) input this pool reads: no border."""
        return (self.h, self.w, (self.c + 63) // 64)

    def run_bits(self, x, out, int out_pad=0):
        """The sign bits of the pooled output (max of signs = OR of bits) into pixel
        (y + out_pad, x + out_pad) of `out` (uint64 (hp, wp, ceil(C/64))), from x float32
        (C,H,W) (pooled and packed row by row: no float output is stored) or from packed bits
        of `packed_shape`."""
        _check_bits_buffer(out, self.c, self.out_h, self.out_w, out_pad)
        cdef int cw = (self.c + 63) // 64
        cdef uint64_t[:, :, ::1] om = out
        cdef int oy, ch, tid
        cdef int off = self.padding // 2
        cdef uint64_t[:, :, ::1] im
        cdef const float[:, :, ::1] xm
        cdef float[:, :, ::1] sm
        if isinstance(x, np.ndarray) and x.dtype == np.uint64:
            if x.shape != self.packed_shape:
                raise ValueError(f"packed input shape {x.shape} != {self.packed_shape}")
            im = x
            with nogil:
                if self.team_bits == 1:  # no OpenMP team (its barriers' futex calls)
                    for oy in range(self.out_h):
                        self._bits_row(&im[0, 0, 0], oy, &om[oy + out_pad, out_pad, 0])
                else:
                    for oy in prange(self.out_h, num_threads=self.team_bits, schedule="dynamic",
                                     chunksize=_chunk(self.out_h, self.team_bits)):
                        self._bits_row(&im[0, 0, 0], oy, &om[oy + out_pad, out_pad, 0])
            return out
        xv = np.ascontiguousarray(x, dtype=np.float32)
        if xv.shape != (self.c, self.h, self.w):
            raise ValueError(f"input shape {xv.shape} != {(self.c, self.h, self.w)}")
        xm = xv
        # one pooled row of every channel per thread, packed while it is still in cache
        scratch = np.empty((self.team, self.c, self.out_w), dtype=np.float32)
        sm = scratch
        with nogil, parallel(num_threads=self.team):
            tid = threadid()
            for oy in prange(self.out_h, schedule="dynamic",
                             chunksize=_chunk(self.out_h, self.team)):
                for ch in range(self.c):
                    xn_maxpool_rows(&xm[ch, 0, 0], self.h, self.w, self.size, self.stride_y,
                                    self.stride_x, off, oy, oy + 1, self.out_w, &sm[tid, ch, 0])
                xn_pack_row(self.isa, &sm[tid, 0, 0], self.out_w, self.c, self.out_w,
                            &om[oy + out_pad, out_pad, 0], cw)
        return out

    cdef void _bits_row(self, const uint64_t *inp, int oy, uint64_t *dst) noexcept nogil:
        # output row oy of the pool over packed bits (no border)
        xn_maxpool_bits_row(inp, self.w, 0, (self.c + 63) // 64, self.h, self.w, self.size,
                            self.stride_y, self.stride_x, self.padding // 2, oy, self.out_w,
                            dst)

    def __call__(self, x):
        xv = np.ascontiguousarray(x, dtype=np.float32)
        if xv.shape != (self.c, self.h, self.w):
            raise ValueError(f"input shape {xv.shape} != {(self.c, self.h, self.w)}")
        out = np.empty((self.c, self.out_h, self.out_w), dtype=np.float32)
        cdef const float[:, :, ::1] xm = xv
        cdef float[:, :, ::1] om = out
        cdef int ch
        with nogil:
            for ch in prange(self.c, num_threads=self.team, schedule="dynamic",
                             chunksize=_chunk(self.c, self.team)):
                xn_maxpool_plane(&xm[ch, 0, 0], self.h, self.w, self.size, self.stride_y,
                                 self.stride_x, self.padding // 2, self.out_h, self.out_w,
                                 &om[ch, 0, 0])
        return out


def popcount_peak(str isa, int nwords=64, long reps=200000):
    """Run the xor+popcount throughput loop: (bit-MACs done, seconds the loop took, checksum);
    the seconds cover the C loop only, not the buffer set-up."""
    cdef int code = _isa_code(isa)
    buf = np.random.default_rng(0).integers(0, 2**63, size=max(16, nwords), dtype=np.uint64)
    cdef uint64_t[::1] bm = buf
    cdef uint64_t s
    cdef int nw = nwords
    # AVX2 runs the kernels' nibble-split formulation: the buffer is lo then hi halves, each
    # operand word counted once
    cdef int step = 32 if code == XN_AVX512 else 8 if code == XN_AVX2 else 2
    nw = nw // step * step
    if code == XN_AVX2:
        buf[:nw // 2], buf[nw // 2:nw] = buf[:nw // 2] & _NIBBLES, (buf[:nw // 2] >> 4) & _NIBBLES
    t0 = time.perf_counter()
    with nogil:
        s = xn_popcount_peak(code, &bm[0], nw, reps)
    seconds = time.perf_counter() - t0
    return 2 * 64 * (nw // 2 if code == XN_AVX2 else nw) * reps, seconds, int(s)
