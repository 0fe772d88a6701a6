"""AP/mAP on hand-made cases, and `xnoryolo evaluate` on real footage."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from cli_helpers import model_args, xnoryolo
from xnoryolo.evaluate import average_precision, evaluate, iou_matrix, read_yolo_labels
from xnoryolo.models import ModelFiles


def box(c: int, p: float, x: float, y: float, w: float = 0.2, h: float = 0.2):
    return (c, p, x, y, w, h)


def test_iou_matrix() -> None:
    got = iou_matrix([[0.5, 0.5, 0.2, 0.2]], [[0.6, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]])
    assert got[0, 0] == pytest.approx(1 / 3)
    assert got[0, 1] == pytest.approx(1.0)
    assert iou_matrix([[0.1, 0.1, 0.1, 0.1]], [[0.9, 0.9, 0.1, 0.1]])[0, 0] == 0.0


def test_average_precision_all_point_interpolation() -> None:
    assert average_precision([True], 1) == 1.0
    assert average_precision([], 2) == 0.0
    # recall .5/.5/1, precision 1/.5/.667: envelope 1 up to .5, then 2/3
    assert average_precision([True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # a later, better precision lifts the envelope on the left
    assert average_precision([False, True, True], 3) == pytest.approx(2 / 3 * 2 / 3)
    assert average_precision([True, False, True], 3) == pytest.approx(1 / 3 + 1 / 3 * 2 / 3)
    with pytest.raises(ValueError):
        average_precision([True], 0)


def test_evaluate_matching_rules() -> None:
    truths = [
        [box(0, 1, 0.2, 0.2), box(0, 1, 0.7, 0.7), box(1, 1, 0.5, 0.5)],
        [box(0, 1, 0.3, 0.3)],
    ]
    preds = [
        [
            box(0, 0.9, 0.2, 0.2),  # TP
            box(0, 0.8, 0.21, 0.2),  # duplicate of a matched box: FP
            box(0, 0.7, 0.75, 0.85),  # IoU < 0.5: FP
            box(1, 0.6, 0.5, 0.5),  # TP for class 1
            box(2, 0.9, 0.1, 0.1),  # class without ground truth
        ],
        [box(0, 0.5, 0.2, 0.2)],  # frame 1's box is elsewhere: FP (no cross-frame match)
    ]
    r = evaluate(preds, truths)
    c0 = r.classes[0]
    assert (c0.n_gt, c0.n_pred, c0.tp) == (3, 4, 1)
    assert c0.ap == pytest.approx(1 / 3)
    assert r.classes[1].ap == 1.0
    assert r.classes[2].ap is None  # listed, not in the mean
    assert r.map == pytest.approx((1 / 3 + 1.0) / 2)
    assert r.to_json(["a", "b", "c"])["classes"]["c"]["AP"] is None
    perfect = evaluate(truths, truths)
    assert perfect.map == 1.0
    assert evaluate([[], []], truths).map == 0.0


def test_read_yolo_labels(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("0 0.5 0.5 0.1 0.2\n\n3 0.1 0.2 0.3 0.4 0.9\n")
    assert read_yolo_labels(f) == [(0, 1.0, 0.5, 0.5, 0.1, 0.2), (3, 0.9, 0.1, 0.2, 0.3, 0.4)]
    assert read_yolo_labels(tmp_path / "missing.txt") == []
    f.write_text("0 0.5\n")
    with pytest.raises(ValueError, match="expected"):
        read_yolo_labels(f)


def test_cli_evaluate_teacher_against_itself_and_labels(
    yolov3_tiny: ModelFiles, vtest_avi: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    m = model_args(yolov3_tiny)
    r = xnoryolo(
        "evaluate", *m, "--data", vtest_avi, "--frames", "0:3", "--teacher-cfg",
        yolov3_tiny.cfg, "--teacher-weights", yolov3_tiny.weights, "--json", out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["frames"] == 3 and res["mAP"] == 1.0
    assert res["classes"]["person"]["gt"] > 0
    assert "mAP@0.5 = 1.0000" in r.stdout
    # the same through YOLO txt labels written from the teacher's detections
    labels = tmp_path / "labels" / vtest_avi.stem
    labels.mkdir(parents=True)
    cap = cv2.VideoCapture(str(vtest_avi))
    from xnoryolo.detector import Detector

    det = Detector.from_files(yolov3_tiny.cfg, yolov3_tiny.weights, thresh=0.5)
    for i in range(2):
        ok, frame = cap.read()
        assert ok
        lines = [f"{d.class_id} {d.x} {d.y} {d.w} {d.h}" for d in det.detect(frame)]
        (labels / f"{i}.txt").write_text("\n".join(lines) + "\n")
    cap.release()
    r = xnoryolo("evaluate", *m, "--data", vtest_avi, "--frames", "0:2", "--labels", labels.parent)
    assert r.returncode == 0, r.stderr
    assert "mAP@0.5 = 1.0000 over 2 frames" in r.stdout
    r = xnoryolo("evaluate", *m, "--data", vtest_avi)
    assert r.returncode == 2 and "either --teacher-cfg" in r.stderr
