"""/v1/jobs against a real uvicorn: upload, follow (poll and SSE), every result format,
cancel, delete, URL jobs, and uploads that must be refused."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from jobs_helpers import FakeDetector, cut_video, frame_count
from service_clients import read_sse
from service_helpers import run_service, settings_for, wait_until

pytestmark = pytest.mark.timeout(180)

FINISHED = ("succeeded", "failed", "cancelled")
STORE = {"spec": "sqlite"}  # the job store service() starts with (see the store fixture)


@pytest.fixture(params=["sqlite", "postgresql"], autouse=True)
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test on both job stores: the embedded SQLite and a PostgreSQL database."""
    spec = "sqlite"
    if request.param == "postgresql":
        spec = request.getfixturevalue("postgres").new_database()
    STORE["spec"] = spec
    yield spec
    STORE["spec"] = "sqlite"


@pytest.fixture(scope="module")
def media(vtest_avi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("jobs-media")
    cut_video(vtest_avi, d / "clip20.avi", 20)
    cut_video(vtest_avi, d / "clip6.mp4", 6, "mp4v")
    return d


@contextlib.contextmanager
def service(tmp_path: Path, detector: Any, **jobs: Any) -> Iterator[tuple[Any, httpx.Client]]:
    jobs = {"store": STORE["spec"], **jobs}
    settings = settings_for(data_dir=tmp_path / "data", jobs=jobs)
    with run_service(settings, detector) as svc, httpx.Client(base_url=svc.url, timeout=30) as c:
        yield svc, c


def upload(client: httpx.Client, path: Path, **options: Any) -> httpx.Response:
    with path.open("rb") as f:
        return client.post(
            "/v1/jobs",
            files={"file": (path.name, f, "video/x-msvideo")},
            data={k: str(v) for k, v in options.items()},
        )


def wait_finished(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in FINISHED else None

    return wait_until(done, timeout, interval=0.2, what=f"job {job_id} to finish")


def test_upload_follow_and_every_format(tmp_path: Path, media: Path, detector: Any) -> None:
    """The real yolov3-tiny on 20 frames of vtest (every 2nd frame detected)."""
    with service(tmp_path, detector) as (_, client):
        r = upload(client, media / "clip20.avi", stride=2, threshold=0.25)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] in ("queued", "running") and r.headers["location"].endswith(job["id"])
        assert job["progress"]["frames_total"] == 20 and job["video"]["width"] == 768
        events = read_sse(
            client,
            f"/v1/jobs/{job['id']}/events",
            lambda ev: ev[-1][1]["state"] in FINISHED,
            timeout=150,
        )
        assert all(name == "job" for name, _ in events)
        done = [e["progress"]["frames_done"] for _, e in events]
        assert done == sorted(done) and len(events) >= 2
        job = wait_finished(client, job["id"])
        assert job["state"] == "succeeded", job
        assert job["progress"] == {"frames_done": 20, "frames_total": 20, "percent": 100.0}
        assert job["fps"] > 0 and job["eta_s"] == 0 and job["error"] is None
        # OpenCV's wheels cannot encode H.264; the system ffmpeg re-encodes where present.
        codec = "h264" if shutil.which("ffmpeg") else "mp4v"
        assert job["video"]["annotated_codec"] in ("avc1", codec)
        assert job["video"]["annotated_h264"] is (job["video"]["annotated_codec"] != "mp4v")
        assert set(job["results"]) == {
            *("detections", "detections_jsonl", "mot", "coco", "video", "summary")
        }
        assert [j["id"] for j in client.get("/v1/jobs").json()] == [job["id"]]
        metrics = client.get("/metrics").text
        assert 'xnoryolo_jobs{state="succeeded"} 1.0' in metrics

        base = f"/v1/jobs/{job['id']}"
        doc = client.get(f"{base}/detections").json()
        assert [f["frame"] for f in doc["frames"]] == list(range(0, 20, 2))
        people = [d for f in doc["frames"] for d in f["detections"] if d["name"] == "person"]
        assert len(people) >= 10, "vtest shows several people in every frame"

        for req in (
            {"params": {"format": "jsonl"}},
            {"headers": {"accept": "application/x-ndjson"}},
        ):
            r = client.get(f"{base}/detections", **req)
            assert r.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(x) for x in r.text.splitlines()]
            assert lines == doc["frames"]

        mot = client.get(f"{base}/detections", params={"format": "mot"}).text.splitlines()
        rows = [[float(v) for v in line.split(",")] for line in mot]
        # tracking is on by default: the tracked boxes with their track ids
        assert rows and all(len(r) == 10 and r[1] >= 1 and r[7:] == [-1, -1, -1] for r in rows)
        tracked = {d["track_id"] for f in doc["frames"] for d in f["detections"] if "track_id" in d}
        assert {int(r[1]) for r in rows} == tracked
        assert {int(r[0]) for r in rows} <= {f + 1 for f in range(0, 20, 2)}
        assert all(0 < r[6] <= 1 and r[4] > 0 and r[5] > 0 for r in rows)

        coco = client.get(f"{base}/detections", params={"format": "coco"}).json()
        assert len(coco["images"]) == 10 and len(coco["categories"]) == 80
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        assert cats[1] == "person"
        image_ids = {i["id"] for i in coco["images"]}
        for a in coco["annotations"]:
            assert a["image_id"] in image_ids and a["category_id"] in cats
            x, y, w, h = a["bbox"]
            assert min(x, y) >= 0 and x + w <= 768 and y + h <= 576 and a["area"] == w * h
        assert {a["track_id"] for a in coco["annotations"] if "track_id" in a} == tracked
        summary = client.get(f"{base}/summary").json()
        assert (
            summary["tracks"] == len(tracked) and summary["lines"] == {} and summary["events"] == []
        )

        r = client.get(f"{base}/video")
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        video = tmp_path / "annotated.mp4"
        video.write_bytes(r.content)
        assert frame_count(video) == 20
        cap = cv2.VideoCapture(str(video))
        assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 768
        if job["video"]["annotated_h264"]:
            assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"avc1", b"h264")
        cap.release()


def test_cancel_running_and_queued_then_delete(tmp_path: Path, media: Path) -> None:
    with service(tmp_path, FakeDetector(delay=0.3)) as (_, client):
        first = upload(client, media / "clip20.avi").json()
        second = upload(client, media / "clip6.mp4").json()
        wait_until(
            lambda: client.get(f"/v1/jobs/{first['id']}").json()["progress"]["frames_done"] >= 1,
            30,
            what="the first job to progress",
        )
        assert client.get(f"/v1/jobs/{second['id']}").json()["state"] == "queued"
        r = client.delete(f"/v1/jobs/{second['id']}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        r = client.delete(f"/v1/jobs/{first['id']}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        job = wait_finished(client, first["id"])
        assert job["state"] == "cancelled" and job["results"] == {}
        assert client.get(f"/v1/jobs/{first['id']}/detections").status_code == 409
        results = tmp_path / "data" / "jobs" / first["id"] / "results"
        wait_until(lambda: not results.exists() or not list(results.iterdir()), 10)
        assert client.get(f"/v1/jobs/{second['id']}").json()["started_at"] is None
        assert not list((tmp_path / "data" / "jobs" / second["id"]).glob("input*"))
        assert client.delete(f"/v1/jobs/{first['id']}").status_code == 204
        assert client.get(f"/v1/jobs/{first['id']}").status_code == 404
        assert not (tmp_path / "data" / "jobs" / first["id"]).exists()
        assert client.delete(f"/v1/jobs/{first['id']}").status_code == 404


def test_results_wait_for_success_and_options(tmp_path: Path, media: Path) -> None:
    with service(tmp_path, FakeDetector(delay=0.2)) as (_, client):
        job = upload(client, media / "clip6.mp4", video="false", classes="car").json()
        assert job["options"]["classes"] == ["car"] and job["options"]["video"] is False
        r = client.get(f"/v1/jobs/{job['id']}/detections")
        assert r.status_code == 409 and "results exist once" in r.json()["detail"]
        job = wait_finished(client, job["id"])
        assert job["state"] == "succeeded" and "video" not in job["results"]
        assert client.get(f"/v1/jobs/{job['id']}/video").status_code == 404
        frames = client.get(f"/v1/jobs/{job['id']}/detections").json()["frames"]
        assert len(frames) == 6
        assert {d["name"] for f in frames for d in f["detections"]} == {"car"}
        bad = upload(client, media / "clip6.mp4", classes="unicorn")
        assert bad.status_code == 422 and "unicorn" in bad.json()["detail"]
        assert upload(client, media / "clip6.mp4", stride=0).status_code == 422
        r = client.get(f"/v1/jobs/{job['id']}/detections", params={"format": "xml"})
        assert r.status_code == 422
        assert client.get("/v1/jobs/nope").status_code == 404


def _refused(client: httpx.Client, data_dir: Path, **kwargs: Any) -> httpx.Response:
    r = client.post("/v1/jobs", **kwargs)
    jobs_dir = data_dir / "jobs"
    assert not jobs_dir.exists() or list(jobs_dir.iterdir()) == [], "a refused upload left files"
    return r


def test_refused_uploads(tmp_path: Path, media: Path) -> None:
    good = (media / "clip6.mp4").read_bytes()
    data_dir = tmp_path / "data"
    with service(tmp_path, FakeDetector(), max_upload_mb=1) as (_, client):
        r = _refused(client, data_dir, files={"file": ("e.mp4", b"", "video/mp4")})
        assert r.status_code == 422 and "empty" in r.json()["detail"]
        text = b"this is a text file, not a video\n" * 200
        r = _refused(client, data_dir, files={"file": ("notes.mp4", text, "video/mp4")})
        assert r.status_code == 415 and "not a decodable video" in r.json()["detail"]
        truncated = good[: len(good) // 2]
        r = _refused(client, data_dir, files={"file": ("cut.mp4", truncated, "video/mp4")})
        assert r.status_code == 415
        header_only = (media / "clip20.avi").read_bytes()[:200] + os.urandom(200_000)
        r = _refused(client, data_dir, files={"file": ("x.avi", header_only, "video/avi")})
        assert r.status_code == 415 and "no frame" in r.json()["detail"]

        big = os.urandom(1024 * 1024 + 10)
        r = _refused(client, data_dir, files={"file": ("big.mp4", big, "video/mp4")})
        assert r.status_code == 413 and "1 MB" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: cut off while streaming
            for _ in range(20):
                yield os.urandom(100_000)

        r = _refused(client, data_dir, content=chunks(), headers={"content-type": "video/mp4"})
        assert r.status_code == 413

        r = _refused(client, data_dir, content=b"hello", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and "multipart" in r.json()["detail"]
        r = _refused(client, data_dir, json={"threshold": 0.3})
        assert r.status_code == 422 and "url" in r.json()["detail"]
        r = _refused(client, data_dir, json={"url": "file:///etc/passwd"})
        assert r.status_code == 422
        r = _refused(client, data_dir, files={"other": ("a.mp4", good, "video/mp4")})
        assert r.status_code == 422 and "'file'" in r.json()["detail"]

        # a raw body is accepted too, and the same content sniffing applies
        r = client.post(
            "/v1/jobs?filename=raw.mp4", content=good, headers={"content-type": "video/mp4"}
        )
        assert r.status_code == 202 and r.json()["filename"] == "raw.mp4"
        assert wait_finished(client, r.json()["id"])["state"] == "succeeded"
        assert client.get("/healthz").status_code == 200


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_url_jobs(tmp_path: Path, media: Path) -> None:
    handler = functools.partial(_Quiet, directory=str(media))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with service(tmp_path, FakeDetector()) as (_, client):
            r = client.post("/v1/jobs", json={"url": f"{base}/clip6.mp4", "stride": 3})
            assert r.status_code == 202, r.text
            job = wait_finished(client, r.json()["id"])
            assert job["state"] == "succeeded" and job["progress"]["frames_done"] == 6
            frames = client.get(f"/v1/jobs/{job['id']}/detections").json()["frames"]
            assert [f["frame"] for f in frames] == [0, 3]

            missing = client.post("/v1/jobs", json={"url": f"{base}/nothing.mp4"}).json()
            job = wait_finished(client, missing["id"])
            assert job["state"] == "failed" and "404" in job["error"]
            (media / "notes.txt").write_text("not a video\n")
            text = client.post("/v1/jobs", data={"url": f"{base}/notes.txt"}).json()
            job = wait_finished(client, text["id"])
            assert job["state"] == "failed" and "not a decodable video" in job["error"]
    finally:
        httpd.shutdown()
        httpd.server_close()
