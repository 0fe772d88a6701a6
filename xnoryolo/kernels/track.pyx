"""Per-frame numeric work of tracking boxes, in one pass over plain arrays.

A constant-velocity Kalman filter whose covariance is four independent 2x2 blocks, batched
over rows of 20 floats (mean: 4 components and their 4 velocities; then the blocks: the
components' variances, their covariances with their velocities, the velocities' variances);
1 - IoU costs of those rows' boxes against measured boxes; minimum-cost one-to-one matching
in stages over the rows and columns still free; the crossings of a line and the inside of a
polygon for many points. Each function does the operations of its NumPy reference in the
same order (the build sets -ffp-contract=off), so the results are bit-identical.
"""

from libc.math cimport INFINITY
from libc.stdint cimport int8_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc


cdef void kalman_predict_rows(double[:, ::1] rows, double steps, bint move,
                              const double[::1] q_scale,
                              const double[::1] q_fixed) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef double h, q, vel
    cdef double *r
    for i in range(rows.shape[0]):
        r = &rows[i, 0]
        # the noise follows the moved height, also where the boxes stay (held frames)
        h = r[3] + steps * r[7]
        if move:
            for k in range(4):
                r[k] += steps * r[4 + k]
        for k in range(4):
            vel = r[16 + k]
            r[8 + k] += steps * (r[12 + k] + r[12 + k])
            r[8 + k] += steps * steps * vel
            r[12 + k] += steps * vel
            q = h * q_scale[k] + q_fixed[k]
            q *= q
            q *= steps
            r[8 + k] += q
            q = h * q_scale[4 + k] + q_fixed[4 + k]
            q *= q
            q *= steps
            r[16 + k] += q


cdef inline void _xyah(const double[:, ::1] boxes, int64_t d, double *z) noexcept nogil:
    """Box d (x0 y0 x1 y1) as centre, aspect ratio, height (kalman.xyxy_to_xyah)."""
    cdef double w = boxes[d, 2] - boxes[d, 0]
    cdef double h = boxes[d, 3] - boxes[d, 1]
    if h < 1e-3:
        h = 1e-3
    z[0] = boxes[d, 0] + w / 2
    z[1] = boxes[d, 1] + h / 2
    z[2] = w / h
    z[3] = h


cdef inline void _initiate_row(double *r, const double[:, ::1] boxes, int64_t d,
                               const double[::1] p0_scale,
                               const double[::1] p0_fixed) noexcept nogil:
    """Row r of a new track from box d: the box, no velocity, the initial variances."""
    cdef Py_ssize_t k
    cdef double sd
    _xyah(boxes, d, r)
    for k in range(4):
        r[4 + k] = 0.0
        sd = r[3] * p0_scale[k] + p0_fixed[k]
        r[8 + k] = sd * sd
        r[12 + k] = 0.0
        sd = r[3] * p0_scale[4 + k] + p0_fixed[4 + k]
        r[16 + k] = sd * sd


cdef void kalman_initiate_rows(double[:, ::1] rows, const double[:, ::1] boxes,
                               const double[::1] p0_scale,
                               const double[::1] p0_fixed) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(rows.shape[0]):
        _initiate_row(&rows[i, 0], boxes, i, p0_scale, p0_fixed)


cdef void kalman_update_rows(double[:, ::1] rows, const int64_t[:] measured_by,
                             const double[:, ::1] boxes, const double[::1] r_scale,
                             const double[::1] r_fixed) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef int64_t d
    cdef double h, rk, s, inv_s, g0, g1, innov, gs0, gs1
    cdef double z[4]
    cdef double *r
    for i in range(rows.shape[0]):
        d = measured_by[i]
        if d < 0:
            continue
        r = &rows[i, 0]
        _xyah(boxes, d, z)
        h = r[3]  # the noise follows the height before the correction
        for k in range(4):
            rk = h * r_scale[k] + r_fixed[k]
            s = r[8 + k] + rk * rk
            inv_s = 1.0 / s
            g0 = r[8 + k] * inv_s
            g1 = r[12 + k] * inv_s
            innov = z[k] - r[k]
            r[k] += g0 * innov
            r[4 + k] += g1 * innov
            gs0 = g0 * s
            gs1 = g1 * s
            r[8 + k] -= gs0 * g0
            r[12 + k] -= gs0 * g1
            r[16 + k] -= gs1 * g1


cdef void iou_cost_rows(const double[:, ::1] rows, const int64_t[:] row_class,
                        const double[:, ::1] boxes, const int64_t[:] box_class,
                        double[:, ::1] cost) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double half_w, half_h, ax0, ay0, ax1, ay1, area_a, iw, ih, inter, union, lo, hi
    for i in range(rows.shape[0]):
        half_w = rows[i, 2] * rows[i, 3] / 2
        half_h = rows[i, 3] / 2
        ax0 = rows[i, 0] - half_w
        ay0 = rows[i, 1] - half_h
        ax1 = rows[i, 0] + half_w
        ay1 = rows[i, 1] + half_h
        area_a = (ax1 - ax0) * (ay1 - ay0)
        for j in range(boxes.shape[0]):
            if row_class[i] != box_class[j]:
                cost[i, j] = 2.0
                continue
            hi = ax1 if ax1 < boxes[j, 2] else boxes[j, 2]
            lo = ax0 if ax0 > boxes[j, 0] else boxes[j, 0]
            iw = hi - lo
            hi = ay1 if ay1 < boxes[j, 3] else boxes[j, 3]
            lo = ay0 if ay0 > boxes[j, 1] else boxes[j, 1]
            ih = hi - lo
            if not (iw > 0.0 and ih > 0.0):
                # apart (or touching): no intersection, IoU 0 (finite boxes; the
                # reference's division gives the same)
                cost[i, j] = 1.0
                continue
            inter = iw * ih
            union = area_a + (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1]) - inter
            if union > 0:
                cost[i, j] = 1.0 - inter / (union if union > 1e-9 else 1e-9)
            else:
                cost[i, j] = 1.0


cdef inline double _within(double c, double limit) noexcept nogil:
    return c if c <= limit else INFINITY


cdef bint _identical_lines(const double[:, ::1] cost, const Py_ssize_t *rix, Py_ssize_t nr,
                           const Py_ssize_t *cix, Py_ssize_t nc, double limit,
                           double *rsum, double *csum) noexcept nogil:
    """Whether two of the rows rix (or two of the columns cix) have the same costs on the
    columns cix (rows rix), every cost above limit counting as the same. Only lines with the
    same sum of costs within the limit are compared in full. Scratch: rsum of nr, csum of
    nc."""
    cdef Py_ssize_t a, b, k
    cdef double c
    for a in range(nr):
        rsum[a] = 0.0
    for b in range(nc):
        csum[b] = 0.0
    for a in range(nr):
        for b in range(nc):
            c = cost[rix[a], cix[b]]
            if c <= limit:
                rsum[a] += c
                csum[b] += c
    for a in range(nr):
        for b in range(a + 1, nr):
            if rsum[a] != rsum[b]:
                continue
            for k in range(nc):
                if _within(cost[rix[a], cix[k]], limit) != _within(cost[rix[b], cix[k]], limit):
                    break
            else:
                return True
    for a in range(nc):
        for b in range(a + 1, nc):
            if csum[a] != csum[b]:
                continue
            for k in range(nr):
                if _within(cost[rix[k], cix[a]], limit) != _within(cost[rix[k], cix[b]], limit):
                    break
            else:
                return True
    return False


cdef void _hungarian(const double[:, ::1] cost, const Py_ssize_t *rix, Py_ssize_t nr,
                     const Py_ssize_t *cix, Py_ssize_t nc, double limit,
                     int64_t[::1] col_of_row, int64_t[::1] row_of_col, Py_ssize_t *p,
                     Py_ssize_t *way, Py_ssize_t *used, double *u, double *v,
                     double *minv) noexcept nogil:
    """Least-cost matching of rows rix to columns cix: Hungarian method with potentials
    (shortest augmenting paths), 1-based: rows 1..nr, columns 1..nc the candidates (a pair
    costs its cost - limit; beyond the limit it is not allowed), nc+1..nc+nr one "stay
    unmatched" column per row at cost 0. Scratch: p, way, used, v, minv of nc + nr + 1, u
    of nr + 1."""
    cdef Py_ssize_t m = nc + nr, a, b, i0, j0, j1
    cdef double c, cur, delta
    for a in range(nr + 1):
        u[a] = 0.0
    for b in range(m + 1):
        v[b] = 0.0
        p[b] = 0
        way[b] = 0
    for a in range(1, nr + 1):
        p[0] = a
        j0 = 0
        for b in range(m + 1):
            minv[b] = INFINITY
            used[b] = 0
        while True:
            used[j0] = 1
            i0 = p[j0]
            delta = INFINITY
            j1 = 0
            for b in range(1, m + 1):
                if used[b]:
                    continue
                if b <= nc:
                    c = cost[rix[i0 - 1], cix[b - 1]]
                    c = c - limit if c <= limit else INFINITY
                else:
                    c = 0.0 if b - nc == i0 else INFINITY
                cur = c - u[i0] - v[b]
                if cur < minv[b]:
                    minv[b] = cur
                    way[b] = j0
                if minv[b] < delta:
                    delta = minv[b]
                    j1 = b
            for b in range(m + 1):
                if used[b]:
                    u[p[b]] += delta
                    v[b] -= delta
                else:
                    minv[b] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    for b in range(1, nc + 1):
        if p[b]:
            col_of_row[rix[p[b] - 1]] = cix[b - 1]
            row_of_col[cix[b - 1]] = rix[p[b] - 1]


cdef int match_free(const double[:, ::1] cost, const uint8_t[:] row_flags, int row_bits,
                    const uint8_t[:] col_flags, int col_bits, double limit,
                    int64_t[::1] col_of_row, int64_t[::1] row_of_col) noexcept nogil:
    """Matches rows with a flag of row_bits to columns with a flag of col_bits, both still
    free (-1 in col_of_row / row_of_col), at the least total cost, pairs costing more than
    limit left out: 0; 1 where pairs compete and two candidate rows or columns have the same
    costs, or a pair costs exactly the limit, so that more than one matching can be optimal
    (nothing written); -1 where memory ran out."""
    cdef Py_ssize_t nrow = cost.shape[0], ncol = cost.shape[1], width = ncol + nrow + 1
    cdef Py_ssize_t i, j, a, b, k, top, nr = 0, nc = 0, nc0 = 0, most_r = 0, most_c = 0
    cdef Py_ssize_t cnt, label, sr, sc
    cdef bint at_limit = False
    cdef Py_ssize_t *ints = <Py_ssize_t *>malloc(
        (3 * nrow + 4 * ncol + 4 * width) * sizeof(Py_ssize_t))
    cdef double *reals = <double *>malloc((nrow + 1 + 2 * width) * sizeof(double))
    if ints == NULL or reals == NULL:
        free(ints)
        free(reals)
        return -1
    cdef Py_ssize_t *rix = ints  # the rows with a pair within the limit
    cdef Py_ssize_t *cix = rix + nrow  # the free columns, then those with a pair
    cdef Py_ssize_t *ccount = cix + ncol
    cdef Py_ssize_t *rlab = ccount + ncol  # component of each candidate row, column
    cdef Py_ssize_t *clab = rlab + nrow
    cdef Py_ssize_t *sub_r = clab + ncol  # one component's rows, columns
    cdef Py_ssize_t *sub_c = sub_r + nrow
    cdef Py_ssize_t *stack = sub_c + ncol  # rows as a, columns as -1 - b
    cdef Py_ssize_t *p = stack + width
    cdef Py_ssize_t *way = p + width
    cdef Py_ssize_t *used = way + width
    cdef double *u = reals
    cdef double *v = u + (nrow + 1)
    cdef double *minv = v + width
    for j in range(ncol):
        if (col_flags[j] & col_bits) and row_of_col[j] < 0:
            cix[nc0] = j
            ccount[nc0] = 0
            nc0 += 1
    for i in range(nrow):
        if not (row_flags[i] & row_bits) or col_of_row[i] >= 0:
            continue
        cnt = 0
        for b in range(nc0):
            if cost[i, cix[b]] <= limit:
                cnt += 1
                ccount[b] += 1
                at_limit |= cost[i, cix[b]] == limit
        if cnt:
            rix[nr] = i
            nr += 1
            if cnt > most_r:
                most_r = cnt
    for b in range(nc0):
        if ccount[b]:
            cix[nc] = cix[b]
            if ccount[b] > most_c:
                most_c = ccount[b]
            nc += 1
    if (most_r > 1 or most_c > 1) and (
            at_limit or _identical_lines(cost, rix, nr, cix, nc, limit, u, minv)):
        # two candidate rows (or columns) alike, or a pair costing the limit itself (as good
        # matched as not): the optimum is not unique, and which one is the reference
        # solver's choice; left to the caller
        free(ints)
        free(reals)
        return 1
    # the pairs within the limit link rows and columns into separate groups, and the optimum
    # is each group's own: solved one group at a time (a lone pair is taken as it is)
    for a in range(nr):
        rlab[a] = -1
    for b in range(nc):
        clab[b] = -1
    label = 0
    for a in range(nr):
        if rlab[a] >= 0:
            continue
        rlab[a] = label
        stack[0] = a
        top = 1
        sr = sc = 0
        while top:
            top -= 1
            k = stack[top]
            if k >= 0:
                sub_r[sr] = rix[k]
                sr += 1
                for b in range(nc):
                    if clab[b] < 0 and cost[rix[k], cix[b]] <= limit:
                        clab[b] = label
                        stack[top] = -1 - b
                        top += 1
            else:
                k = -1 - k
                sub_c[sc] = cix[k]
                sc += 1
                for b in range(nr):
                    if rlab[b] < 0 and cost[rix[b], cix[k]] <= limit:
                        rlab[b] = label
                        stack[top] = b
                        top += 1
        label += 1
        if sr == 1 and sc == 1:
            col_of_row[sub_r[0]] = sub_c[0]
            row_of_col[sub_c[0]] = sub_r[0]
        else:
            _hungarian(cost, sub_r, sr, sub_c, sc, limit, col_of_row, row_of_col, p, way,
                       used, u, v, minv)
    free(ints)
    free(reals)
    return 0


# a track's life cycle, one row of 5 integers: state, id (-1 until confirmed), matches in a
# row, inferred frames missed, slot (its place in memories kept per track elsewhere: the
# lines' and zones'). States as tracking/bytetrack.TrackState; box flags as there.
cdef enum:
    TENTATIVE = 0
    TRACKED = 1
    LOST = 2
    HIGH = 1
# counters, int64 in and out: the next id, the free slots (on the stack free_slots), the
# slots ever used
cdef enum:
    NEXT_ID = 0
    N_FREE = 1
    SLOTS_USED = 2


cdef inline int64_t _take_slot(int64_t[::1] counters, const int64_t[::1] free_slots) noexcept nogil:
    if counters[N_FREE] > 0:
        counters[N_FREE] -= 1
        return free_slots[counters[N_FREE]]
    counters[SLOTS_USED] += 1
    return counters[SLOTS_USED] - 1


cdef Py_ssize_t life_cycle(double[:, ::1] rows, int64_t[::1] row_class, int64_t[:, ::1] life,
                           Py_ssize_t n, const int64_t[::1] det_of, const int64_t[::1] box_of,
                           const uint8_t[::1] box_flags, const double[:] scores,
                           const double[:, ::1] boxes, const int64_t[::1] box_class,
                           double new_thresh, int64_t min_hits, int64_t lost_frames,
                           const double[::1] r_scale, const double[::1] r_fixed,
                           const double[::1] p0_scale, const double[::1] p0_fixed,
                           int64_t[::1] counters, int64_t[::1] free_slots, int64_t[::1] ids,
                           int64_t[::1] slots, int64_t[:, ::1] ended,
                           Py_ssize_t *n_ended) noexcept nogil:
    """The life cycle after a frame's matching (det_of[:n]: each row's box or -1, box_of:
    each box's row or -1): the Kalman update of the matched rows; matched rows count a hit
    (and get an id at min_hits), confirmed rows unmatched are lost and end after lost_frames
    misses, tentative rows unmatched are dropped and free their slot; the rows kept move up
    in order; then a row for each confident box (flag HIGH, score >= new_thresh) nobody
    claimed, in box order, on a free slot or a new one. ids / slots (boxes): each box's
    track id and its slot where it has an id, else -1; ended[:n_ended]: (id, slot) of the
    tracks that ended, their slots freed after the births (a slot's memories can be cleared
    before another track takes it). Returns the number of rows now."""
    cdef Py_ssize_t r, k, j, m = box_of.shape[0], kept = 0
    cdef int64_t d
    cdef int64_t *lr
    n_ended[0] = 0
    for j in range(m):
        ids[j] = -1
        slots[j] = -1
    kalman_update_rows(rows[:n], det_of[:n], boxes, r_scale, r_fixed)
    for r in range(n):
        lr = &life[r, 0]
        d = det_of[r]
        if d >= 0:
            lr[2] += 1
            lr[3] = 0
            # ids in row order: the order tracks were born in
            if lr[1] < 0 and lr[2] >= min_hits:
                lr[1] = counters[NEXT_ID]
                counters[NEXT_ID] += 1
            if lr[1] >= 0:
                lr[0] = TRACKED
                ids[d] = lr[1]
                slots[d] = lr[4]
        elif lr[0] != TENTATIVE:
            lr[0] = LOST
            lr[3] += 1
            if lr[3] > lost_frames:
                ended[n_ended[0], 0] = lr[1]
                ended[n_ended[0], 1] = lr[4]
                n_ended[0] += 1
                continue
        else:
            # a tentative track unmatched (a box seen once) is not yet anything: dropped
            free_slots[counters[N_FREE]] = lr[4]
            counters[N_FREE] += 1
            continue
        if kept != r:
            for k in range(20):
                rows[kept, k] = rows[r, k]
            row_class[kept] = row_class[r]
            for k in range(5):
                life[kept, k] = lr[k]
        kept += 1
    for j in range(m):
        if box_of[j] >= 0 or box_flags[j] != HIGH or not (scores[j] >= new_thresh):
            continue
        _initiate_row(&rows[kept, 0], boxes, j, p0_scale, p0_fixed)
        row_class[kept] = box_class[j]
        lr = &life[kept, 0]
        lr[2] = 1
        lr[3] = 0
        lr[4] = _take_slot(counters, free_slots)
        if min_hits <= 1:
            lr[0] = TRACKED
            lr[1] = counters[NEXT_ID]
            counters[NEXT_ID] += 1
            ids[j] = lr[1]
            slots[j] = lr[4]
        else:
            lr[0] = TENTATIVE
            lr[1] = -1
        kept += 1
    for k in range(n_ended[0]):
        free_slots[counters[N_FREE]] = ended[k, 1]
        counters[N_FREE] += 1
    return kept

cdef inline double _cross(double ax, double ay, double bx, double by, double px,
                          double py) noexcept nogil:
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


cdef inline bint _crosses(double ax, double ay, double bx, double by, double px, double py,
                          double qx, double qy) noexcept nogil:
    # the move P -> Q crosses segment A-B (touching at an end point counts)
    cdef double d1 = _cross(ax, ay, bx, by, px, py)
    cdef double d2 = _cross(ax, ay, bx, by, qx, qy)
    cdef double d3 = _cross(px, py, qx, qy, ax, ay)
    cdef double d4 = _cross(px, py, qx, qy, bx, by)
    return d1 * d2 <= 0 and d3 * d4 <= 0 and not (d1 == 0 and d2 == 0)


cdef Py_ssize_t line_crossings_of(const double[:, ::1] points, const double[::1] heights,
                                  double ax, double ay, double bx, double by, double norm,
                                  double hysteresis, const int64_t[::1] slots,
                                  double[:, ::1] last, int8_t[::1] last_side,
                                  int8_t[::1] sides, uint8_t[::1] crossed) noexcept nogil:
    cdef Py_ssize_t i, n = 0
    cdef int64_t k
    cdef double dist, margin, px, py, qx, qy
    cdef int8_t s0, s1
    for i in range(points.shape[0]):
        qx = points[i, 0]
        qy = points[i, 1]
        dist = ((bx - ax) * (qy - ay) - (by - ay) * (qx - ax)) / norm
        margin = hysteresis * heights[i]
        s1 = <int8_t>(dist > margin) - <int8_t>(dist < -margin)
        sides[i] = s1
        crossed[i] = 0
        if s1 == 0:
            continue
        k = slots[i]
        s0 = last_side[k]
        px = last[k, 0]
        py = last[k, 1]
        last[k, 0] = qx
        last[k, 1] = qy
        last_side[k] = s1
        if s0 == 0 or s0 == s1:
            continue
        # the move from the last point off the line to this one
        if _crosses(ax, ay, bx, by, px, py, qx, qy):
            crossed[i] = 1
            n += 1
    return n


cdef void inside_polygon(const double[:, ::1] points, const double[:] xs,
                         const double[:] ys, const double[:] yj, const double[:] dx,
                         const double[:] dy, uint8_t[::1] inside) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef double px, py
    cdef uint8_t odd
    for i in range(points.shape[0]):
        px = points[i, 0]
        py = points[i, 1]
        odd = 0
        for k in range(xs.shape[0]):
            if ((ys[k] > py) != (yj[k] > py)) and px < dx[k] * (py - ys[k]) / dy[k] + xs[k]:
                odd ^= 1
        inside[i] = odd


cdef Py_ssize_t observe_boxes(const double[:, ::1] boxes, const int64_t[::1] slots,
                              const double[:, ::1] lines, const int64_t[:, ::1] zones,
                              const double[:, ::1] edges, const uint8_t[:, ::1] watch,
                              bint has_watch, double hysteresis, double[:, :, ::1] last,
                              int8_t[:, ::1] last_side, uint8_t[:, ::1] inside,
                              int64_t[:, ::1] seen_frame, double[:, ::1] seen_t,
                              int64_t frame, double t, int64_t[:, ::1] events) noexcept nogil:
    cdef Py_ssize_t n = boxes.shape[0], nl = lines.shape[0], i, li, z, e, e0, e1, count = 0
    cdef int64_t k
    cdef double qx, qy, px, py, ax, ay, bx, by, norm, dist, margin
    cdef int8_t s0, s1
    cdef uint8_t odd
    for li in range(nl):
        ax = lines[li, 0]
        ay = lines[li, 1]
        bx = lines[li, 2]
        by = lines[li, 3]
        norm = lines[li, 4]
        for i in range(n):
            k = slots[i]
            if k < 0 or (has_watch and not watch[li, i]):
                continue
            # the anchor: bottom centre (anchor 0) or centre of the box
            qx = (boxes[i, 0] + boxes[i, 2]) / 2
            qy = boxes[i, 3] if lines[li, 5] == 0 else (boxes[i, 1] + boxes[i, 3]) / 2
            dist = ((bx - ax) * (qy - ay) - (by - ay) * (qx - ax)) / norm
            margin = hysteresis * (boxes[i, 3] - boxes[i, 1])
            s1 = <int8_t>(dist > margin) - <int8_t>(dist < -margin)
            if s1 == 0:
                continue
            s0 = last_side[li, k]
            px = last[li, k, 0]
            py = last[li, k, 1]
            last[li, k, 0] = qx
            last[li, k, 1] = qy
            last_side[li, k] = s1
            if s0 == 0 or s0 == s1:
                continue
            if _crosses(ax, ay, bx, by, px, py, qx, qy):
                events[count, 0] = li
                events[count, 1] = i
                events[count, 2] = s1
                count += 1
    for z in range(zones.shape[0]):
        e0 = zones[z, 0]
        e1 = e0 + zones[z, 1]
        for i in range(n):
            k = slots[i]
            if k < 0 or (has_watch and not watch[nl + z, i]):
                continue
            qx = (boxes[i, 0] + boxes[i, 2]) / 2
            qy = boxes[i, 3] if zones[z, 2] == 0 else (boxes[i, 1] + boxes[i, 3]) / 2
            odd = 0
            for e in range(e0, e1):
                if (((edges[e, 1] > qy) != (edges[e, 2] > qy))
                        and qx < edges[e, 3] * (qy - edges[e, 1]) / edges[e, 4] + edges[e, 0]):
                    odd ^= 1
            if odd:
                seen_frame[z, k] = frame
                seen_t[z, k] = t
                if inside[z, k]:
                    continue
                inside[z, k] = 1
            elif inside[z, k]:
                inside[z, k] = 0
            else:
                continue
            events[count, 0] = nl + z
            events[count, 1] = i
            events[count, 2] = 1 if odd else -1
            count += 1
    return count


def kalman_predict(double[:, ::1] rows, double steps, bint move, const double[::1] q_scale,
                   const double[::1] q_fixed):
    """Advance every row (N, 20) by `steps` in place; without `move` only the uncertainty
    grows (kalman.predict_rows is the reference)."""
    if rows.shape[1] != 20 or q_scale.shape[0] != 8 or q_fixed.shape[0] != 8:
        raise ValueError("kalman_predict needs rows (N, 20) and noises of 8")
    with nogil:
        kalman_predict_rows(rows, steps, move, q_scale, q_fixed)


def kalman_initiate(double[:, ::1] rows, const double[:, ::1] boxes,
                    const double[::1] p0_scale, const double[::1] p0_fixed):
    """Row i (N, 20) of a new track from box i (x0 y0 x1 y1): the box, no velocity, the
    initial variances (std h * p0_scale + p0_fixed: components, then velocities)
    (kalman.initiate_rows is the reference)."""
    if (rows.shape[1] != 20 or boxes.shape[0] != rows.shape[0] or boxes.shape[1] != 4
            or p0_scale.shape[0] != 8 or p0_fixed.shape[0] != 8):
        raise ValueError("kalman_initiate needs rows (N, 20), boxes (N, 4), noises of 8")
    with nogil:
        kalman_initiate_rows(rows, boxes, p0_scale, p0_fixed)


def kalman_update(double[:, ::1] rows, const int64_t[:] measured_by,
                  const double[:, ::1] boxes, const double[::1] r_scale,
                  const double[::1] r_fixed):
    """Correct row i (N, 20) in place with box measured_by[i] (x0 y0 x1 y1), where >= 0
    (kalman.update_rows is the reference)."""
    cdef Py_ssize_t i
    if (rows.shape[1] != 20 or measured_by.shape[0] != rows.shape[0] or boxes.shape[1] != 4
            or r_scale.shape[0] != 4 or r_fixed.shape[0] != 4):
        raise ValueError("kalman_update needs rows (N, 20), N indices, boxes (M, 4)")
    for i in range(measured_by.shape[0]):
        if measured_by[i] >= boxes.shape[0]:
            raise IndexError("kalman_update: a box index is out of range")
    with nogil:
        kalman_update_rows(rows, measured_by, boxes, r_scale, r_fixed)


def iou_cost(const double[:, ::1] rows, const int64_t[:] row_class, const double[:, ::1] boxes,
             const int64_t[:] box_class, double[:, ::1] cost):
    """cost (N, M) = 1 - IoU of each row's box (rows[:, :4]: centre, aspect, height) with each
    box (x0 y0 x1 y1), 2 where the classes differ (bytetrack.iou_cost is the reference)."""
    if (rows.shape[1] < 4 or boxes.shape[1] != 4 or row_class.shape[0] != rows.shape[0]
            or box_class.shape[0] != boxes.shape[0] or cost.shape[0] != rows.shape[0]
            or cost.shape[1] != boxes.shape[0]):
        raise ValueError("iou_cost: shapes do not agree")
    with nogil:
        iou_cost_rows(rows, row_class, boxes, box_class, cost)


def match_stages(const double[:, ::1] cost, const uint8_t[:] row_flags,
                 const uint8_t[:] col_flags, const uint8_t[::1] stage_rows,
                 const uint8_t[::1] stage_cols, const double[::1] limits,
                 int64_t[::1] col_of_row, int64_t[::1] row_of_col):
    """Stage s matches the free rows with a flag of stage_rows[s] to the free columns with a
    flag of stage_cols[s] at the least total cost, pairs above limits[s] left out; the
    pairs go to col_of_row / row_of_col (-1: free). Returns -1, or the first stage not done
    because two of its candidate rows or columns have the same costs or a pair costs the
    limit itself (more than one optimum: which one is the caller's choice, e.g. LAPJV's in
    bytetrack.match_stages, the reference)."""
    cdef Py_ssize_t s = 0, n = stage_rows.shape[0]
    cdef int err = 0
    if (row_flags.shape[0] != cost.shape[0] or col_of_row.shape[0] != cost.shape[0]
            or col_flags.shape[0] != cost.shape[1] or row_of_col.shape[0] != cost.shape[1]
            or stage_cols.shape[0] != n or limits.shape[0] != n):
        raise ValueError("match_stages: shapes do not agree")
    with nogil:
        for s in range(n):
            err = match_free(cost, row_flags, stage_rows[s], col_flags, stage_cols[s],
                             limits[s], col_of_row, row_of_col)
            if err:
                break
    if err < 0:
        raise MemoryError()
    return s if err else -1


def line_crossings(const double[:, ::1] points, const double[::1] heights, double ax,
                   double ay, double bx, double by, double norm, double hysteresis,
                   const int64_t[::1] slots, double[:, ::1] last, int8_t[::1] last_side,
                   int8_t[::1] sides, uint8_t[::1] crossed):
    """Side of the line A->B of every point i (x, y): sides[i] +1 / -1 where more than
    hysteresis * heights[i] right / left of it (norm: |B - A|), else 0. Point i's memory is
    slot slots[i] of last (the point) and last_side (its side; 0: none yet): where a point
    is off the line and its last side was the other one, crossed[i] = 1 if the move crosses
    the segment A-B; the memory then takes the point. Returns the number of crossings
    (counting.line_crossings is the reference)."""
    cdef Py_ssize_t i, n = points.shape[0]
    if (heights.shape[0] != n or slots.shape[0] != n or sides.shape[0] != n
            or crossed.shape[0] != n or last.shape[1] != 2
            or last_side.shape[0] != last.shape[0]):
        raise ValueError("line_crossings: shapes do not agree")
    for i in range(n):
        if slots[i] < 0 or slots[i] >= last.shape[0]:
            raise IndexError("line_crossings: a slot is out of range")
    with nogil:
        n = line_crossings_of(points, heights, ax, ay, bx, by, norm, hysteresis, slots, last,
                              last_side, sides, crossed)
    return n


def points_inside(const double[:, ::1] points, const double[:] xs, const double[:] ys,
                  const double[:] yj, const double[:] dx, const double[:] dy,
                  uint8_t[::1] inside):
    """Even-odd rule for every point (N, 2) against a polygon given by its edges (vertex x, y,
    previous vertex's y, dx, dy; counting.polygon_edges) (counting.points_inside is the
    reference)."""
    cdef Py_ssize_t k = xs.shape[0]
    if (ys.shape[0] != k or yj.shape[0] != k or dx.shape[0] != k or dy.shape[0] != k
            or inside.shape[0] != points.shape[0]):
        raise ValueError("points_inside: shapes do not agree")
    with nogil:
        inside_polygon(points, xs, ys, yj, dx, dy, inside)


cpdef int track_match(double[:, ::1] rows, const int64_t[::1] row_class,
                      const int64_t[:, ::1] life, Py_ssize_t n, double steps,
                      const double[::1] q_scale, const double[::1] q_fixed,
                      const double[:, ::1] boxes, const int64_t[::1] box_class,
                      const double[:] scores, const double[::1] score_edges,
                      const uint8_t[::1] state_flags, const uint8_t[::1] stage_rows,
                      const uint8_t[::1] stage_cols, const double[::1] limits,
                      double[:, ::1] cost, uint8_t[::1] row_flags, uint8_t[::1] box_flags,
                      int64_t[::1] det_of, int64_t[::1] box_of) except -2:
    """A frame's prediction and matching of the first n rows (rows (C, 20), row_class, life
    (C, 5): state first) to the boxes (M): the rows move `steps` steps (none for 0: kalman
    predict), box_flags[:M] by score (below score_edges[0] 0, below score_edges[1] 2, else
    1), row_flags[:n] = state_flags[state], cost[:n, :M] the 1 - IoU costs (iou_cost),
    det_of[:n] / box_of[:M] the pairs of the stages (match_stages, from all free). The
    scratch arrays may be longer. Returns -1, or the stage left to the caller
    (bytetrack.track_match is the reference)."""
    cdef Py_ssize_t m = boxes.shape[0], i, s = 0
    cdef int err = 0
    cdef double v
    cdef uint8_t[3] score_flags
    score_flags[0] = 0
    score_flags[1] = 2
    score_flags[2] = 1
    if (n < 0 or rows.shape[1] != 20 or life.shape[1] != 5 or boxes.shape[1] != 4
            or rows.shape[0] < n or row_class.shape[0] < n or life.shape[0] < n
            or q_scale.shape[0] != 8 or q_fixed.shape[0] != 8
            or box_class.shape[0] != m or scores.shape[0] != m or score_edges.shape[0] != 2
            or state_flags.shape[0] != 3 or cost.shape[0] < n or cost.shape[1] < m
            or row_flags.shape[0] < n or box_flags.shape[0] < m or det_of.shape[0] < n
            or box_of.shape[0] < m or stage_cols.shape[0] != stage_rows.shape[0]
            or limits.shape[0] != stage_rows.shape[0]):
        raise ValueError("track_match: shapes do not agree")
    for i in range(n):
        if not 0 <= life[i, 0] < 3:
            raise ValueError("track_match: a state out of range")
    with nogil:
        if n and steps != 0.0:
            kalman_predict_rows(rows[:n], steps, True, q_scale, q_fixed)
        for i in range(m):
            v = scores[i]
            # searchsorted(score_edges, v, "right"): a NaN sorts after every edge
            box_flags[i] = score_flags[2 if v != v else (score_edges[0] <= v)
                                       + (score_edges[1] <= v)]
            box_of[i] = -1
        for i in range(n):
            row_flags[i] = state_flags[life[i, 0]]
            det_of[i] = -1
        if n and m:
            iou_cost_rows(rows[:n], row_class[:n], boxes, box_class, cost[:n, :m])
            for s in range(stage_rows.shape[0]):
                err = match_free(cost[:n, :m], row_flags[:n], stage_rows[s], box_flags[:m],
                                 stage_cols[s], limits[s], det_of[:n], box_of[:m])
                if err:
                    break
    if err < 0:
        raise MemoryError()
    return s if err else -1


cpdef tuple track_life(double[:, ::1] rows, int64_t[::1] row_class, int64_t[:, ::1] life,
                       Py_ssize_t n, const int64_t[::1] det_of, const int64_t[::1] box_of,
                       const uint8_t[::1] box_flags, const double[:] scores,
                       const double[:, ::1] boxes, const int64_t[::1] box_class,
                       double new_thresh, int64_t min_hits, int64_t lost_frames,
                       const double[::1] r_scale, const double[::1] r_fixed,
                       const double[::1] p0_scale, const double[::1] p0_fixed,
                       int64_t[::1] counters, int64_t[::1] free_slots, int64_t[::1] ids,
                       int64_t[::1] slots, int64_t[:, ::1] ended):
    """bytetrack.track_life compiled: the same arguments, results and contract (its
    docstring says them once)."""
    cdef Py_ssize_t m = boxes.shape[0], kept, n_ended = 0, i
    if (n < 0 or rows.shape[1] != 20 or life.shape[1] != 5 or boxes.shape[1] != 4
            or rows.shape[0] < n + m or row_class.shape[0] < n + m or life.shape[0] < n + m
            or det_of.shape[0] < n or box_of.shape[0] < m or box_flags.shape[0] < m
            or scores.shape[0] != m or box_class.shape[0] != m or ids.shape[0] != m
            or slots.shape[0] != m or ended.shape[0] < n or ended.shape[1] != 2
            or counters.shape[0] != 3 or free_slots.shape[0] < rows.shape[0]
            or p0_scale.shape[0] != 8 or p0_fixed.shape[0] != 8
            or r_scale.shape[0] != 4 or r_fixed.shape[0] != 4):
        raise ValueError("track_life: shapes do not agree")
    if not (0 <= counters[N_FREE] <= counters[SLOTS_USED] <= free_slots.shape[0]):
        raise ValueError("track_life: counters out of range")
    for i in range(n):
        if det_of[i] >= m:
            raise IndexError("det_of names a box that is not there")
    with nogil:
        kept = life_cycle(rows, row_class, life, n, det_of, box_of[:m], box_flags, scores,
                          boxes, box_class, new_thresh, min_hits, lost_frames, r_scale,
                          r_fixed, p0_scale, p0_fixed, counters, free_slots, ids, slots,
                          ended, &n_ended)
    return kept, n_ended, counters[SLOTS_USED]


cpdef Py_ssize_t observe_frame(const double[:, ::1] boxes, const int64_t[::1] slots,
                               const double[:, ::1] lines, const int64_t[:, ::1] zones,
                               const double[:, ::1] edges, const uint8_t[:, ::1] watch,
                               double hysteresis, double[:, :, ::1] last,
                               int8_t[:, ::1] last_side, uint8_t[:, ::1] inside,
                               int64_t[:, ::1] seen_frame, double[:, ::1] seen_t,
                               int64_t frame, double t, int64_t[:, ::1] events) except -1:
    """Every line and zone of a frame over its boxes (N, 4: x0 y0 x1 y1); box i is a track's
    where slots[i] >= 0 (its slot in the memories), and watched by line / zone r where
    watch[r, i] (rows: the lines, then the zones; None: all). Line l: lines[l] = A (x, y), B
    (x, y), |B - A|, anchor (0: bottom centre, 1: centre); where box i's anchor crosses the
    segment to its right / left side, more than hysteresis box heights past it, the event
    (l, i, +1 / -1) (the track's memory: last[l] / last_side[l] at its slot, as in
    line_crossings). Zone z: zones[z] = first edge, edges, anchor, the edges rows of edges
    (vertex x, y, previous vertex's y, dx, dy; counting.polygon_edges); where box i's anchor
    is inside (even-odd rule), seen_frame / seen_t at its slot take frame / t and, if
    inside[z, slot] was 0, it becomes 1: the event (L + z, i, +1); outside where it was 1:
    0 and (L + z, i, -1). The events go to events (>= (L + Z) * N rows) in that order: the
    lines, then the zones, each in box order. Returns their number
    (counting.observe_frame is the reference)."""
    cdef Py_ssize_t n = boxes.shape[0], nl = lines.shape[0], nz = zones.shape[0], i, z
    cdef Py_ssize_t cap_l = last_side.shape[1], cap_z = inside.shape[1], count
    cdef bint has_watch = watch is not None
    if (boxes.shape[1] != 4 or slots.shape[0] != n or lines.shape[1] != 6
            or zones.shape[1] != 3 or edges.shape[1] != 5
            or (has_watch and (watch.shape[0] != nl + nz or watch.shape[1] != n))
            or events.shape[0] < (nl + nz) * n or events.shape[1] != 3
            or last.shape[0] != nl or last.shape[1] != cap_l or last.shape[2] != 2
            or last_side.shape[0] != nl or inside.shape[0] != nz
            or seen_frame.shape[0] != nz or seen_t.shape[0] != nz
            or seen_frame.shape[1] != cap_z or seen_t.shape[1] != cap_z):
        raise ValueError("observe_frame: shapes do not agree")
    for i in range(n):
        if (nl and slots[i] >= cap_l) or (nz and slots[i] >= cap_z):
            raise IndexError("observe_frame: a slot is out of range")
    for z in range(nz):
        if zones[z, 0] < 0 or zones[z, 1] < 0 or zones[z, 0] + zones[z, 1] > edges.shape[0]:
            raise IndexError("observe_frame: a zone's edges are out of range")
    with nogil:
        count = observe_boxes(boxes, slots, lines, zones, edges, watch, has_watch, hysteresis,
                              last, last_side, inside, seen_frame, seen_t, frame, t, events)
    return count


cdef class TrackArrays:
    """A tracker's arrays, bound once (and again whenever it grows them), so that a frame's
    two calls pass only that frame's boxes. Each array argument of a compiled call costs a
    buffer acquisition, and on the cold caches an inference leaves behind that is
    microseconds apiece: a frame's calls with every array passed spent more time there than
    in the arithmetic. Its track_match / track_life are those functions on the bound arrays
    (bytetrack.TrackArrays is the reference)."""

    cdef double[:, ::1] rows
    cdef int64_t[::1] row_class
    cdef int64_t[:, ::1] life
    cdef const double[::1] q_scale
    cdef const double[::1] q_fixed
    cdef const double[::1] score_edges
    cdef const uint8_t[::1] state_flags
    cdef const uint8_t[::1] stage_rows
    cdef const uint8_t[::1] stage_cols
    cdef const double[::1] limits
    cdef double[:, ::1] cost
    cdef uint8_t[::1] row_flags
    cdef uint8_t[::1] box_flags
    cdef int64_t[::1] det_of
    cdef int64_t[::1] box_of
    cdef const double[::1] r_scale
    cdef const double[::1] r_fixed
    cdef const double[::1] p0_scale
    cdef const double[::1] p0_fixed
    cdef int64_t[::1] counters
    cdef int64_t[::1] free_slots
    cdef int64_t[:, ::1] ended

    def __init__(self, double[:, ::1] rows, int64_t[::1] row_class, int64_t[:, ::1] life,
                 const double[::1] q_scale, const double[::1] q_fixed,
                 const double[::1] score_edges, const uint8_t[::1] state_flags,
                 const uint8_t[::1] stage_rows, const uint8_t[::1] stage_cols,
                 const double[::1] limits, double[:, ::1] cost, uint8_t[::1] row_flags,
                 uint8_t[::1] box_flags, int64_t[::1] det_of, int64_t[::1] box_of,
                 const double[::1] r_scale, const double[::1] r_fixed,
                 const double[::1] p0_scale, const double[::1] p0_fixed,
                 int64_t[::1] counters, int64_t[::1] free_slots, int64_t[:, ::1] ended):
        self.rows = rows
        self.row_class = row_class
        self.life = life
        self.q_scale = q_scale
        self.q_fixed = q_fixed
        self.score_edges = score_edges
        self.state_flags = state_flags
        self.stage_rows = stage_rows
        self.stage_cols = stage_cols
        self.limits = limits
        self.cost = cost
        self.row_flags = row_flags
        self.box_flags = box_flags
        self.det_of = det_of
        self.box_of = box_of
        self.r_scale = r_scale
        self.r_fixed = r_fixed
        self.p0_scale = p0_scale
        self.p0_fixed = p0_fixed
        self.counters = counters
        self.free_slots = free_slots
        self.ended = ended

    def track_match(self, Py_ssize_t n, double steps, const double[:, ::1] boxes,
                    const int64_t[::1] box_class, const double[:] scores):
        """track_match(rows, row_class, life, n, steps, q_scale, q_fixed, boxes, box_class,
        scores, score_edges, state_flags, stage_rows, stage_cols, limits, cost, row_flags,
        box_flags, det_of, box_of) on the bound arrays."""
        return track_match(self.rows, self.row_class, self.life, n, steps, self.q_scale,
                           self.q_fixed, boxes, box_class, scores, self.score_edges,
                           self.state_flags, self.stage_rows, self.stage_cols, self.limits,
                           self.cost, self.row_flags, self.box_flags, self.det_of,
                           self.box_of)

    def track_life(self, Py_ssize_t n, const double[:, ::1] boxes,
                   const int64_t[::1] box_class, const double[:] scores, double new_thresh,
                   int64_t min_hits, int64_t lost_frames, int64_t[::1] ids,
                   int64_t[::1] slots):
        """track_life(rows, row_class, life, n, det_of, box_of, box_flags, scores, boxes,
        box_class, new_thresh, min_hits, lost_frames, r_scale, r_fixed, p0_scale, p0_fixed,
        counters, free_slots, ids, slots, ended) on the bound arrays."""
        return track_life(self.rows, self.row_class, self.life, n, self.det_of, self.box_of,
                          self.box_flags, scores, boxes, box_class, new_thresh, min_hits,
                          lost_frames, self.r_scale, self.r_fixed, self.p0_scale,
                          self.p0_fixed, self.counters, self.free_slots, ids, slots,
                          self.ended)


cdef class ObserveArrays:
    """observe_frame's lines, zones and memories bound once (and again whenever they change or
    grow), so that a frame's call passes only its boxes, slots and class filter (why:
    TrackArrays). counting.ObserveArrays is the reference."""

    cdef const double[:, ::1] lines
    cdef const int64_t[:, ::1] zones
    cdef const double[:, ::1] edges
    cdef double hysteresis
    cdef double[:, :, ::1] last
    cdef int8_t[:, ::1] last_side
    cdef uint8_t[:, ::1] inside
    cdef int64_t[:, ::1] seen_frame
    cdef double[:, ::1] seen_t
    cdef int64_t[:, ::1] events

    def __init__(self, const double[:, ::1] lines, const int64_t[:, ::1] zones,
                 const double[:, ::1] edges, double hysteresis, double[:, :, ::1] last,
                 int8_t[:, ::1] last_side, uint8_t[:, ::1] inside,
                 int64_t[:, ::1] seen_frame, double[:, ::1] seen_t, int64_t[:, ::1] events):
        self.lines = lines
        self.zones = zones
        self.edges = edges
        self.hysteresis = hysteresis
        self.last = last
        self.last_side = last_side
        self.inside = inside
        self.seen_frame = seen_frame
        self.seen_t = seen_t
        self.events = events

    def observe_frame(self, const double[:, ::1] boxes, const int64_t[::1] slots,
                      const uint8_t[:, ::1] watch, int64_t frame, double t):
        """observe_frame(boxes, slots, lines, zones, edges, watch, hysteresis, last,
        last_side, inside, seen_frame, seen_t, frame, t, events) on the bound arrays."""
        return observe_frame(boxes, slots, self.lines, self.zones, self.edges, watch,
                             self.hysteresis, self.last, self.last_side, self.inside,
                             self.seen_frame, self.seen_t, frame, t, self.events)
