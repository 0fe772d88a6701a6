"""Motion gating: a still scene is inferred at most once in ten frames (and at least every
max_interval_s), motion is seen at once, masked motion is not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from track_helpers import tracked

from xnoryolo.detector import Detection, DetectionTable
from xnoryolo.detector.video import Outputs, ProcessOptions, process_video
from xnoryolo.tracking import AnalysisSpec, FrameAnalysis, MotionSpec
from xnoryolo.tracking.motion import MotionGate

DEMO = Path(__file__).parents[2] / "xnoryolo" / "configs" / "demo" / "vtest-heldout.mp4"


class Counting:
    def __init__(self) -> None:
        self.names = ["person"]
        self.calls = 0

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable:
        self.calls += 1
        return DetectionTable.empty(self.names)


def test_still_clip_is_inferred_at_most_once_in_ten_frames(tmp_path: Path) -> None:
    cap = cv2.VideoCapture(str(DEMO))
    ok, first = cap.read()
    cap.release()
    assert ok
    still = tmp_path / "still.mp4"  # the demo clip's first frame held 30 s at 10 fps
    writer = cv2.VideoWriter(str(still), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, first.shape[1::-1])
    for _ in range(300):
        writer.write(first)
    writer.release()
    detector = Counting()
    analysis = FrameAnalysis(AnalysisSpec(motion=True))
    result = process_video(still, detector, ProcessOptions(), Outputs(), analyser=analysis)
    assert result.frames == 300
    # the first frame, then one every max_interval_s (2 s): 15 of 300
    assert detector.calls == result.processed <= 30
    assert analysis.summary()["motion"] == {
        "inferred": detector.calls,
        "skipped": 300 - detector.calls,
    }


def _scene(x: int) -> np.ndarray:
    img = np.full((240, 320, 3), 100, np.uint8)
    cv2.rectangle(img, (x, 100), (x + 20, 150), (230, 230, 230), -1)
    return img


def test_motion_is_seen_at_once_and_the_mask_hides_it() -> None:
    gate = MotionGate(MotionSpec(enabled=True))
    assert gate.check(_scene(10), 0.0)  # the first frame is always inferred
    assert not gate.check(_scene(10), 0.1)
    assert gate.check(_scene(14), 0.2)  # 4 px of 320: seen
    assert gate.check(_scene(14), 2.3)  # still, but max_interval_s passed
    masked = MotionGate(MotionSpec(enabled=True, mask=[[(0, 0), (0.5, 0), (0.5, 1), (0, 1)]]))
    assert masked.check(_scene(10), 0.0)
    assert not any(masked.check(_scene(10 + 4 * i), 0.1 * i) for i in range(1, 12))
    assert masked.check(_scene(200), 1.3)  # in the watched half


def test_tracks_are_carried_through_frames_without_inference() -> None:
    analysis = FrameAnalysis(AnalysisSpec(motion=True, tracking={"min_hits": 1}))
    d = Detection(0, "person", 0.9, 0, 0, 0, 0, 100, 100, 30, 60)
    first, _ = tracked(analysis, (320, 240), [d], 0.0, 0)
    for f in range(1, 15):
        analysis.hold(f / 10)  # 1.4 s of still frames
    again, _ = tracked(analysis, (320, 240), [d], 1.5, 15)
    assert first[0].track_id == again[0].track_id == 1


@pytest.mark.parametrize("value", ["on", True, {"enabled": True, "threshold": 0.01}])
def test_motion_on_shorthands(value: object) -> None:
    assert MotionSpec.model_validate(value).enabled
