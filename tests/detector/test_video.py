"""process_video: every output format, stride, classes, cancel, atomic results."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import cv2
import pytest

from jobs_helpers import FakeDetector, cut_video, frame_count
from xnoryolo.detector.video import (
    Cancelled,
    Outputs,
    ProcessOptions,
    VideoError,
    probe_video,
    process_video,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def clip(vtest_avi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cut_video(vtest_avi, tmp_path_factory.mktemp("runner") / "clip.avi", 9)


def _outputs(d: Path) -> Outputs:
    return Outputs(
        jsonl=d / "d.jsonl", mot=d / "d.mot.txt", coco=d / "d.coco.json", video=d / "a.mp4"
    )


def test_every_format(clip: Path, tmp_path: Path) -> None:
    out = _outputs(tmp_path)
    seen = []
    res = process_video(clip, FakeDetector(), ProcessOptions(stride=2), out, progress=seen.append)
    assert (res.frames, res.processed) == (9, 5)
    assert res.video_codec in ("avc1", "mp4v")
    assert [p.frames_read for p in seen] == list(range(1, 10))
    assert seen[-1].frames_total == 9 and seen[-1].eta_s == 0

    records = [json.loads(line) for line in out.jsonl.read_text().splitlines()]  # type: ignore[union-attr]
    assert [r["frame"] for r in records] == [0, 2, 4, 6, 8]
    assert records[1]["timestamp_s"] == pytest.approx(0.2)
    assert [d["name"] for d in records[0]["detections"]] == ["person", "bicycle", "car"]

    rows = [line.split(",") for line in out.mot.read_text().splitlines()]  # type: ignore[union-attr]
    assert len(rows) == 10  # two best-class boxes per processed frame
    assert all(len(r) == 10 and r[1] == "-1" and r[7:] == ["-1", "-1", "-1"] for r in rows)
    assert rows[0][0] == "1" and rows[-1][0] == "9"  # 1-based frame numbers
    assert rows[0][2:7] == ["-5", "20", "40", "60", "0.900000"]

    coco = json.loads(out.coco.read_text())  # type: ignore[union-attr]
    assert [i["id"] for i in coco["images"]] == [1, 3, 5, 7, 9]
    assert coco["images"][0]["width"] == 768 and coco["images"][0]["height"] == 576
    assert [c["name"] for c in coco["categories"]] == ["person", "bicycle", "car"]
    ann = coco["annotations"][0]
    assert ann["category_id"] == 1 and ann["bbox"] == [0, 20, 35, 60]  # clipped to the frame
    assert {a["image_id"] for a in coco["annotations"]} <= {i["id"] for i in coco["images"]}
    assert len({a["id"] for a in coco["annotations"]}) == 15

    assert frame_count(out.video) == 9  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["d.jsonl", "d.mot.txt", "d.coco.json", "a.mp4"]
    )


def test_classes_and_threshold(clip: Path, tmp_path: Path) -> None:
    out = Outputs(jsonl=tmp_path / "d.jsonl")
    process_video(
        clip, FakeDetector(), ProcessOptions(classes=frozenset({"car"}), max_frames=3), out
    )
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(records) == 3
    assert all([d["name"] for d in r["detections"]] == ["car"] for r in records)


def test_cancel_leaves_no_file(clip: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(p: object) -> None:
        cancel.set()

    with pytest.raises(Cancelled):
        process_video(clip, FakeDetector(), ProcessOptions(), _outputs(tmp_path), progress, cancel)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"hello, I am text\n" * 100, b"\x00\x00\x00\x18ftypmp42"])
def test_not_a_video(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(VideoError):
        probe_video(bad)
    with pytest.raises(VideoError):
        process_video(bad, FakeDetector(), ProcessOptions(), _outputs(tmp_path / "o"))
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg binary")
def test_h264_via_ffmpeg(clip: Path, tmp_path: Path) -> None:
    out = Outputs(video=tmp_path / "a.mp4", codecs=("mp4v",), h264_via_ffmpeg=True)
    res = process_video(clip, FakeDetector(), ProcessOptions(stride=3), out)
    assert res.video_codec == "h264"
    cap = cv2.VideoCapture(str(out.video))
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"avc1", b"h264")
    cap.release()
    assert frame_count(tmp_path / "a.mp4") == 9
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


_ENCODER_OWNER = """
import sys, threading
from pathlib import Path
from xnoryolo.detector.video import _to_h264
threading.Thread(target=_to_h264, args=(Path(sys.argv[1]), None), daemon=True).start()
threading.Event().wait()
"""


def test_encoder_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A server killed mid re-encode leaves no ffmpeg behind (here a stand-in ffmpeg that
    would sleep for a minute)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is absent: the encoder cannot be tied to its parent")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ffmpeg"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    owner = subprocess.Popen([sys.executable, "-c", _ENCODER_OWNER, str(video)], env=env)

    def sleeper() -> int | None:
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if "(sleep)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == owner.pid:
                return int(entry.name)
        return None

    try:
        deadline = time.monotonic() + 30
        while (child := sleeper()) is None:
            assert time.monotonic() < deadline, "the stand-in ffmpeg never started"
            time.sleep(0.05)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, "ffmpeg outlived the killed process"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
