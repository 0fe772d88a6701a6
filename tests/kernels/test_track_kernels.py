"""The compiled box-tracking kernels (kernels/track.pyx) against their NumPy references
(tracking/kalman.py, bytetrack.py, counting.py): bit-identical on 0, 1 and many rows and
boxes, degenerate boxes, ties and limits, a frame's life cycle and slots, lines and zones."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from xnoryolo.tracking import bytetrack, counting, kalman

track = pytest.importorskip("xnoryolo.kernels.track", reason="kernels not built")

SIZES = [(0, 0), (0, 3), (1, 0), (1, 1), (2, 5), (9, 7), (33, 40)]


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """x0 y0 x1 y1 boxes, some integer, some flat, some inverted, some repeated."""
    x0 = rng.uniform(0, 300, n)
    y0 = rng.uniform(0, 200, n)
    b = np.stack([x0, y0, x0 + rng.uniform(5, 80, n), y0 + rng.uniform(10, 150, n)], 1)
    b[::3] = np.round(b[::3])
    if n > 2:
        b[1, 3] = b[1, 1]  # flat: height 0
        b[2, 2] = b[2, 0] - 4  # inverted
        b[-1] = b[0]  # the same box twice
    return b


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Kalman rows (N, 20) of tracks started on boxes, then moved and corrected a little."""
    mean, cov = kalman.initiate(kalman.xyxy_to_xyah(_boxes(rng, n)))
    rows = np.concatenate([mean, cov.reshape(n, 12)], axis=1)
    rows[:, 4:8] = rng.normal(0, 3, (n, 4))
    rows[:, 12:16] = rng.uniform(0, 2, (n, 4))
    return rows


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("move", [True, False])
def test_kalman_predict_and_update_match_the_reference(n: int, m: int, move: bool) -> None:
    rng = np.random.default_rng(n * 100 + m)
    rows = _rows(rng, n)
    boxes = _boxes(rng, max(m, 1))
    which = rng.integers(-1, len(boxes), n)
    a, b = rows.copy(), rows.copy()
    for steps in (1.0, 0.4, 3.0):
        kalman.predict_rows(a, steps, move, kalman.Q_SCALE, kalman.Q_FIXED)
        track.kalman_predict(b, steps, move, kalman.Q_SCALE, kalman.Q_FIXED)
        assert np.array_equal(a, b)
        kalman.update_rows(a, which, boxes, kalman.R_SCALE, kalman.R_FIXED)
        track.kalman_update(b, which, boxes, kalman.R_SCALE, kalman.R_FIXED)
        assert np.array_equal(a, b)
    if n:
        with pytest.raises(IndexError):
            track.kalman_update(b, np.full(n, len(boxes)), boxes, kalman.R_SCALE, kalman.R_FIXED)


@pytest.mark.parametrize("n", [0, 1, 2, 9, 40])
def test_kalman_initiate_matches_the_reference(n: int) -> None:
    boxes = _boxes(np.random.default_rng(n), n)
    a, b = np.full((n, 20), 7.0), np.full((n, 20), 7.0)
    kalman.initiate_rows(a, boxes, kalman.P0_SCALE, kalman.P0_FIXED)
    track.kalman_initiate(b, boxes, kalman.P0_SCALE, kalman.P0_FIXED)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(("n", "m"), SIZES)
def test_iou_cost_matches_the_reference(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 100 + m + 1)
    rows = _rows(rng, n)
    boxes = _boxes(rng, m)
    if n and m:
        rows[0, :4] = kalman.xyxy_to_xyah(boxes[:1])[0]  # a track right on a box
    rc, bc = rng.integers(0, 2, n), rng.integers(0, 2, m)
    a, b = np.full((n, m), 7.0), np.full((n, m), 7.0)
    bytetrack.iou_cost(rows, rc, boxes, bc, a)
    track.iou_cost(rows, rc, boxes, bc, b)
    assert np.array_equal(a, b)
    assert ((a >= 0) & (a <= 2)).all()


def _match(cost: np.ndarray, rf: np.ndarray, cf: np.ndarray, fast: bool) -> tuple[int, ...]:
    n, m = cost.shape
    cor, roc = np.full(n, -1, np.int64), np.full(m, -1, np.int64)
    stages = (np.array([1, 2, 4], np.uint8), np.array([1, 2, 1], np.uint8))
    limits = np.array([0.8, 0.5, 0.7])
    fn = track.match_stages if fast else bytetrack.match_stages
    left = fn(cost, rf, cf, *stages, limits, cor, roc)
    if left >= 0:  # what the tracker does: the reference decides from that stage on
        bytetrack.match_stages(cost, rf, cf, stages[0][left:], stages[1][left:],
                               limits[left:], cor, roc)  # fmt: skip
    assert all(roc[c] == r for r, c in enumerate(cor) if c >= 0)
    return (left, *cor.tolist(), *roc.tolist())


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("seed", range(6))
def test_staged_matching_matches_lapjv(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # dense competition (seed even) or sparse pairs (odd), costs on the limits too
    cost = rng.uniform(0.0, 1.2 if seed % 2 == 0 else 3.0, (n, m))
    k = min(n, m)
    cost[np.arange(k), np.arange(k)] = 0.81  # just past the first stage's limit
    rf = rng.choice(np.array([4, 3, 1], np.uint8), n)
    cf = rng.choice(np.array([0, 2, 1], np.uint8), m)
    fast, ref = _match(cost, rf, cf, True), _match(cost, rf, cf, False)
    assert fast[1:] == ref[1:] and fast[0] == -1 and ref[0] == -1


def test_alike_boxes_or_tracks_are_left_to_the_reference() -> None:
    # two tracks compete for two identical boxes: two optima, LAPJV's is the answer
    cost = np.array([[0.1, 0.3, 0.1], [0.2, 0.1, 0.2]])
    rf, cf = np.array([1, 1], np.uint8), np.array([1, 1, 1], np.uint8)
    fast, ref = _match(cost, rf, cf, True), _match(cost, rf, cf, False)
    assert fast[0] == 0 and fast[1:] == ref[1:]
    # two identical tracks: same
    fast, ref = _match(cost[[0, 0]], rf, cf, True), _match(cost[[0, 0]], rf, cf, False)
    assert fast[0] == 0 and fast[1:] == ref[1:]
    # one track, two different boxes: decided in the kernel
    assert _match(cost[:1, :2], rf[:1], cf[:2], True)[0] == -1
    # a pair costing the limit itself, in competition: as good matched as not
    at_limit = np.array([[0.8, 0.3], [0.1, 0.9]])
    fast, ref = _match(at_limit, rf, cf[:2], True), _match(at_limit, rf, cf[:2], False)
    assert fast[0] == 0 and fast[1:] == ref[1:]
    # alone at the limit: taken, as LAPJV's caller took it
    assert _match(at_limit[:1, :1], rf[:1], cf[:1], True)[:2] == (-1, 0)


def test_matching_finds_the_optimum_not_the_greedy_pairs() -> None:
    # greedy takes (0, 0) at 0.1 and leaves row 1 alone; the optimum pairs both
    cost = np.array([[0.1, 0.2], [0.15, 0.9]])
    rf, cf = np.array([1, 1], np.uint8), np.array([1, 1], np.uint8)
    assert _match(cost, rf, cf, True)[1:3] == (1, 0)


@pytest.mark.parametrize("n", [0, 1, 2, 50])
def test_line_crossings_and_polygons_match_the_reference(n: int) -> None:
    from xnoryolo.tracking import counting

    rng = np.random.default_rng(n)
    poly = np.array([[10.0, 10.0], [100.0, 10.0], [100.0, 80.0], [55.0, 40.0], [10.0, 80.0]])
    heights = rng.uniform(0, 20, n)
    slots = rng.permutation(n + 3)[:n].astype(np.int64)  # the memory of point i
    for a, b in (((50.0, 0.0), (50.0, 100.0)), ((0.0, 0.0), (110.0, 110.0))):
        norm = max(1e-9, float(np.hypot(b[0] - a[0], b[1] - a[1])))
        mem = [(np.zeros((n + 3, 2)), np.zeros(n + 3, np.int8)) for _ in range(2)]
        crossings = 0
        for step in range(4):  # points moving across the line, some onto it, some past its ends
            points = rng.uniform(0, 110, (n, 2))
            if n >= 2:
                points[0] = poly[1]  # a polygon's vertex
                points[1] = (poly[0] + poly[1]) / 2  # on an edge
            points[::4] = np.round(points[::4] / 10) * 10  # on the grid: on the lines too
            points = np.ascontiguousarray(points)
            got = []
            for fn, (last, last_side) in zip(
                (counting.line_crossings, track.line_crossings), mem, strict=True
            ):
                sides, crossed = np.full(n, 5, np.int8), np.full(n, 5, np.uint8)
                k = fn(points, heights, *a, *b, norm, 0.05, slots, last, last_side, sides, crossed)
                got.append((k, sides.tolist(), crossed.tolist(), last.tolist()))
            assert got[0] == got[1], step
            assert got[0][0] == sum(got[0][2])
            crossings += got[0][0]
            edges = counting.polygon_edges(poly)
            i1, i2 = np.full(n, 5, np.uint8), np.full(n, 5, np.uint8)
            counting.points_inside(points, *edges, i1)
            track.points_inside(points, *edges, i2)
            assert np.array_equal(i1, i2) and set(i1.tolist()) <= {0, 1}
        assert crossings > 0 or n < 50


_STAGES = (np.array([1, 2, 4], np.uint8), np.array([1, 2, 1], np.uint8), np.array([0.8, 0.5, 0.7]))
_STATE_FLAGS = np.array([4, 3, 1], np.uint8)
_Q = (kalman.Q_SCALE, kalman.Q_FIXED)
_RP = (kalman.R_SCALE, kalman.R_FIXED, kalman.P0_SCALE, kalman.P0_FIXED)


def _tracks(rng: np.random.Generator, n: int, cap: int) -> tuple[np.ndarray, ...]:
    """Capacity arrays of n tracks (rows, classes, life: state, id, hits, misses, slot), junk
    beyond n (the kernels must neither read nor keep it), and the slots' counters and free
    stack: slots 0 .. n + 2 used, the two not held by a track free."""
    rows = np.full((cap, 20), np.nan)
    rows[:n] = _rows(rng, n)
    cls = rng.integers(0, 2, cap)
    life = rng.integers(-5, 99, (cap, 5))
    state = rng.integers(0, 3, n)
    life[:n, 0] = state
    life[:n, 1] = np.where(state == 0, -1, rng.permutation(n) + 1)
    life[:n, 2] = rng.integers(1, 5, n)
    life[:n, 3] = np.where(state == 2, rng.integers(1, 4, n), 0)
    order = rng.permutation(n + 2)
    life[:n, 4] = order[:n]
    free = np.full(cap + 2, -3, np.int64)
    free[:2] = order[n:]
    counters = np.array([n + 1, 2, n + 2], np.int64)
    return rows, cls, life, counters, free


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("seed", range(4))
def test_track_match_matches_the_reference(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed * 1000 + n * 50 + m)
    rows, cls, life, _, _ = _tracks(rng, n, n + 3)
    boxes = _boxes(rng, m)
    if n and m:  # boxes near the tracks: real competition
        k = min(n, m)
        boxes[:k] = kalman.xyah_to_xyxy(rows[:k, :4]) + rng.normal(0, 3, (k, 4))
    box_class = rng.integers(0, 2, m)
    if seed % 2 and n >= 2 and m >= 2:  # two alike tracks, two alike boxes: a tie
        rows[1], cls[1], life[1, 0] = rows[0], cls[0], life[0, 0]
        boxes[1] = boxes[0]
        box_class[0] = box_class[1] = cls[0]
    scores = rng.uniform(0, 1, m)
    scores[:2] = 0.6  # on an edge (boxes 0 and 1 confident)
    scores[::4] = 0.6
    if m > 2:
        scores[2] = np.nan
    edges = np.array([0.1, 0.6])
    steps = (0.0, 1.0, 2.5, 1.0)[seed]
    out = []
    for fn in (track.track_match, bytetrack.track_match):
        f = rows.copy()
        cost = np.full((n + 2, m + 3), -7.0)  # scratch longer than the frame
        rf, bf = np.zeros(n + 1, np.uint8), np.zeros(m + 2, np.uint8)
        det_of, box_of = np.zeros(n + 1, np.int64), np.zeros(m + 2, np.int64)
        args = (f, cls, life, n, steps, *_Q, boxes, box_class, scores, edges, _STATE_FLAGS)
        left = fn(*args, *_STAGES, cost, rf, bf, det_of, box_of)
        if left >= 0:  # what the tracker does: LAPJV from that stage on
            bytetrack.match_stages(
                cost[:n, :m], rf[:n], bf[:m], *(s[left:] for s in _STAGES), det_of[:n], box_of[:m]
            )
        out.append((f, cost, rf, bf, det_of, box_of))
    for a, b in zip(*out, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("min_hits", [1, 3])
@pytest.mark.parametrize("seed", range(3))
def test_track_life_matches_the_reference(n: int, m: int, min_hits: int, seed: int) -> None:
    rng = np.random.default_rng(seed * 1000 + n * 50 + m)
    rows, cls, life, counters, free = _tracks(rng, n, n + m + 2)
    boxes = _boxes(rng, max(m, 1))[:m]
    # a random one-to-one matching, in scratch arrays longer than the frame
    k = int(rng.integers(0, min(n, m) + 1))
    det_of, box_of = np.full(n + 2, -1, np.int64), np.full(m + 1, -1, np.int64)
    r, c = rng.permutation(n)[:k], rng.permutation(m)[:k]
    det_of[r], box_of[c] = c, r
    flags = rng.choice(np.array([0, 1, 2], np.uint8), m + 1)
    scores = rng.uniform(0, 1, (m, 2))[:, 1]  # a strided column, as FrameAnalysis passes
    box_class = rng.integers(0, 3, m)
    results = []
    for fn in (track.track_life, bytetrack.track_life):
        f, rc, lf, cnt, fr = rows.copy(), cls.copy(), life.copy(), counters.copy(), free.copy()
        ids, slots, ended = (
            np.full(m, 9, np.int64),
            np.full(m, 9, np.int64),
            np.zeros((n, 2), np.int64),
        )
        kept, n_ended, used = fn(f, rc, lf, n, det_of, box_of, flags, scores, boxes,
                                 box_class, 0.5, min_hits, 2, *_RP, cnt, fr, ids, slots,
                                 ended)  # fmt: skip
        assert used == cnt[2]
        results.append(
            (
                (kept, n_ended, used),
                f[:kept],
                rc[:kept],
                lf[:kept],
                cnt,
                fr[: cnt[1]],
                ids,
                slots,
                ended[:n_ended],
            )
        )
    fast, ref = results
    assert fast[0] == ref[0]
    for a, b in zip(fast[1:], ref[1:], strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    # every slot is a live track's or free, none twice
    kept_slots = fast[3][:, 4].tolist()
    assert sorted(kept_slots + fast[5].tolist()) == list(range(int(fast[4][2])))


def test_track_life_refuses_short_arrays() -> None:
    rng = np.random.default_rng(0)
    rows, cls, life, counters, free = _tracks(rng, 3, 4)  # room for 4: 3 tracks + 2 boxes not
    boxes = _boxes(rng, 2)
    rest = (np.ones(2), boxes, np.zeros(2, np.int64), 0.5, 1, 2, *_RP, counters, free,
            np.empty(2, np.int64), np.empty(2, np.int64), np.empty((3, 2), np.int64))  # fmt: skip
    head = (np.full(3, -1, np.int64), np.full(2, -1, np.int64), np.ones(2, np.uint8))
    with pytest.raises(ValueError, match="shapes"):
        track.track_life(rows, cls, life, 3, *head, *rest)
    rows, cls, life, counters, free = _tracks(rng, 3, 8)
    big = (rows, cls, life, 3)
    rest = (*rest[:10], counters, free, *rest[12:])
    with pytest.raises(IndexError):
        track.track_life(*big, np.array([0, 5, -1]), *head[1:], *rest)
    with pytest.raises(ValueError, match="counters"):
        bad = (*rest[:10], np.array([4, 9, 5]), *rest[11:])
        track.track_life(*big, *head, *bad)


def _counting_state(rng: np.random.Generator, nl: int, nz: int, cap: int) -> list[np.ndarray]:
    return [
        rng.uniform(0, 300, (nl, cap, 2)),
        rng.integers(-1, 2, (nl, cap)).astype(np.int8),
        rng.integers(0, 2, (nz, cap)).astype(np.uint8),
        rng.integers(0, 50, (nz, cap)),
        rng.uniform(0, 5, (nz, cap)),
    ]


@pytest.mark.parametrize(("n", "nl", "nz"), [(0, 2, 2), (1, 1, 0), (5, 0, 1), (40, 2, 3)])
@pytest.mark.parametrize("seed", range(3))
def test_observe_frame_matches_the_reference(n: int, nl: int, nz: int, seed: int) -> None:
    rng = np.random.default_rng(seed * 100 + n)
    cap = n + 4
    lines = np.empty((nl, 6))
    for li in range(nl):
        ax, ay, bx, by = rng.uniform(0, 300, 4)
        if li == 0:
            ax, bx = 150.0, 150.0  # vertical: points land on its grid
        lines[li] = (ax, ay, bx, by, max(1e-9, float(np.hypot(bx - ax, by - ay))), li % 2)
    polys = [rng.uniform(0, 300, (int(rng.integers(3, 8)), 2)) for _ in range(nz)]
    if nz:
        polys[0] = np.array([[50.0, 50], [250, 50], [250, 250], [150, 120], [50, 250]])
    edges = [np.stack(counting.polygon_edges(p), 1) for p in polys]
    zones = np.array(
        [(sum(len(e) for e in edges[:z]), len(edges[z]), z % 2) for z in range(nz)], np.int64
    ).reshape(nz, 3)
    edge_rows = np.concatenate(edges) if edges else np.zeros((0, 5))
    slots = rng.permutation(cap)[:n].astype(np.int64)
    slots[1::5] = -1  # boxes without a track
    states = [_counting_state(np.random.default_rng(seed), nl, nz, cap) for _ in range(2)]
    boxes = _boxes(rng, max(n, 1))[:n]
    for frame in range(6):  # the boxes move, memories carry over
        boxes = boxes + rng.normal(0, 25, boxes.shape)
        boxes[::4] = np.round(boxes[::4])
        if n:
            boxes[0, [0, 2]] = (140.0, 160.0)  # anchor on the vertical line
            boxes[-1, [0, 2, 3]] = (40.0, 60.0, 50.0)  # anchor on a polygon vertex
        watch = None
        if frame % 2:
            watch = rng.integers(0, 2, (nl + nz, n)).astype(np.uint8)
            watch[:, ::3] = 1
        found = []
        for fn, state in zip((track.observe_frame, counting.observe_frame), states, strict=True):
            events = np.full(((nl + nz) * n + 2, 3), -9, np.int64)
            k = fn(boxes, slots, lines, zones, edge_rows, watch, 0.05, *state, frame,
                   frame / 10, events)  # fmt: skip
            found.append(events[:k])
        assert np.array_equal(found[0], found[1])
        for a, b in zip(*states, strict=True):
            assert np.array_equal(a, b)


def test_observe_frame_refuses_bad_slots_and_edges() -> None:
    rng = np.random.default_rng(0)
    state = _counting_state(rng, 1, 1, 4)
    lines = np.array([[0.0, 0, 10, 10, 14.1, 0]])
    zones = np.array([[0, 3, 0]])
    edges = np.stack(counting.polygon_edges(np.array([[0.0, 0], [9, 0], [0, 9]])), 1)
    args = (lines, zones, edges, None, 0.05, *state, 0, 0.0)
    one = np.ones((1, 4))
    with pytest.raises(IndexError, match="slot"):
        track.observe_frame(one, np.array([4]), *args, np.empty((2, 3), np.int64))
    with pytest.raises(IndexError, match="edges"):
        bad = (lines, np.array([[1, 3, 0]]), *args[2:])
        track.observe_frame(one, np.array([0]), *bad, np.empty((2, 3), np.int64))
    with pytest.raises(ValueError, match="shapes"):
        track.observe_frame(one, np.array([0]), *args, np.empty((1, 3), np.int64))


@pytest.mark.parametrize(("n", "m"), SIZES)
@pytest.mark.parametrize("seed", range(4))
def test_bound_arrays_give_what_the_functions_give(n: int, m: int, seed: int) -> None:
    """TrackArrays (compiled, and bytetrack's on the reference functions) on a frame: the
    same matching, life cycle and arrays as track_match / track_life given every array."""
    rng = np.random.default_rng(seed * 1000 + n * 50 + m)
    rows, cls, life, counters, free = _tracks(rng, n, n + m + 2)
    boxes = _boxes(rng, m)
    if n and m:
        k = min(n, m)
        boxes[:k] = kalman.xyah_to_xyxy(rows[:k, :4]) + rng.normal(0, 3, (k, 4))
    box_class = rng.integers(0, 2, m)
    if seed % 2 and n >= 2 and m >= 2:  # a tie: the stage left to LAPJV
        rows[1], cls[1], life[1, 0] = rows[0], cls[0], life[0, 0]
        boxes[1] = boxes[0]
        box_class[0] = box_class[1] = cls[0]
    scores = rng.uniform(0, 1, m)
    edges = np.array([0.1, 0.6])
    steps = (0.0, 1.0, 2.5, 1.0)[seed]

    def state() -> list[np.ndarray]:
        return [rows.copy(), cls.copy(), life.copy(), np.full((n + m + 2, m + 3), -7.0),
                np.zeros(n + m + 2, np.uint8), np.zeros(m + 3, np.uint8),
                np.zeros(n + m + 2, np.int64), np.zeros(m + 3, np.int64), counters.copy(),
                free.copy(), np.zeros((n + m + 2, 2), np.int64)]  # fmt: skip

    def frame(match: Callable[..., int], life_of: Callable[..., tuple[int, int, int]],
              s: list[np.ndarray]) -> tuple[object, ...]:  # fmt: skip
        f, rc, lf, cost, rf, bf, det_of, box_of, cnt, _, ended = s
        left = match(n, steps, boxes, box_class, scores)
        if left >= 0:
            bytetrack.match_stages(
                cost[:n, :m], rf[:n], bf[:m], *(x[left:] for x in _STAGES), det_of[:n], box_of[:m]
            )
        ids, slots = np.full(m, 9, np.int64), np.full(m, 9, np.int64)
        kept, n_ended, used = life_of(n, boxes, box_class, scores, 0.5, 2, 2, ids, slots)
        return (
            (kept, n_ended, used),
            f[:kept],
            rc[:kept],
            lf[:kept],
            cnt,
            ids,
            slots,
            ended[:n_ended],
        )

    def functions(s: list[np.ndarray]) -> tuple[object, ...]:
        f, rc, lf, cost, rf, bf, det_of, box_of, cnt, fr, ended = s
        return frame(
            lambda n, st, b, bc, sc: track.track_match(
                f, rc, lf, n, st, *_Q, b, bc, sc, edges, _STATE_FLAGS, *_STAGES, cost, rf, bf,
                det_of, box_of),
            lambda n, b, bc, sc, nt, mh, lost, ids, slots: track.track_life(
                f, rc, lf, n, det_of, box_of, bf, sc, b, bc, nt, mh, lost, *_RP, cnt, fr, ids,
                slots, ended),
            s,
        )  # fmt: skip

    def bound(cls_: type, s: list[np.ndarray]) -> tuple[object, ...]:
        f, rc, lf, cost, rf, bf, det_of, box_of, cnt, fr, ended = s
        k = cls_(f, rc, lf, *_Q, edges, _STATE_FLAGS, *_STAGES, cost, rf, bf, det_of, box_of,
                 *_RP, cnt, fr, ended)  # fmt: skip
        return frame(k.track_match, k.track_life, s)

    want = functions(state())
    results = [bound(track.TrackArrays, state()), bound(bytetrack.TrackArrays, state())]
    for got in results:
        assert got[0] == want[0]
        for a, b in zip(got[1:], want[1:], strict=True):
            assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize(("n", "nl", "nz"), [(0, 2, 2), (1, 1, 0), (40, 2, 3)])
def test_bound_observe_arrays_give_what_observe_frame_gives(n: int, nl: int, nz: int) -> None:
    rng = np.random.default_rng(n + 10 * nl + 100 * nz)
    cap = n + 4
    lines = np.array([(150.0, 0.0, 150.0, 300.0, 300.0, li % 2) for li in range(nl)]).reshape(nl, 6)
    poly = np.array([[50.0, 50], [250, 50], [250, 250], [150, 120], [50, 250]])
    edge_rows = np.concatenate(
        [np.stack(counting.polygon_edges(poly), 1)] * nz or [np.zeros((0, 5))]
    )
    zones = np.array([(5 * z, 5, z % 2) for z in range(nz)], np.int64).reshape(nz, 3)
    slots = rng.permutation(cap)[:n].astype(np.int64)
    slots[1::5] = -1
    plain = _counting_state(np.random.default_rng(1), nl, nz, cap)
    held = _counting_state(np.random.default_rng(1), nl, nz, cap)
    events = [np.full(((nl + nz) * n + 2, 3), -9, np.int64) for _ in range(2)]
    bound = track.ObserveArrays(lines, zones, edge_rows, 0.05, *held, events[1])
    boxes = _boxes(rng, max(n, 1))[:n]
    for frame in range(6):  # the memories the bound object holds carry over
        boxes = boxes + rng.normal(0, 25, boxes.shape)
        watch = None if frame % 2 else np.ones((nl + nz, n), np.uint8)
        k0 = track.observe_frame(boxes, slots, lines, zones, edge_rows, watch, 0.05, *plain,
                                 frame, frame / 10, events[0])  # fmt: skip
        k1 = bound.observe_frame(boxes, slots, watch, frame, frame / 10)
        assert k0 == k1 and np.array_equal(events[0][:k0], events[1][:k1])
        for a, b in zip(plain, held, strict=True):
            assert np.array_equal(a, b)
