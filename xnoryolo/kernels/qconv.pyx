# cython: language_level=3
"""int8 convolution: per-output-channel symmetric int8 weights, uint8 activations with one
scale and zero point, int32 sums, a fused output transform (kernels/README.md, "int8 layers";
the NumPy reference is detector/quantize.py's int8_conv)."""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

cimport numpy as cnp

cnp.import_array()

# Panels per work item: 4 x 16 pixels, fewer where that leaves threads idle.
DEF BLOCK = 4
# Filters per output transform call (a multiple of every tile's filter count).
DEF TF = 16

_PATHS = ("portable", "avx2", "avxvnni", "avx512vnni", "neon", "neondot")
_ACTS = {"linear": XN_LINEAR, "leaky": XN_LEAKY, "relu": XN_RELU}


def path_names():
    """Every int8 path this module knows, portable first."""
    return _PATHS


def path_supported(str name):
    """Whether this CPU (and build) runs int8 path `name`."""
    return name in _PATHS and xq_path_supported(_PATHS.index(name)) != 0


def available_paths():
    return [p for p in _PATHS if path_supported(p)]


def _ceil(a, b):
    return -(-a // b)


cdef class Int8Conv:
    """x float32 (C, H, W) -> float32 (F, out_h, out_w): quantise x (scale, zero point),
    int32 sums with the int8 weights, then float(sum - zero * sum(w)) * w_scale * in_scale
    + bias and the activation (linear, leaky, relu fused; others through `activate`)."""

    def __init__(self, qweights, w_scale, bias, spec, float in_scale, int in_zero,
                 str activation, int threads, str path, activate=None):
        if path not in _PATHS or not path_supported(path):
            raise ValueError(f"int8 path {path!r} is not available: {available_paths()}")
        if not 0 <= in_zero <= 255:
            raise ValueError(f"zero point {in_zero} is not in 0..255")
        if not in_scale > 0:
            raise ValueError(f"activation scale {in_scale} must be > 0")
        self.c, self.h, self.w = spec.c, spec.h, spec.w
        self.filters, self.size = spec.filters, spec.size
        self.stride_y, self.stride_x = spec.stride_y, spec.stride_x
        self.padding, self.dilation, self.groups = spec.padding, spec.dilation, spec.groups
        self.out_h, self.out_w = spec.out_h, spec.out_w
        self.threads = max(1, threads)
        self.path = _PATHS.index(path)
        self.activation = activation
        if activation in _ACTS:
            self.act = _ACTS[activation]
            self.activate_ = None
        else:
            if activate is None:
                raise ValueError(f"activation {activation!r} needs an activate function")
            self.act = XN_LINEAR
            self.activate_ = activate
        cg = self.c // self.groups
        fg = self.filters // self.groups
        self.k = cg * self.size * self.size
        self.kp = _ceil(self.k, 4) * 4
        self.fgp = _ceil(fg, 8) * 8
        qw = np.asarray(qweights, dtype=np.int8).reshape(self.filters, self.k)
        wt = np.zeros((self.groups, self.fgp, self.kp), np.int8)
        wt[:, :fg, :self.k] = qw.reshape(self.groups, fg, self.k)
        self.wt = wt
        self.zero = in_zero
        self.in_scale = in_scale
        self.inv = np.float32(1) / np.float32(in_scale)
        self.corr_ = (in_zero * qw.astype(np.int64).sum(axis=1)).astype(np.int32)
        self.mult_ = np.asarray(w_scale, np.float32) * np.float32(in_scale)
        self.bias_ = np.ascontiguousarray(bias, dtype=np.float32)
        self.q_ = np.empty((self.c, self.h * self.w), np.uint8)
        self.pan_ = np.zeros((self.threads, BLOCK * XQ_PW * self.kp + 64), np.uint8)
        self.acc_ = np.zeros((self.threads, TF * BLOCK * XQ_PW), np.int32)

    @property
    def path_name(self):
        return _PATHS[self.path]

    def __call__(self, x):
        return self._run(x, False)

    def run_int(self, x):
        """The int32 sums sum(w * (q - zero)) per (filter, pixel), (F, out_h, out_w)."""
        return self._run(x, True)

    cdef object _run(self, x, bint want_int):
        cdef const float[:, :, ::1] xv = np.ascontiguousarray(x, dtype=np.float32)
        if tuple(x.shape) != (self.c, self.h, self.w):
            raise ValueError(f"input shape {tuple(x.shape)} != {(self.c, self.h, self.w)}")
        cdef int64_t n = <int64_t>self.out_h * self.out_w
        out_arr = np.empty((self.filters, n), np.int32 if want_int else np.float32)
        cdef float[:, ::1] outf
        cdef int32_t[:, ::1] outi
        cdef float *fo = NULL
        cdef int32_t *io = NULL
        if want_int:
            outi = out_arr
            io = &outi[0, 0]
        else:
            outf = out_arr
            fo = &outf[0, 0]
        cdef int64_t plane = <int64_t>self.h * self.w
        cdef int64_t npan = (n + XQ_PW - 1) // XQ_PW
        cdef int block = BLOCK
        while block > 1 and (npan + block - 1) // block < 2 * self.threads:
            block //= 2
        cdef int64_t nblk = (npan + block - 1) // block
        cdef int cg = self.c // self.groups, fg = self.filters // self.groups
        cdef int pad = self.padding * self.dilation
        cdef int g, t, f0, nf, npb
        cdef int64_t b, pb, p0
        cdef uint8_t *pan
        cdef int32_t *acc
        cdef int64_t c_
        with nogil:
            for c_ in prange(self.c, num_threads=self.threads, schedule="static"):
                xq_quantize(&xv[c_, 0, 0], &self.q_[c_, 0], plane, self.inv, self.zero)
            for g in range(self.groups):
                for b in prange(nblk, num_threads=self.threads, schedule="dynamic"):
                    t = threadid()
                    pan = &self.pan_[t, 0]
                    acc = &self.acc_[t, 0]
                    npb = block
                    if (b + 1) * block > npan:
                        npb = <int>(npan - b * block)
                    for pb in range(npb):
                        xq_im2col_panel(&self.q_[g * cg, 0], cg, self.h, self.w, self.size,
                                        self.stride_y, self.stride_x, pad, self.dilation,
                                        self.out_w, n, self.kp, <uint8_t>self.zero,
                                        b * block + pb, pan + pb * XQ_PW * self.kp)
                    p0 = b * block * XQ_PW
                    for f0 in range(0, fg, TF):
                        nf = fg - f0
                        if nf > TF:
                            nf = TF
                        xq_tile(self.path, &self.wt[g, f0, 0], self.kp, nf, pan, npb, acc)
                        xq_store_tile(acc, nf, npb, g * fg + f0, p0, n, &self.corr_[0],
                                      &self.mult_[0], &self.bias_[0], self.act, fo, io)
        out = out_arr.reshape(self.filters, self.out_h, self.out_w)
        if self.activate_ is not None and not want_int:
            out = self.activate_(out, self.activation)
        return out
