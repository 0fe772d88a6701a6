"""`xnoryolo detect VIDEO` runs the jobs' process_video: same JSON lines and MP4 as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobs_helpers import cut_video, frame_count
from xnoryolo.cli import main

pytestmark = pytest.mark.timeout(120)


def _model_args(model_files: Any) -> list[str]:
    return [
        *("--cfg", str(model_files.cfg), "--weights", str(model_files.weights)),
        *("--names", str(model_files.names), "--quiet"),
    ]


def test_detect_video_writes_json_lines_and_mp4(
    tmp_path: Path, vtest_avi: Path, model_files: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = cut_video(vtest_avi, tmp_path / "clip.avi", 4)
    out_json, out_mp4 = tmp_path / "o" / "dets.jsonl", tmp_path / "o" / "annotated.mp4"
    rc = main(
        [
            *("detect", str(clip), *_model_args(model_files)),
            *("--json", str(out_json), "--out", str(out_mp4)),
        ]
    )
    assert rc == 0
    summary = capsys.readouterr().out
    assert "4 frames in" in summary and "person:" in summary
    records = [json.loads(line) for line in out_json.read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    assert records[1]["timestamp_s"] == pytest.approx(0.1)
    assert set(records[0]["detections"][0]) == {
        *("class_id", "name", "prob", "x", "y", "w", "h"),
        *("left", "top", "width", "height", "objectness", "best_class"),
    }
    assert frame_count(out_mp4) == 4
    assert sorted(p.name for p in out_json.parent.iterdir()) == ["annotated.mp4", "dets.jsonl"]


@pytest.mark.parametrize("content", [b"", b"just some text\n" * 50])
def test_detect_not_a_video_is_one_clear_line(
    tmp_path: Path, model_files: Any, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    out = tmp_path / "dets.jsonl"
    rc = main(["detect", str(bad), *_model_args(model_files), "--json", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"xnoryolo: error: {bad}:")
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
