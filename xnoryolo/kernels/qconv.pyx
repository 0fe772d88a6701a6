# cython: language_level=3
"""int8 convolution: per-output-channel symmetric int8 weights, uint8 activations with one
scale and zero point, int32 sums, a fused output transform (kernels/README.md, "int8 layers";
the NumPy reference is detector/quantize.py's int8_conv)."""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

cimport numpy as cnp

cnp.import_array()

# Bytes of im2col panels per work item: thin layers get long pixel blocks (few, long
# copies per im2col row), deep ones 4 panels; fewer where that leaves threads idle.
DEF BLOCK_BYTES = 65536
# Fewer taps than this run AVX-512 VNNI on the amx path, but for thin inputs (<= 4 channels)
# read in place: a first layer (27 taps) took 13x the VNNI time padded to 64 taps on im2col;
# in place (3 tap groups a step) 0.83-0.85 ms against 0.95 to pooled sign bits, the same to
# pooled bytes (1 thread, in the network).
DEF AMX_MIN_TAPS = 128
# Panels (of 16 pixels) per work item on the direct path: up to a 512-pixel row, whose sums
# (16 filters at a time) stay in L1.
DEF DIRECT_BLOCK = 32
# 1x1 whole-block layers up to this many taps run direct on the VNNI tiles where AMX is asked
# for and their rows fill their panels (AMX reads wider kernels in place itself).
DEF AMX_DIRECT_MAX_TAPS = 288
# Most output rows of one panel each (13 wide) per AMX tile call on the direct path (its sums
# stay in L1).
DEF AMX_ROWS = 16
# Filters per output transform call (a multiple of every tile's filter count).
DEF TF = 16
# vpmaddubsw's saturation bound: pairs of byte x weight products up to this are exact
DEF INT16_MAX = 32767

_PATHS = ("portable", "avx2", "avxvnni", "avx512vnni", "neon", "neondot", "amx")
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


def _aligned(shape, dtype):
    """Zeros whose first byte is on a 64-byte line (NumPy gives 16): AMX tile rows and
    512-bit vectors read from it do not straddle two lines (a split tile load costs 2.5x)."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(n + 64, np.uint8)
    off = -raw.ctypes.data % 64
    return raw[off:off + n].view(dtype).reshape(shape)


def sign_thresholds(mult, bias):
    """Per filter, the least sum s (less the zero-point term) whose output
    float32(s) * mult + bias is > 0: found by bisection on that very float expression, which
    is monotone in s (mult > 0). 2**30 + 1: never; -2**30: always (sums stay within +-2**30)."""
    m = np.asarray(mult, np.float32)
    b = np.asarray(bias, np.float32)
    lo = np.full(m.shape, -(1 << 30), np.int64)
    hi = np.full(m.shape, (1 << 30) + 1, np.int64)
    # invariant: positive(hi) or hi == 2**30 + 1; not positive(lo) or lo == -2**30 (checked below)
    always = (lo.astype(np.float32) * m + b) > 0
    for _ in range(32):
        mid = (lo + hi) // 2
        pos = (mid.astype(np.float32) * m + b) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    return np.where(always, -(1 << 30), hi)


cdef class Int8Conv:
    """x float32 (C, H, W) -> float32 (F, out_h, out_w): quantise x (scale, zero point),
    int32 sums with the int8 weights, then float(sum - zero * sum(w)) * w_scale * in_scale
    + bias and the activation (linear, leaky, relu fused; others through `activate`).
    `direct`: whether thin inputs (one group, <= 4 channels, stride_x 1) skip im2col; None
    chooses by path. Every output mode runs either way, with the same integers."""

    def __init__(self, qweights, w_scale, bias, spec, float in_scale, int in_zero,
                 str activation, int threads, str path, activate=None, direct=None,
                 int in_top=255):
        if path not in _PATHS or not path_supported(path):
            raise ValueError(f"int8 path {path!r} is not available: {available_paths()}")
        if in_top not in (127, 255):
            raise ValueError(f"largest input byte {in_top}: 255 (8 bits) or 127 (7 bits)")
        if not 0 <= in_zero <= in_top:
            raise ValueError(f"zero point {in_zero} is not in 0..{in_top}")
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
        # direct (no im2col; xq_quads_row): the input in blocks of 4 channels, read in place.
        # By default on the x86 paths and sdot (neon and portable widen the bytes for every
        # filter: im2col costs them less than the padding of a 3-channel image to 4), for
        # thin inputs (<= 4 channels), and for whole blocks of channels where the output rows
        # fill at least 7/8 of their 16-pixel panels (13, 26 and 52 leave 19 % empty; the
        # deep layers at 208 and 104 pixels gain most: their im2col is 9x the input). AMX keeps
        # im2col (its B tiles are the panels) but for few taps, where direct VNNI wins.
        can_direct = self.groups == 1 and self.stride_x == 1
        if direct and not can_direct:
            raise ValueError("the direct int8 conv needs one group and stride_x 1")
        # AMX reads the quad pixels in place (xq_tile_amx) for kernels wider than 1 with a
        # thin input or whole blocks of 4 channels; 1x1 layers keep im2col (a mere interleave
        # for them, on whole blocks of panels)
        amx_direct = (self.path == XQ_AMX and can_direct and self.size > 1
                      and (self.c <= 4 or self.c % 4 == 0 and self.k >= AMX_MIN_TAPS))
        if direct is None:
            direct = can_direct and self.path in (XQ_AVX512VNNI, XQ_AVXVNNI, XQ_AMX, XQ_AVX2,
                                                  XQ_NEONDOT) and (
                self.c <= 4 or amx_direct or (
                    self.c % 4 == 0
                    and (self.path != XQ_AMX or self.k <= AMX_DIRECT_MAX_TAPS)
                    and 8 * self.out_w >= 7 * XQ_PW * _ceil(self.out_w, XQ_PW)))
        self.direct = direct
        amx_direct = amx_direct and self.direct
        if self.path == XQ_AMX and not amx_direct and (self.k < AMX_MIN_TAPS or self.direct):
            self.path = XQ_AVX512VNNI
        # filters per tile call and output transform: AMX blocks two 16-filter tiles
        self.tf = 2 * TF if self.path == XQ_AMX else TF
        ss = self.size * self.size
        self.nb = _ceil(cg, 4)  # blocks of 4 channels (direct)
        # tap groups (of 4 taps) per AMX step: 16 on im2col; on the direct path the largest
        # divisor <= 16 of a kernel row's groups (blocks x kernel columns), a step never
        # spanning two kernel rows; the other paths take one group at a time
        self.kr = 16 if self.path == XQ_AMX else 1
        if amx_direct:
            row_groups = self.nb * self.size
            self.kr = max(d for d in range(1, 17) if row_groups % d == 0)
        self.kp = 4 * ss * self.nb if self.direct else _ceil(self.k, 4 * self.kr) * 4 * self.kr
        self.fgp = _ceil(fg, 16) * 16
        qw = np.asarray(qweights, dtype=np.int8).reshape(self.filters, self.k)
        wt = np.zeros((self.groups, self.fgp, self.kp), np.int8)
        pad = self.padding * self.dilation
        span = (self.size - 1) * self.dilation
        if self.direct:
            # taps (channel block, ky, kx, channel in block), missing channels' weights 0; on
            # AMX (ky, channel block, kx, channel in block)
            w4 = np.zeros((self.fgp, 4 * self.nb, ss), np.int8)
            w4[:fg, :cg] = qw.reshape(fg, cg, ss)
            if amx_direct:
                w4 = w4.reshape(self.fgp, self.nb, 4, self.size, self.size).transpose(0, 3, 1, 4, 2)
            else:
                w4 = w4.reshape(self.fgp, self.nb, 4, ss).transpose(0, 1, 3, 2)
            wt[0] = w4.reshape(self.fgp, self.kp)
            self.wp = max(pad + self.w, _ceil(self.out_w, XQ_PW) * XQ_PW + span)
            self.hp = max(pad + self.h, (self.out_h - 1) * self.stride_y + span + 1)
            # AMX: rows of whole 64-byte lines, and the quads once per kernel column kx,
            # shifted left by kx taps, as planes in (block, kx) order: every B tile row (16
            # pixels from a multiple of 16) is one aligned line, a step's rows a plane apart
            self.shifts = self.size if amx_direct else 1
            if amx_direct:
                self.wp = _ceil(self.wp, XQ_PW) * XQ_PW
            plane = self.hp * self.wp
            if amx_direct:
                ky, cb, kx = np.unravel_index(np.arange(self.nb * ss),
                                              (self.size, self.nb, self.size))
                self.goff = (4 * ((cb * self.size + kx) * plane
                                  + self.dilation * ky * self.wp)).astype(np.int64)
            else:
                cb, tap = np.divmod(np.arange(self.nb * ss), ss)
                ky, kx = np.divmod(tap, self.size)
                self.goff = (4 * (cb * plane + self.dilation * (ky * self.wp + kx))
                             ).astype(np.int64)
            self.xi_ = _aligned((self.shifts * self.nb * self.hp, 4 * self.wp), np.uint8)
        else:
            wt[:, :fg, :self.k] = qw.reshape(self.groups, fg, self.k)
            self.goff = 64 * np.arange(self.kp // 4, dtype=np.int64)
        # the avx2 path runs the vpmaddubsw tile (on int8 weights) wherever its int16 pair
        # sums are exact: 7-bit inputs, or 8-bit ones with weights up to 64
        self.top = in_top
        wmax = int(np.abs(qw.astype(np.int16)).max()) if qw.size else 0
        self.tpath = (XQ_AVX2U7 if self.path == XQ_AVX2 and 2 * in_top * wmax <= INT16_MAX
                      else self.path)
        if self.tpath == XQ_AVX2:
            # the avx2 tile reads int16 weights (2 bytes a tap, widened here once)
            wt = np.ascontiguousarray(wt.astype(np.int16)).view(np.int8)
        elif self.path == XQ_AMX:
            # each step's A tile (16 filters x 4 kr taps) as 16 rows of 64 bytes, 1 KB in a
            # row: a block of 16 filters is [step][filter][64] (one stream for the prefetcher)
            ng, steps, w = wt.shape[0], self.kp // (4 * self.kr), 4 * self.kr
            a = np.zeros((ng, self.fgp // 16, steps, 16, 64), np.int8)
            a[..., :w] = wt.reshape(ng, self.fgp // 16, 16, steps, w).transpose(0, 1, 3, 2, 4)
            wt = a.reshape(ng, self.fgp, steps * 64)
        aligned = _aligned(wt.shape, np.int8)
        aligned[...] = wt
        self.wt = aligned
        self.zero = in_zero
        self.in_scale = in_scale
        self.inv = np.float32(1) / np.float32(in_scale)
        self.corr_ = (in_zero * qw.astype(np.int64).sum(axis=1)).astype(np.int32)
        self.mult_ = np.asarray(w_scale, np.float32) * np.float32(in_scale)
        self.bias_ = np.ascontiguousarray(bias, dtype=np.float32)
        self.q_ = np.empty((self.c, self.h * self.w), np.uint8)
        self.block = max(4, min(64, BLOCK_BYTES // (self.kp * XQ_PW)))
        panel_bytes = self.block * XQ_PW * self.kp + 64
        if self.direct:
            # a block is (part of) one output row, or on AMX AMX_ROWS rows of one panel each:
            # no panels
            self.block = min(DIRECT_BLOCK, _ceil(self.out_w, XQ_PW))
            if self.path == XQ_AMX and self.block == 1:
                # as many rows as give each thread one item (a weight tile loaded once per
                # pair of them), an even number
                self.block = min(AMX_ROWS, 2 * _ceil(self.out_h, 2 * self.threads))
            panel_bytes = 64
        self.pan_ = _aligned((self.threads, panel_bytes), np.uint8)
        self.rows_ = np.zeros((self.threads, panel_bytes), np.uint8)
        self.acc_ = _aligned((self.threads, self.tf * self.block * XQ_PW), np.int32)
        self.tmp_ = np.zeros((self.threads, self.block * XQ_PW), np.float32)
        thr = sign_thresholds(self.mult_, self.bias_) + np.asarray(self.corr_, np.int64)
        self.thr_ = np.clip(thr, 1 - (1 << 31), (1 << 31) - 1).astype(np.int32)

    cdef const uint8_t *_quads(self, const uint8_t *qp) noexcept nogil:
        """The input bytes as quad pixels (xi_), for the direct path. Rows are split among
        the threads in order (all blocks of a row together) and the loops that read them
        split their output rows the same static way, so a thread mostly reads rows it wrote
        itself: handing rows between cores cost more than the second thread gained
        (32->64 at 104 to pooled bytes, 2 threads with GOMP_SPINCOUNT=300000: 0.35 ms with
        channel blocks split and dynamic rows, 0.26 ms so; 1 thread 0.39)."""
        cdef int i, cb, nc, k, sh, y, r0
        for i in prange(self.nb * self.hp, num_threads=self.threads, schedule="static"):
            y = i // self.nb
            cb = i - y * self.nb
            nc = self.c - 4 * cb
            if nc > 4:
                nc = 4
            r0 = cb * self.shifts * self.hp + y  # plane (cb, 0), row y
            xq_quads_row(qp + <int64_t>4 * cb * self.h * self.w, nc, self.h, self.w,
                         self.padding * self.dilation, self.wp, y, <uint8_t>self.zero,
                         &self.xi_[r0, 0])
            for k in range(1, self.shifts):
                # plane (cb, k): the row shifted left by k * dilation pixels (its tail is
                # read only for lanes past the last output column)
                sh = 4 * k * self.dilation
                memcpy(&self.xi_[r0 + k * self.hp, 0], &self.xi_[r0, sh], 4 * self.wp - sh)
        return &self.xi_[0, 0]

    @property
    def path_name(self):
        return _PATHS[self.path]

    @property
    def tile_name(self):
        """The tile's path: path_name, or "avx2u7" (the vpmaddubsw tile: 7-bit inputs, or
        weights up to 64, on avx2)."""
        return "avx2u7" if self.tpath == XQ_AVX2U7 else _PATHS[self.path]

    def __call__(self, x):
        """x: float32 (C, H, W), or uint8: already quantised with this layer's scale and zero
        point (what run_bytes of the layer before wrote)."""
        return self._run(x, 0, 1, 0, 255)

    def run_int(self, x):
        """The int32 sums sum(w * (q - zero)) per (filter, pixel), (F, out_h, out_w)."""
        return self._run(x, 1, 1, 0, 255)

    @property
    def emits_bytes(self):
        """Whether run_bytes can hand the output on as bytes (a fused activation)."""
        return self.activate_ is None

    def run_bytes(self, x, float out_scale, int out_zero, pool=None, int out_top=255):
        """The output quantised for the next int8 layer: uint8 (F, out_h, out_w), the bytes
        that layer would make of __call__'s floats (scale `out_scale`, zero `out_zero`,
        largest byte `out_top`);
        with `pool` = (size, stride_y, stride_x, padding, pool_h, pool_w), darknet's maxpool
        of them (F, pool_h, pool_w), which is the bytes of the pooled floats."""
        if not self.emits_bytes:
            raise ValueError(f"activation {self.activation!r} is not fused: no bytes output")
        if out_top not in (127, 255):
            raise ValueError(f"largest output byte {out_top}: 255 (8 bits) or 127 (7 bits)")
        if not 0 <= out_zero <= out_top:
            raise ValueError(f"zero point {out_zero} is not in 0..{out_top}")
        if not out_scale > 0:
            raise ValueError(f"activation scale {out_scale} must be > 0")
        cdef float inv = np.float32(1) / np.float32(out_scale)
        if pool is None:
            return self._run(x, 2, inv, out_zero, out_top)
        cdef int size, sy, sx, padding, ph, pw
        size, sy, sx, padding, ph, pw = pool
        if size < 1 or sy < 1 or sx < 1 or padding < 0 or ph < 1 or pw < 1:
            raise ValueError(f"bad pool geometry {pool}")
        out = np.empty((self.filters, ph, pw), np.uint8)
        if (self.direct and sy == size and sx == size and padding // 2 == 0
                and (ph - 1) * sy < self.out_h and (pw - 1) * sx < self.out_w):
            # windows tile the output with no offset: each pooled row from its own conv rows
            self._bytes_pooled_direct(self._quantized(x), inv, out_zero, out_top, size, out)
            self.xin_ = None
            return out
        y = self._run(x, 2, inv, out_zero, out_top)
        cdef const uint8_t[:, :, ::1] yv = y
        cdef uint8_t[:, :, ::1] ov = out
        cdef int64_t c_
        cdef int h = self.out_h, w = self.out_w, off = padding // 2
        with nogil:
            for c_ in prange(self.filters, num_threads=self.threads, schedule="static"):
                xq_maxpool_u8(&yv[c_, 0, 0], h, w, size, sy, sx, off, ph, pw, &ov[c_, 0, 0])
        return out

    cdef const uint8_t *_quantized(self, x) except NULL:
        """The input as bytes: uint8 as it is, float32 quantised into q_."""
        if tuple(x.shape) != (self.c, self.h, self.w):
            raise ValueError(f"input shape {tuple(x.shape)} != {(self.c, self.h, self.w)}")
        cdef const uint8_t[:, :, ::1] xb
        if x.dtype == np.uint8:
            self.xin_ = np.ascontiguousarray(x)
            xb = self.xin_
            return &xb[0, 0, 0]
        cdef const float[:, :, ::1] xv = np.ascontiguousarray(x, dtype=np.float32)
        cdef int64_t plane = <int64_t>self.h * self.w
        cdef int64_t c_
        with nogil:
            for c_ in prange(self.c, num_threads=self.threads, schedule="static"):
                xq_quantize_path(self.path, &xv[c_, 0, 0], &self.q_[c_, 0], plane, self.inv,
                                 self.zero, self.top)
        return &self.q_[0, 0]

    def takes_pool(self, pool):
        """Whether run_pooled_bits can take `pool` (a MaxPool kernel) over: a native
        activation (its sign is the transform's), one group, and pool windows that tile this
        output's rows with no offset, so each conv row is computed once."""
        return (self.activate_ is None and self.groups == 1 and pool.c == self.filters
                and pool.h == self.out_h and pool.w == self.out_w
                and pool.stride_y == pool.size and pool.padding // 2 == 0)

    def run_pooled_bits(self, x, pool, out, int out_pad=0):
        """This conv then `pool`, as the pool's sign bits into pixel (y + out_pad,
        x + out_pad) of `out` (uint64 (hp, wp, ceil(F/64)), border left as it is): the sums
        under one pooled row are compared with the sign thresholds, ORed over the windows and
        packed; no float is computed. The same bits as the two layers run apart."""
        if not self.takes_pool(pool):
            raise ValueError("this pool cannot be fused into this convolution")
        cdef const uint8_t *qp = self._quantized(x)
        cdef int cw = (self.filters + 63) // 64
        cdef int ps = pool.size, psx = pool.stride_x, pw = pool.out_w, ph = pool.out_h
        if (out.dtype != np.uint64 or out.ndim != 3 or out.shape[2] != cw
                or out.shape[0] < ph + 2 * out_pad or out.shape[1] < pw + 2 * out_pad):
            raise ValueError(f"bits buffer {out.dtype} {out.shape} does not fit "
                             f"({ph} + 2*{out_pad}, {pw} + 2*{out_pad}, {cw}) uint64")
        cdef uint64_t[:, :, ::1] om = out
        cdef int64_t rowpix = <int64_t>ps * self.out_w
        masks = np.zeros((self.threads, rowpix * cw + 64), np.uint64)
        cdef uint64_t[:, ::1] mm = masks
        cdef int pad = self.padding * self.dilation
        cdef int fg = self.filters
        cdef int py, t, nr, f0, fi, nf, npix, npb, ld = self.block * XQ_PW
        cdef int64_t q0, q1, p0
        cdef uint8_t *pan
        cdef int32_t *acc
        cdef const uint8_t *xi = NULL
        cdef int r, ox0
        second = _aligned((self.threads, self.tf * self.block * XQ_PW if self.direct else 1),
                          np.int32)
        cdef int32_t[:, ::1] a2 = second
        if self.direct:
            with nogil:
                xi = self._quads(qp)
        with nogil:
            for py in prange(ph, num_threads=self.threads, schedule="static"):
                t = threadid()
                pan = &self.pan_[t, 0]
                acc = &self.acc_[t, 0]
                nr = ps
                if py * ps + nr > self.out_h:
                    nr = self.out_h - py * ps
                q0 = <int64_t>py * ps * self.out_w
                q1 = q0 + <int64_t>nr * self.out_w
                memset(&mm[t, 0], 0, <size_t>(q1 - q0) * cw * 8)
                if self.direct:
                    # the max of the window rows' sums, compared once (max then threshold
                    # is the OR of the thresholded rows): one row of pixel words
                    ox0 = 0
                    while ox0 < self.out_w:
                        npix = ld
                        if ox0 + npix > self.out_w:
                            npix = self.out_w - ox0
                        npb = (npix + XQ_PW - 1) // XQ_PW
                        for fi in range((fg + self.tf - 1) // self.tf):
                            f0 = fi * self.tf
                            nf = fg - f0
                            if nf > self.tf:
                                nf = self.tf
                            for r in range(nr):
                                pan = <uint8_t *>xi + ((<int64_t>(py * ps + r)) * self.stride_y
                                                       * self.wp + ox0) * 4
                                xq_tile(self.tpath, &self.wt[0, f0, 0], self.kp, self.kr, nf,
                                        pan, 64, &self.goff[0], npb,
                                        acc if r == 0 else &a2[t, 0])
                                if r > 0:
                                    xq_max_i32(self.path, acc, &a2[t, 0],
                                               <int64_t>nf * npb * XQ_PW)
                            xq_bits_tile(self.path, acc, nf, npb, f0, ox0, ox0 + npix,
                                         &self.thr_[0], &mm[t, 0], cw, 0)
                        ox0 = ox0 + npix
                    nr = 1
                p0 = q0
                while p0 < q1 and not self.direct:
                    npix = ld
                    if p0 + npix > q1:
                        npix = <int>(q1 - p0)
                    npb = (npix + XQ_PW - 1) // XQ_PW
                    xq_im2col_rows(qp, self.c, self.h, self.w, self.size,
                                   self.stride_y, self.stride_x, pad, self.dilation, self.out_w,
                                   p0, npix, self.kp, <uint8_t>self.zero, &self.rows_[t, 0], ld)
                    xq_interleave(&self.rows_[t, 0], ld, npix, self.kp, pan)
                    for fi in range((fg + self.tf - 1) // self.tf):
                        f0 = fi * self.tf
                        nf = fg - f0
                        if nf > self.tf:
                            nf = self.tf
                        xq_tile(self.tpath, &self.wt[0, f0, 0], self.kp, self.kr, nf, pan,
                                self.kp * XQ_PW, &self.goff[0], npb, acc)
                        xq_bits_tile(self.path, acc, nf, npb, f0, p0, q1, &self.thr_[0],
                                     &mm[t, 0], cw, q0)
                    p0 = p0 + npix
                xq_pool_bits_row(&mm[t, 0], cw, nr, self.out_w, ps, psx, pw,
                                 &om[py + out_pad, out_pad, 0])
        self.xin_ = None
        return out

    cdef object _run(self, x, int mode, float out_inv, int out_zero, int out_top):
        # mode 0: floats, 1: int32 sums, 2: bytes (quantised with out_inv, out_zero, out_top)
        cdef const uint8_t *qp = self._quantized(x)
        cdef int64_t n = <int64_t>self.out_h * self.out_w
        out_arr = np.empty((self.filters, n), (np.float32, np.int32, np.uint8)[mode])
        cdef float[:, ::1] outf
        cdef int32_t[:, ::1] outi
        cdef uint8_t[:, ::1] outb
        cdef float *fo = NULL
        cdef int32_t *io = NULL
        cdef uint8_t *bo = NULL
        if mode == 1:
            outi = out_arr
            io = &outi[0, 0]
        elif mode == 2:
            outb = out_arr
            bo = &outb[0, 0]
        else:
            outf = out_arr
            fo = &outf[0, 0]
        cdef int64_t plane = <int64_t>self.h * self.w
        cdef int64_t npan = (n + XQ_PW - 1) // XQ_PW
        cdef int block = self.block
        if self.direct:
            self._run_direct(qp, mode, out_inv, out_zero, out_top, fo, io, bo)
            npan = 0
        while block > 1 and (npan + block - 1) // block < 2 * self.threads:
            block //= 2
        cdef int64_t nblk = (npan + block - 1) // block
        cdef int cg = self.c // self.groups, fg = self.filters // self.groups
        cdef int pad = self.padding * self.dilation
        cdef int g, t, f0, fi, nf, npb, npix
        cdef int64_t b, p0
        cdef uint8_t *pan
        cdef int32_t *acc
        with nogil:
            for g in range(self.groups if nblk else 0):
                for b in prange(nblk, num_threads=self.threads, schedule="static"):
                    t = threadid()
                    pan = &self.pan_[t, 0]
                    acc = &self.acc_[t, 0]
                    npb = block
                    if (b + 1) * block > npan:
                        npb = <int>(npan - b * block)
                    p0 = b * block * XQ_PW
                    npix = npb * XQ_PW
                    if p0 + npix > n:
                        npix = <int>(n - p0)
                    xq_im2col_rows(qp + g * cg * plane, cg, self.h, self.w, self.size,
                                   self.stride_y, self.stride_x, pad, self.dilation, self.out_w,
                                   p0, npix, self.kp, <uint8_t>self.zero, &self.rows_[t, 0],
                                   block * XQ_PW)
                    xq_interleave(&self.rows_[t, 0], block * XQ_PW, npix, self.kp, pan)
                    for fi in range((fg + self.tf - 1) // self.tf):
                        f0 = fi * self.tf
                        nf = fg - f0
                        if nf > self.tf:
                            nf = self.tf
                        xq_tile(self.tpath, &self.wt[g, f0, 0], self.kp, self.kr, nf, pan,
                                self.kp * XQ_PW, &self.goff[0], npb, acc)
                        if mode == 2:
                            xq_store_tile_u8(self.path, acc, nf, npb, g * fg + f0, p0, n, n,
                                             &self.corr_[0], &self.mult_[0], &self.bias_[0],
                                             self.act, out_inv, out_zero, out_top,
                                             &self.tmp_[t, 0], bo)
                        else:
                            xq_store_tile(self.path, acc, nf, npb, g * fg + f0, p0, n, n,
                                          &self.corr_[0], &self.mult_[0], &self.bias_[0],
                                          self.act, fo, io)
        self.xin_ = None
        out = out_arr.reshape(self.filters, self.out_h, self.out_w)
        if self.activate_ is not None and mode == 0:
            out = self.activate_(out, self.activation)
        return out

    cdef void _run_direct(self, const uint8_t *qp, int mode, float out_inv, int out_zero,
                          int out_top, float *fo, int32_t *io, uint8_t *bo) noexcept:
        """_run's work on the direct path: (output row, run of <= block panels) items."""
        cdef int64_t n = <int64_t>self.out_h * self.out_w
        cdef int block = self.block
        cdef int nch = (self.out_w + block * XQ_PW - 1) // (block * XQ_PW)
        # AMX on rows of one panel: an item is `block` rows, the tile's panels a row apart
        cdef bint by_rows = self.path == XQ_AMX and self.out_w <= XQ_PW
        cdef int64_t items = (self.out_h + block - 1) // block if by_rows else (
            <int64_t>self.out_h * nch)
        cdef int64_t pstride = <int64_t>self.stride_y * self.wp * 4 if by_rows else 64
        cdef int64_t it, p0
        cdef int t, oy, ox0, npix, npb, f0, fi, nf, r
        cdef const uint8_t *xi
        cdef const uint8_t *src
        cdef int32_t *acc
        with nogil:
            xi = self._quads(qp)
            for it in prange(items, num_threads=self.threads, schedule="static"):
                t = threadid()
                acc = &self.acc_[t, 0]
                if by_rows:
                    oy = <int>it * block
                    ox0 = 0
                    npix = self.out_w
                    npb = self.out_h - oy  # panels: rows
                    if npb > block:
                        npb = block
                else:
                    oy = <int>(it // nch)
                    ox0 = <int>(it % nch) * block * XQ_PW
                    npix = self.out_w - ox0
                    if npix > block * XQ_PW:
                        npix = block * XQ_PW
                    npb = (npix + XQ_PW - 1) // XQ_PW
                src = xi + (<int64_t>oy * self.stride_y * self.wp + ox0) * 4
                for fi in range((self.filters + self.tf - 1) // self.tf):
                    f0 = fi * self.tf
                    nf = self.filters - f0
                    if nf > self.tf:
                        nf = self.tf
                    xq_tile(self.tpath, &self.wt[0, f0, 0], self.kp, self.kr, nf, src, pstride,
                            &self.goff[0], npb, acc)
                    # one store per row of panels (by_rows: panel r is row oy + r)
                    for r in range(npb if by_rows else 1):
                        p0 = <int64_t>(oy + r) * self.out_w + ox0
                        if mode == 2:
                            xq_store_tile_u8(self.path, acc + r * XQ_PW, nf, npb, f0, p0,
                                             p0 + npix, n, &self.corr_[0], &self.mult_[0],
                                             &self.bias_[0], self.act, out_inv, out_zero,
                                             out_top, &self.tmp_[t, 0], bo)
                        else:
                            xq_store_tile(self.path, acc + r * XQ_PW, nf, npb, f0, p0,
                                          p0 + npix, n, &self.corr_[0], &self.mult_[0],
                                          &self.bias_[0], self.act, fo, io)

    cdef void _bytes_pooled_direct(self, const uint8_t *qp, float inv, int out_zero,
                                   int out_top, int ps, uint8_t[:, :, ::1] out):
        """run_bytes with a pool of ps x ps windows at stride ps, no offset, on the direct
        path: per pooled row and run of columns, the max of its (up to ps) conv rows' int32
        sums (two tiles' buffers, L1), then per filter the horizontal max of that one row on
        the sums and the transform and quantisation of the maxima (xq_pooled_row_u8: both
        monotone in the sum, so the max commutes with them). The same bytes as pooling
        run_bytes's output; neither full-size floats nor bytes are made."""
        cdef int ph = out.shape[1], pw = out.shape[2], ow = self.out_w
        # a run of columns: whole windows, at most a block of panels
        cdef int run = (self.block * XQ_PW // ps) * ps
        cdef int64_t tile = self.tf * self.block * XQ_PW
        second = _aligned((self.threads, tile), np.int32)
        rowf = np.empty((self.threads, run + 16), np.float32)
        rowm = np.empty((self.threads, run + 16), np.int32)
        cdef int32_t[:, ::1] acc2 = second
        cdef float[:, ::1] rf = rowf
        cdef int32_t[:, ::1] rm = rowm
        cdef const uint8_t *xi
        cdef const uint8_t *src
        cdef int py, t, nr, rr, ox0, npix, npb, f0, fi, nf, i, px0, pwc
        cdef int32_t *acc
        with nogil:
            xi = self._quads(qp)
            for py in prange(ph, num_threads=self.threads, schedule="static"):
                t = threadid()
                acc = &self.acc_[t, 0]
                nr = ps
                if py * ps + nr > self.out_h:
                    nr = self.out_h - py * ps
                ox0 = 0
                while ox0 < ow:
                    npix = ow - ox0
                    if npix > run:
                        npix = run
                    npb = (npix + XQ_PW - 1) // XQ_PW
                    px0 = ox0 // ps
                    pwc = pw - px0
                    if pwc > (npix + ps - 1) // ps:
                        pwc = (npix + ps - 1) // ps
                    for fi in range((self.filters + self.tf - 1) // self.tf):
                        f0 = fi * self.tf
                        nf = self.filters - f0
                        if nf > self.tf:
                            nf = self.tf
                        for rr in range(nr):
                            src = xi + ((<int64_t>(py * ps + rr)) * self.stride_y * self.wp
                                        + ox0) * 4
                            xq_tile(self.tpath, &self.wt[0, f0, 0], self.kp, self.kr, nf, src, 64,
                                    &self.goff[0], npb, acc if rr == 0 else &acc2[t, 0])
                            if rr > 0:
                                xq_max_i32(self.path, acc, &acc2[t, 0],
                                           <int64_t>nf * npb * XQ_PW)
                        for i in range(nf):
                            xq_pooled_row_u8(self.path, acc + i * npb * XQ_PW, npix,
                                             self.corr_[f0 + i], self.mult_[f0 + i],
                                             self.bias_[f0 + i], self.act, inv, out_zero,
                                             out_top, ps, ps, pwc, &rf[t, 0], &rm[t, 0],
                                             &out[f0 + i, py, px0])
                    ox0 = ox0 + npix
