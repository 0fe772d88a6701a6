"""The detector's table of a frame's detections: the printed pixels as darknet rounds them,
`Detection`s made from it (with and without track ids), class filters, and tables of
detections made elsewhere."""

from __future__ import annotations

import math

import numpy as np

from xnoryolo.detector import Detection, DetectionTable
from xnoryolo.detector.detections import printed_corners

F32 = np.float32


def _c_round(v: float) -> int:
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def _printed(box: np.ndarray, im_w: int, im_h: int) -> tuple[int, int, int, int]:
    """darknet's pixels of one box, one float32 scalar at a time."""
    x, y, w, h = box
    return (
        _c_round(float((x - w / F32(2)) * F32(im_w))),
        _c_round(float((y - h / F32(2)) * F32(im_h))),
        _c_round(float(w * F32(im_w))),
        _c_round(float(h * F32(im_h))),
    )


def test_printed_corners_round_as_darknet_prints() -> None:
    rng = np.random.default_rng(0)
    boxes = rng.uniform(-0.3, 1.3, (4000, 4)).astype(F32)
    boxes[:, 2:] = np.abs(boxes[:, 2:])
    # halves exactly: x - w/2 on a half pixel, on either side of zero
    boxes[:200, 0] = (np.arange(200, dtype=F32) - 100.5) / F32(640)
    boxes[:200, 2] = 0
    boxes[200:400, 2] = (np.arange(200, dtype=F32) + 0.5) / F32(640)
    for im_w, im_h in ((640, 480), (1, 1), (1919, 1081), (7, 3)):
        got = printed_corners(boxes, im_w, im_h)
        assert got.dtype == np.float64 and got.flags.c_contiguous
        want = np.array([_printed(b, im_w, im_h) for b in boxes], np.float64)
        want[:, 2:] += want[:, :2]
        np.testing.assert_array_equal(got, want)
        assert not np.signbit(got[got == 0]).any()


def _table() -> DetectionTable:
    dets = [
        Detection(0, "person", 0.9, 0.1, 0.2, 0.1, 0.2, -5, 20, 40, 60, 0.95),
        Detection(1, "bicycle", 0.3, 0.1, 0.2, 0.1, 0.2, -5, 20, 40, 60, 0.95, False),
        Detection(2, "car", 0.7, 0.5, 0.5, 0.2, 0.1, 320, 240, 640, 30, 0.8),
    ]
    return DetectionTable.from_detections(dets)


def test_detections_round_trip_and_take_track_ids() -> None:
    table = _table()
    plain = table.detections()
    assert plain == [
        Detection(0, "person", 0.9, 0.1, 0.2, 0.1, 0.2, -5, 20, 40, 60, 0.95),
        Detection(1, "bicycle", 0.3, 0.1, 0.2, 0.1, 0.2, -5, 20, 40, 60, 0.95, False),
        Detection(2, "car", 0.7, 0.5, 0.5, 0.2, 0.1, 320, 240, 640, 30, 0.8),
    ]
    assert all(type(v) is int for d in plain for v in (d.class_id, d.left, d.width))
    assert table.corners.tolist()[0] == [-5, 20, 35, 80]
    ids = table.detections(np.array([4, 4, -1]))
    assert [d.track_id for d in ids] == [4, 4, None]
    assert [d.to_json() for d in ids][2] == plain[2].to_json()
    assert "track_id" in ids[0].to_json() and "track_id" not in plain[0].to_json()


def test_only_keeps_the_named_classes_and_empty_tables() -> None:
    table = _table()
    assert table.only({"person", "bicycle", "car"}) is table
    cars = table.only({"car"})
    assert len(cars) == 1 and [d.name for d in cars.detections()] == ["car"]
    assert len(table.only({"dog"})) == 0 and table.only({"dog"}).detections() == []
    empty = DetectionTable.from_detections([])
    assert len(empty) == 0 and empty.detections() == [] and empty.corners.shape == (0, 4)
