"""Tracks, lines and zones on a live stream through the real app: line and zone events reach
subscribers (the hub every output reads), counters show in the stream status and /metrics,
the snapshot has the line drawn, settings are checked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossing_clip import EXPECTED, FRAMES, ColourDetector, write_clip
from service_helpers import run_service, settings_for, wait_until
from xnoryolo.service.settings import StreamConfig
from xnoryolo.service.streams.events import DetectionEvent, LineCrossed, ZoneEntered, ZoneLeft

LINES = [{"name": "door", "points": [[0.5, 0.02], [0.5, 0.98]]}]
ZONES = [{"name": "left half", "points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], "classes": ["car"]}]


def test_stream_counts_crossings_and_publishes_line_and_zone_events(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "crossings.mp4")
    settings = settings_for(sources={"media_roots": [str(tmp_path)]}, data_dir=tmp_path / "data")
    with run_service(settings, ColourDetector()) as svc:
        sub = svc.pipeline.hub.subscribe(None)
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            body = {"url": str(clip), "id": "door", "lines": LINES, "zones": ZONES}
            r = client.post("/v1/streams", json=body)
            assert r.status_code == 201, r.text
            events: list[Any] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                e = sub.get_blocking(timeout=0.5)
                if e is not None:
                    events.append(e)
                if sum(isinstance(x, DetectionEvent) for x in events) >= FRAMES:
                    break
            crossed = [e for e in events if isinstance(e, LineCrossed)]
            got: dict[str, dict[str, int]] = {"in": {}, "out": {}}
            for e in crossed:
                got[e.direction][e.name] = got[e.direction].get(e.name, 0) + 1
            assert got == EXPECTED
            assert all(e.stream == "door" and e.timestamp for e in crossed)
            assert crossed[0].to_json()["type"] == "line_crossed"
            # the car drives out of the left half; people are not watched there
            zone = [e for e in events if isinstance(e, ZoneEntered | ZoneLeft)]
            assert [(type(e).__name__, e.name) for e in zone] == [
                ("ZoneEntered", "car"),
                ("ZoneLeft", "car"),
            ]
            tracked = {
                d.track_id for e in events if isinstance(e, DetectionEvent) for d in e.detections
            }
            assert tracked - {None} == set(range(1, 7))

            status = client.get("/v1/streams/door").json()
            assert status["analysis"]["lines"]["door"]["in"] == EXPECTED["in"]
            assert status["tracking"] is True and status["lines"][0]["name"] == "door"
            metrics = client.get("/metrics").text
            assert (
                'xnoryolo_line_crossings_total{class="person",direction="in",line="door",'
                'name="crossings.mp4",stream="door"} 3.0'
            ) in metrics
            assert 'xnoryolo_zone_exits_total{class="car"' in metrics
            r = client.get("/v1/streams/door/snapshot.jpg")
            assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
        sub.close()


def test_stream_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="tracking must be enabled"):
        StreamConfig(url="x.mp4", lines=LINES, tracking=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside the frame"):
        StreamConfig.model_validate(
            {"url": "x.mp4", "zones": [{"name": "z", "points": [[0, 0], [2, 0], [1, 1]]}]}
        )
    config = StreamConfig.model_validate({"url": "x.mp4", "motion": "on"})
    assert config.motion.enabled and config.tracking.enabled


def test_unknown_class_in_a_line_is_refused(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4")
    settings = settings_for(sources={"media_roots": [str(tmp_path)]}, data_dir=tmp_path / "data")
    with run_service(settings, ColourDetector()) as svc, httpx.Client(base_url=svc.url) as client:
        lines = [{**LINES[0], "classes": ["unicorn"]}]
        r = client.post("/v1/streams", json={"url": str(clip), "lines": lines})
        assert r.status_code in (400, 422) and "unicorn" in r.text


def test_job_with_lines_zones_and_motion_options(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "crossings.mp4")
    settings = settings_for(data_dir=tmp_path / "data")
    with run_service(settings, ColourDetector()) as svc, httpx.Client(base_url=svc.url) as client:
        form = {
            "lines": json.dumps(LINES),
            "zones": json.dumps(ZONES),
            "motion": "on",
            "video": "false",
        }
        with clip.open("rb") as f:
            r = client.post("/v1/jobs", files={"file": ("c.mp4", f, "video/mp4")}, data=form)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["options"]["lines"][0]["name"] == "door" and job["options"]["motion"]["enabled"]
        done = wait_until(
            lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["state"] == "succeeded" and j,
            60,
        )
        assert "summary" in done["results"]
        summary = client.get(f"/v1/jobs/{job['id']}/summary").json()
        door = summary["lines"]["door"]
        assert {"in": door["in"], "out": door["out"]} == EXPECTED
        assert summary["motion"]["inferred"] == summary["frames_inferred"] <= FRAMES
        kinds = [e["type"] for e in summary["events"]]
        assert kinds.count("line_crossed") == 6 and kinds.count("zone_entered") == 1
        bad = client.post("/v1/jobs", json={"url": "http://example.invalid/v.mp4", "lines": "[{]"})
        assert bad.status_code == 422 and "lines" in bad.text


class _BrokenGate:
    tracking = False

    def __init__(self) -> None:
        self.calls = 0

    def wants_inference(self, image: Any, t: float) -> bool:
        self.calls += 1
        raise RuntimeError("gate broke")


def test_a_failing_motion_gate_infers_and_keeps_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import numpy as np

    from xnoryolo.service.inference import InferencePool
    from xnoryolo.service.streams.events import Frame
    from xnoryolo.service.streams.manager import DetectParams
    from xnoryolo.service.streams.scheduler import FrameScheduler

    gate = _BrokenGate()
    sched = FrameScheduler()
    sched.add("s")
    done: list[DetectionEvent] = []
    params = DetectParams(analysis=gate)  # type: ignore[arg-type]
    pool = InferencePool(ColourDetector(), sched, lambda _: params, lambda e, _: done.append(e))
    pool.start()
    try:
        for seq in range(3):
            image = np.zeros((36, 64, 3), np.uint8)
            sched.offer(Frame("s", seq, image, time.time(), time.monotonic()))
            wait_until(lambda n=seq: len(done) > n, 5)
    finally:
        pool.stop()
    assert gate.calls == 3 and [e.frame.seq for e in done] == [0, 1, 2]
    assert "motion gating failed" in caplog.text


def test_line_events_reach_the_mqtt_broker(mosquitto: Any, tmp_path: Path) -> None:
    from mqtt_broker import PASSWORD, USER, Recorder

    clip = write_clip(tmp_path / "crossings.mp4")
    mqtt = {"host": "127.0.0.1", "port": mosquitto.port, "username": USER, "password": PASSWORD}
    settings = settings_for(
        sources={"media_roots": [str(tmp_path)]}, data_dir=tmp_path / "data", mqtt=mqtt
    )
    with run_service(settings, ColourDetector()) as svc:
        rec = Recorder(mosquitto)
        try:
            with httpx.Client(base_url=svc.url, timeout=10) as client:
                body = {"url": str(clip), "id": "door", "lines": LINES}
                assert client.post("/v1/streams", json=body).status_code == 201
            wait_until(lambda: rec.count("xnoryolo/door/line_crossed") >= 6, 60, what="crossings")
            event = json.loads(rec.last("xnoryolo/door/line_crossed") or b"")
            assert event["type"] == "line_crossed" and event["line"] == "door"
            assert event["stream"] == "door" and event["track_id"] >= 1
        finally:
            rec.close()


def test_lines_may_not_count_classes_the_stream_drops() -> None:
    lines = [{**LINES[0], "classes": ["car"]}]
    with pytest.raises(ValueError, match="'classes' filter drops: car"):
        StreamConfig.model_validate({"url": "x.mp4", "classes": ["person"], "lines": lines})
    StreamConfig.model_validate({"url": "x.mp4", "classes": ["person", "car"], "lines": lines})
