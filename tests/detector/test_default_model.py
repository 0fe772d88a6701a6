"""The shipped default model (configs/default): loads from its packed file and finds the
scene's people on held-out footage."""

from __future__ import annotations

import cv2

from refdata import CONFIGS, DEMO_CLIP
from xnoryolo.detector import Detector, Network
from xnoryolo.detector.packed import packed_names

MODEL = CONFIGS / "default" / "yolov3-tiny_xnor-partial_vtest.xnor"
CFG = CONFIGS / "yolov3-tiny_xnor-partial.cfg"
CLIP = DEMO_CLIP


def test_default_model_is_the_partial_layout_and_detects_people() -> None:
    assert MODEL.stat().st_size <= 7_000_000
    names = packed_names(MODEL)
    assert names is not None and names[0] == "person"
    net = Network.load(None, MODEL, "numpy")
    assert [ly.index for ly in net.layers if getattr(ly, "xnor", False)] == [10, 12, 13, 18, 21]
    det = Detector(net, names)
    cap = cv2.VideoCapture(str(CLIP))
    ok, frame = cap.read()
    cap.release()
    assert ok
    people = [d for d in det.detect(frame) if d.name == "person"]
    assert len(people) >= 3
    # the same through the repository's cfg (what `xnoryolo detect --cfg` takes)
    same = Detector.from_files(CFG, MODEL, backend="numpy")
    assert [(d.class_id, d.prob) for d in same.detect(frame)] == [
        (d.class_id, d.prob) for d in det.detect(frame)
    ]
