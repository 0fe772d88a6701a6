"""Counting and zones end to end on a rendered clip with known crossings (process_video, the
path jobs take), the geometry, and the job summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from track_helpers import tracked

from crossing_clip import EXPECTED, FRAMES, ColourDetector, write_clip
from xnoryolo.detector.video import Outputs, ProcessOptions, process_video
from xnoryolo.tracking import AnalysisSpec, FrameAnalysis, LineSpec, ZoneSpec
from xnoryolo.tracking.counting import point_in_polygon, segments_cross
from xnoryolo.tracking.draw import draw_analysis

LINE = LineSpec(name="door", points=((0.5, 0.02), (0.5, 0.98)))
LEFT = ZoneSpec(name="left", points=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)])


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "crossings.mp4")


def test_rendered_crossings_are_counted_exactly_both_ways(clip: Path, tmp_path: Path) -> None:
    analysis = FrameAnalysis(AnalysisSpec(lines=[LINE], zones=[LEFT]))
    result = process_video(
        clip,
        ColourDetector(),
        ProcessOptions(),
        Outputs(mot=tmp_path / "t.mot", video=tmp_path / "a.mp4"),
        analyser=analysis,
        annotate=lambda im, d: draw_analysis(im, d, analysis),
    )
    assert result.frames == FRAMES
    s = analysis.summary()
    assert {k: s["lines"]["door"][k] for k in ("in", "out")} == EXPECTED
    assert s["tracks"] == 6  # every mover one track, through the occlusions
    crossed = [e for e in result.events if e.to_json()["type"] == "line_crossed"]
    assert len(crossed) == 6 and len({(e.track_id, e.direction) for e in crossed}) == 6
    zone = s["zones"]["left"]
    # every track that was ever left of the line entered; those that stay there leave at the
    # end of the video (reason "lost")
    assert sum(zone["entered"].values()) == 6 and sum(zone["left"].values()) == 6
    assert zone["inside"] == {} and zone["dwell_s"]["max"] > 0
    ids = {int(line.split(",")[1]) for line in (tmp_path / "t.mot").read_text().splitlines()}
    assert ids == set(range(1, 7))


def test_each_track_counts_once_each_way_however_it_jitters() -> None:
    analysis = FrameAnalysis(AnalysisSpec(lines=[LINE], tracking={"min_hits": 1}))
    from xnoryolo.detector import Detection

    xs = [312, 327, 313, 328, 314, 326]  # the anchor dances across x = 320
    for f, x in enumerate(xs):
        d = Detection(0, "person", 0.9, 0, 0, 0, 0, x - 15, 100, 30, 60)
        tracked(analysis, (640, 360), [d], f / 10, f)
    lines = analysis.summary()["lines"]["door"]
    assert lines["in"] == {"person": 1} and lines["out"] == {"person": 1}


def test_every_box_its_own_id_and_a_box_s_other_classes_its_id() -> None:
    from xnoryolo.detector import Detection

    analysis = FrameAnalysis(AnalysisSpec(tracking={"min_hits": 1}))
    # two people on the same pixels (one behind the other), and the box's second class
    a = Detection(0, "person", 0.9, 0, 0, 0, 0, 100, 100, 30, 60)
    b = Detection(0, "person", 0.8, 0, 0, 0, 0, 100, 100, 30, 60)
    other = Detection(1, "bicycle", 0.3, 0, 0, 0, 0, 100, 100, 30, 60, best_class=False)
    out, _ = tracked(analysis, (640, 360), [a, other, b], 0.0, 0)
    assert [d.track_id for d in out] == [1, 2, 2]
    assert [(d.prob, d.name) for d in out] == [(0.9, "person"), (0.3, "bicycle"), (0.8, "person")]


def test_geometry() -> None:
    assert segments_cross((0, 0), (2, 2), (0, 2), (2, 0))
    assert not segments_cross((0, 0), (1, 0), (0, 1), (1, 1))
    assert not segments_cross((0, 0), (0.4, 0.4), (1, 0), (0, 1))  # short of the segment
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert point_in_polygon(5, 5, square) and not point_in_polygon(15, 5, square)
    tri = np.array([[0, 0], [10, 0], [0, 10]], float)
    assert point_in_polygon(2, 2, tri) and not point_in_polygon(8, 8, tri)


def test_specs_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="outside the frame"):
        LineSpec(name="a", points=((0, 0), (1.5, 1)))
    with pytest.raises(ValueError, match="unique"):
        AnalysisSpec(lines=[LINE], zones=[LEFT.model_copy(update={"name": "door"})])
    with pytest.raises(ValueError, match="tracking must be enabled"):
        AnalysisSpec(lines=[LINE], tracking=False)
    spec = AnalysisSpec.model_validate({"motion": "on", "tracking": "off"})
    assert spec.motion.enabled and not spec.tracking.enabled
    assert json.loads(spec.model_dump_json())["motion"]["max_interval_s"] == 2.0
