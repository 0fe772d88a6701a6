# Contract of the box-tracking kernels (track.pyx): batched Kalman filter on 2x2-block states,
# IoU costs, staged minimum-cost matching, the tracks' life cycle, crossings of a line and
# point in polygon over arrays.
# Each is the arithmetic of its NumPy reference (README.md, "track.pyx"), operation for
# operation, so results are bit-identical.
from libc.stdint cimport int8_t, int64_t, uint8_t


cdef void kalman_predict_rows(double[:, ::1] rows, double steps, bint move,
                              const double[::1] q_scale,
                              const double[::1] q_fixed) noexcept nogil

cdef void kalman_initiate_rows(double[:, ::1] rows, const double[:, ::1] boxes,
                               const double[::1] p0_scale,
                               const double[::1] p0_fixed) noexcept nogil

cdef void kalman_update_rows(double[:, ::1] rows, const int64_t[:] measured_by,
                             const double[:, ::1] boxes, const double[::1] r_scale,
                             const double[::1] r_fixed) noexcept nogil

cdef void iou_cost_rows(const double[:, ::1] rows, const int64_t[:] row_class,
                        const double[:, ::1] boxes, const int64_t[:] box_class,
                        double[:, ::1] cost) noexcept nogil

cdef int match_free(const double[:, ::1] cost, const uint8_t[:] row_flags, int row_bits,
                    const uint8_t[:] col_flags, int col_bits, double limit,
                    int64_t[::1] col_of_row, int64_t[::1] row_of_col) noexcept nogil

cdef Py_ssize_t life_cycle(double[:, ::1] rows, int64_t[::1] row_class, int64_t[:, ::1] life,
                           Py_ssize_t n, const int64_t[::1] det_of, const int64_t[::1] box_of,
                           const uint8_t[::1] box_flags, const double[:] scores,
                           const double[:, ::1] boxes, const int64_t[::1] box_class,
                           double new_thresh, int64_t min_hits, int64_t lost_frames,
                           const double[::1] r_scale, const double[::1] r_fixed,
                           const double[::1] p0_scale, const double[::1] p0_fixed,
                           int64_t[::1] counters, int64_t[::1] free_slots, int64_t[::1] ids,
                           int64_t[::1] slots, int64_t[:, ::1] ended,
                           Py_ssize_t *n_ended) noexcept nogil

cdef Py_ssize_t observe_boxes(const double[:, ::1] boxes, const int64_t[::1] slots,
                              const double[:, ::1] lines, const int64_t[:, ::1] zones,
                              const double[:, ::1] edges, const uint8_t[:, ::1] watch,
                              bint has_watch, double hysteresis, double[:, :, ::1] last,
                              int8_t[:, ::1] last_side, uint8_t[:, ::1] inside,
                              int64_t[:, ::1] seen_frame, double[:, ::1] seen_t,
                              int64_t frame, double t, int64_t[:, ::1] events) noexcept nogil

cdef Py_ssize_t line_crossings_of(const double[:, ::1] points, const double[::1] heights,
                                  double ax, double ay, double bx, double by, double norm,
                                  double hysteresis, const int64_t[::1] slots,
                                  double[:, ::1] last, int8_t[::1] last_side,
                                  int8_t[::1] sides, uint8_t[::1] crossed) noexcept nogil

cdef void inside_polygon(const double[:, ::1] points, const double[:] xs,
                         const double[:] ys, const double[:] yj, const double[:] dx,
                         const double[:] dy, uint8_t[::1] inside) noexcept nogil
