"""`xnoryolo detect VIDEO --track / --analysis`: track ids in the JSON lines, line counts
printed, a bad analysis file is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossing_clip import write_clip
from xnoryolo.cli import main

DEMO = Path(__file__).parents[2] / "xnoryolo" / "configs" / "demo" / "vtest-heldout.mp4"


def test_detect_with_track_ids_and_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "analysis.yaml"
    spec.write_text(
        "lines:\n  - name: walkway\n    points: [[0.35, 0.3], [0.35, 0.7]]\n"
        "    classes: [person]\nmotion: on\n"
    )
    out = tmp_path / "dets.jsonl"
    args = ["detect", str(DEMO), "--analysis", str(spec), "--json", str(out), "--quiet"]
    assert main([*args, "--max-frames", "20"]) == 0
    printed = capsys.readouterr().out
    assert "tracks: " in printed and "line walkway: in " in printed
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = {d["track_id"] for r in records for d in r["detections"] if "track_id" in d}
    assert ids and min(ids) == 1


def test_a_bad_analysis_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = write_clip(tmp_path / "c.mp4")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lines: [{name: x, points: [[0, 0], [2, 2]]}]\n")
    assert main(["detect", str(clip), "--analysis", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "bad.yaml: lines.0.points" in err and "outside the frame" in err
