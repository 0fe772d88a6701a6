"""The compiled box-tracking kernels (kernels/track.pyx) against their NumPy references
(tracking/kalman.py, bytetrack.py): bit-identical on 0, 1 and many rows and boxes, degenerate
boxes, ties and limits."""

from __future__ import annotations

import numpy as np
import pytest

from xnoryolo.tracking import bytetrack, kalman

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
