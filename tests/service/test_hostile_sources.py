"""Hostile sources against the real service on loopback: special files that would block an
open (and with it OpenCV's process-wide open lock), paths and hosts the source policy
refuses, redirects to denied addresses, credentials that cannot be parsed, the stream cap,
and memory that must come back when streams are deleted. Nothing but 127.0.0.1 is ever
contacted: denied addresses are refused before any connection."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest

from service_helpers import run_service, settings_for, wait_until
from xnoryolo.service.streams.memory import return_freed_memory

pytestmark = pytest.mark.timeout(240)

SECRET = "Zq9-secret"


def status(c: httpx.Client, sid: str) -> dict[str, Any]:
    return c.get(f"/v1/streams/{sid}").json()  # type: ignore[no-any-return]


def processed(c: httpx.Client, sid: str) -> int:
    return int(status(c, sid)["frames_processed"])


def error_kind(c: httpx.Client, sid: str) -> str | None:
    return (status(c, sid)["last_error"] or {}).get("kind")


def opens_in_process(path: Path, seconds: float = 20) -> bool:
    """Whether OpenCV can open a video in this process (where the service runs) in time."""
    done = threading.Event()

    def work() -> None:
        cv2.VideoCapture(str(path), cv2.CAP_FFMPEG).release()
        done.set()

    threading.Thread(target=work, daemon=True).start()
    return done.wait(seconds)


@pytest.fixture
def media(tmp_path: Path, vtest_avi: Path) -> Path:
    d = tmp_path / "media"
    d.mkdir()
    shutil.copy(vtest_avi, d / "clip.avi")
    return d


@pytest.fixture
def specials(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A FIFO, a listening Unix socket and a character device: none of them a video."""
    d = tmp_path / "specials"
    d.mkdir()
    os.mkfifo(d / "pipe.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.mp4"))
    sock.listen(1)
    try:
        yield {"pipe": d / "pipe.mp4", "sock": d / "sock.mp4", "zero": Path("/dev/zero")}
    finally:
        sock.close()


def test_special_files_in_the_settings_freeze_nothing(
    detector: Any, media: Path, specials: dict[str, Path], tmp_path: Path
) -> None:
    """Streams from the operator's own settings file naming a FIFO, a socket and a device:
    each goes offline with a reason; other streams, new streams and other opens go on."""
    streams = [{"url": str(p), "id": sid} for sid, p in specials.items()]
    settings = settings_for(
        streams=streams, data_dir=tmp_path / "data", sources={"media_roots": [str(media)]}
    )
    with run_service(settings, detector) as svc, httpx.Client(base_url=svc.url, timeout=20) as c:
        time.sleep(0.5)  # their opens go first
        r = c.post("/v1/streams", json={"url": str(media / "clip.avi"), "id": "good", "loop": True})
        assert r.status_code == 201, r.text
        wait_until(lambda: processed(c, "good") >= 2, 60, what="the good stream")
        for sid in specials:
            wait_until(lambda sid=sid: error_kind(c, sid), 20, what=f"{sid}'s error")
            err = status(c, sid)["last_error"]
            assert err["kind"] == "unsupported_codec" and "not a regular file" in err["message"]
        assert opens_in_process(media / "clip.avi"), "OpenCV's open lock is held"
        for sid in specials:
            assert c.delete(f"/v1/streams/{sid}").status_code == 200
        assert processed(c, "good") >= 2


class _Redirector(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_api_opens_only_what_the_policy_allows(
    detector: Any,
    media: Path,
    specials: dict[str, Path],
    tmp_path: Path,
    redirector: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = tmp_path / "data"
    (data / "jobs" / "other").mkdir(parents=True)
    shutil.copy(media / "clip.avi", data / "jobs" / "other" / "input.avi")
    os.mkfifo(media / "pipe.avi")
    (media / "escape.avi").symlink_to(tmp_path / "data" / "jobs" / "other" / "input.avi")
    refused = {
        # local files outside the media folders (and never data_dir)
        "/etc/passwd": 403,
        str(data / "jobs" / "other" / "input.avi"): 403,
        str(media / "escape.avi"): 403,
        str(media / ".." / "data" / "jobs" / "other" / "input.avi"): 403,
        "/dev/zero": 403,
        "/proc/self/fd/0": 403,
        # special files inside them
        str(media / "pipe.avi"): 422,
        str(specials["pipe"]): 422,
        str(specials["sock"]): 422,
        # devices not configured
        "/dev/video0": 403,
        "0": 403,
        # FFmpeg protocol syntax and other schemes
        f"async:{media / 'clip.avi'}": 422,
        f"file:{media / 'clip.avi'}": 422,
        f"subfile,,start,0,end,100,,:{media / 'clip.avi'}": 422,
        f"concat:{media / 'clip.avi'}|{media / 'clip.avi'}": 422,
        "pipe:0": 422,
        "tcp://127.0.0.1:9": 422,
        "udp://127.0.0.1:9": 422,
        "data:video/mp4;base64,AAAA": 422,
        # denied networks, however written
        "rtsp://169.254.169.254/x": 403,
        "http://[::ffff:169.254.169.254]/x": 403,
        "http://0.0.0.0:9/x": 403,
        "rtsp://[fe80::1]/x": 403,
        "http://224.0.0.1/x": 403,
        # credentials that cannot be parsed
        f"rtsp://admin:{SECRET}#1@127.0.0.1:9/x": 422,
        f"rtsp://admin:a/{SECRET}@127.0.0.1:9/x": 422,
        f"rtsp://admin:{SECRET}?x@127.0.0.1:9/x": 422,
        f"rtsp://admin:my {SECRET}@127.0.0.1:9/x": 422,
    }
    settings = settings_for(
        data_dir=data, sources={"media_roots": [str(media), str(tmp_path)]}, max_streams=64
    )
    with run_service(settings, detector) as svc, httpx.Client(base_url=svc.url, timeout=20) as c:
        answers = {url: c.post("/v1/streams", json={"url": url}) for url in refused}
        wrong = {u: r.text for u, r in answers.items() if r.status_code != refused[u]}
        assert not wrong
        for url, r in answers.items():
            # no secret, no path: the client learns the rule, not the box's layout
            assert SECRET not in r.text and str(tmp_path) not in r.text, (url, r.text)
        assert c.get("/v1/streams").json() == []

        # allowed: a restreamer on loopback, a file in a media folder
        r = c.post("/v1/streams", json={"url": "rtsp://127.0.0.1:9/cam", "id": "loop"})
        assert r.status_code == 201
        r = c.post("/v1/streams", json={"url": str(media / "clip.avi"), "id": "f", "loop": True})
        assert r.status_code == 201
        # an allowed HTTP source that redirects to a denied address: refused before following
        r = c.post("/v1/streams", json={"url": f"{redirector}/cam.mjpg", "id": "redir"})
        assert r.status_code == 201
        wait_until(lambda: error_kind(c, "redir") == "refused_by_policy", 20, what="redirect")
        assert "169.254" not in status(c, "redir")["last_error"]["message"]  # the server's target

        # the file swapped for a FIFO after it was added: refused at the next open
        wait_until(lambda: processed(c, "f") >= 1, 60, what="the file stream")
        os.replace(media / "pipe.avi", media / "clip.avi")
        c.post("/v1/streams/f/reconnect")
        wait_until(lambda: error_kind(c, "f") == "unsupported_codec", 30, what="the swap")
        assert "not a regular file" in status(c, "f")["last_error"]["message"]
        assert opens_in_process(tmp_path / "data" / "jobs" / "other" / "input.avi")
    assert SECRET not in caplog.text


def test_stream_cap(detector: Any, media: Path, tmp_path: Path) -> None:
    clip = str(media / "clip.avi")
    settings = settings_for(
        streams=[{"url": clip, "id": "own", "loop": True}],
        data_dir=tmp_path / "data",
        sources={"media_roots": [str(media)]},
        max_streams=2,
    )
    with run_service(settings, detector) as svc, httpx.Client(base_url=svc.url, timeout=20) as c:
        assert c.post("/v1/streams", json={"url": clip, "id": "a"}).status_code == 201
        r = c.post("/v1/streams", json={"url": clip, "id": "b"})
        assert r.status_code == 409 and "maximum of 2 streams" in r.json()["detail"]
        assert c.delete("/v1/streams/a").status_code == 200
        assert c.post("/v1/streams", json={"url": clip, "id": "b"}).status_code == 201
        assert [s["id"] for s in c.get("/v1/streams").json()] == ["own", "b"]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_memory_comes_back_after_streams_are_deleted(
    detector: Any, media: Path, tmp_path: Path
) -> None:
    """Add 6 streams, let them decode, delete them; four times. Without trimming, the
    resident size stays at its peak after every delete and grows from cycle to cycle."""
    if not return_freed_memory():
        pytest.skip("the C library cannot trim (not glibc)")
    clip = str(media / "clip.avi")
    settings = settings_for(
        data_dir=tmp_path / "data", sources={"media_roots": [str(media)]}, max_streams=64
    )
    with run_service(settings, detector) as svc, httpx.Client(base_url=svc.url, timeout=20) as c:
        base = rss_mb()
        peaks, after = [], []
        for _ in range(4):
            ids = [
                c.post("/v1/streams", json={"url": clip, "loop": True}).json()["id"]
                for _ in range(6)
            ]
            wait_until(lambda ids=ids: all(processed(c, i) >= 2 for i in ids), 120)
            peaks.append(rss_mb())
            for i in ids:
                assert c.delete(f"/v1/streams/{i}").status_code == 200
            alive = [t for t in threading.enumerate() if t.name.startswith("capture-")]
            for t in alive:
                t.join(10)
            after.append(rss_mb())
        held = [p - a for p, a in zip(peaks, after, strict=True)]
        print(f"RSS MB: base {base:.0f}, peaks {peaks}, after deletes {after}")
        # Earlier work in this process may have left the heap above what a delete comes back
        # to (the trim returns that too): measure the streams from the lowest level seen.
        streams_mb = min(peaks) - min(base, *after)
        assert min(held) > 0.4 * streams_mb, (base, peaks, after)
        # Streams whose memory were kept would add streams_mb per cycle (3x over the test).
        # Heap fragmentation drifts by a few MB per cycle and levels off (measured in a fresh
        # process over 12 cycles: 196 MB after the first delete, 209-213 MB from the 7th on).
        assert after[-1] - after[0] < 0.8 * streams_mb, (base, peaks, after)


def test_url_jobs_follow_the_network_policy(detector: Any, tmp_path: Path, redirector: str) -> None:
    settings = settings_for(data_dir=tmp_path / "data")
    with run_service(settings, detector) as svc, httpx.Client(base_url=svc.url, timeout=20) as c:
        urls = [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/x.mp4",
            f"{redirector}/video.mp4",  # loopback, redirecting to the metadata address
            f"http://admin:{SECRET}@169.254.169.254/x.mp4",
        ]
        ids = []
        for url in urls:
            r = c.post("/v1/jobs", json={"url": url})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])

        def finished(job_id: str) -> dict[str, Any] | None:
            job = c.get(f"/v1/jobs/{job_id}").json()
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None

        for job_id in ids:
            job = wait_until(lambda job_id=job_id: finished(job_id), 60, what="the job")
            assert job["state"] == "failed" and "source policy" in job["error"], job
            assert SECRET not in str(job)
