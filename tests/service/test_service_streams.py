"""Live sources end to end: a real RTSP server that dies, comes back and stalls; sources
that fail in every way; crowds of clients that come and go. Only 127.0.0.1 is contacted."""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from service_clients import read_sse
from service_helpers import RtspServer, run_service, settings_for, wait_until

pytestmark = pytest.mark.timeout(180)


class SseRecorder:
    """A real SSE client on a thread, recording every event until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[tuple[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.connected = threading.Event()

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(10, read=3)) as c:
            while not self._stop.is_set():
                try:
                    read_sse(c, self.url, self._until, 3600)
                except (httpx.ReadTimeout, AssertionError):
                    continue  # keep-alives arrive every second; a gap just means retry

    def _until(self, events: list[tuple[str, Any]]) -> bool:
        self.connected.set()
        if events:
            self.events.append(events[-1])
        return self._stop.is_set()

    def states(self) -> list[str]:
        return [e["state"] for name, e in list(self.events) if name == "state"]

    def __enter__(self) -> SseRecorder:
        self._thread.start()
        assert self.connected.wait(10), "SSE did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def status(c: httpx.Client, sid: str) -> dict[str, Any]:
    return c.get(f"/v1/streams/{sid}").json()  # type: ignore[no-any-return]


def processed(c: httpx.Client, sid: str) -> int:
    return int(status(c, sid)["frames_processed"])


@pytest.fixture
def other_rtsp(vtest_h264: Path, rtsp_server: RtspServer) -> Iterator[RtspServer]:
    server = RtspServer(vtest_h264, ("/cam1",))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_rtsp_server_dies_and_comes_back(
    detector: Any, rtsp_server: RtspServer, other_rtsp: RtspServer
) -> None:
    streams = [
        {"url": rtsp_server.url("/cam1"), "id": "a"},
        {"url": other_rtsp.url("/cam1"), "id": "b"},
    ]
    with (
        run_service(settings_for(streams=streams), detector) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as c,
        SseRecorder(f"{svc.url}/v1/streams/a/events") as sse,
    ):
        wait_until(lambda: processed(c, "a") >= 2 and processed(c, "b") >= 2, 60, what="both")
        retries = status(c, "a")["reconnects"]
        rtsp_server.stop()  # killed mid-stream
        wait_until(lambda: status(c, "a")["state"] == "offline", 15, what="a offline")
        b_before = processed(c, "b")
        wait_until(lambda: status(c, "a")["reconnects"] >= retries + 3, 20, what="retries")
        a = status(c, "a")
        assert a["last_error"]["kind"] == "connection_refused"
        assert processed(c, "b") > b_before  # the other stream was served meanwhile
        assert status(c, "b")["state"] == "online"
        assert c.get("/healthz").status_code == 200

        rtsp_server.start()  # same port
        a_before = processed(c, "a")
        wait_until(lambda: status(c, "a")["state"] == "online", 20, what="a back online")
        wait_until(lambda: processed(c, "a") > a_before + 2, 30, what="a processing again")
        metrics = c.get("/metrics").text
        wait_until(lambda: sse.states()[-1:] == ["online"], 10, what="the SSE online event")

    changes = [e for name, e in sse.events if name == "state"]
    # from the kill on (a loaded machine may have needed a retry at start-up too)
    kill = next(
        i for i, e in enumerate(changes) if (e["previous"], e["state"]) == ("online", "offline")
    )
    states = [e["state"] for e in changes[kill:]]
    assert states[-1] == "online" and "connecting" in states
    assert states.count("offline") >= 3
    # backoff: the waits between attempts grow (0.3 s, 0.6 s, 1.2 s, capped at 2 s, +-20 %)
    times = [e["timestamp"] for e in changes[kill:] if e["state"] == "connecting"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 2 and gaps[-1] > gaps[0], gaps
    assert any(name == "detections" for name, _ in sse.events)
    line = next(x for x in metrics.splitlines() if x.startswith("xnoryolo_stream_reconnects_total"))
    assert float(line.split()[-1]) >= 3


def test_rtsp_source_that_goes_silent_is_stalled(detector: Any, rtsp_server: RtspServer) -> None:
    streams = [{"url": rtsp_server.url("/cam2"), "id": "s"}]
    with (
        run_service(settings_for(streams=streams), detector) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as c,
        SseRecorder(f"{svc.url}/v1/streams/s/events") as sse,
    ):
        wait_until(lambda: processed(c, "s") >= 2, 60, what="processing")
        rtsp_server.pause()  # sockets stay open, no packet flows
        t0 = time.monotonic()
        wait_until(lambda: status(c, "s")["state"] == "stalled", 10, what="stalled")
        assert time.monotonic() - t0 < 8
        assert c.get("/healthz").status_code == 200
        wait_until(lambda: status(c, "s")["stalls"] >= 1, 5)
        wait_until(lambda: status(c, "s")["state"] in ("offline", "connecting"), 15)
        rtsp_server.resume()
        c.post("/v1/streams/s/reconnect")
        wait_until(lambda: status(c, "s")["state"] == "online", 30, what="online again")
        wait_until(lambda: sse.states()[-1:] == ["online"], 10)
    states = sse.states()
    i = states.index("stalled")
    assert states[i - 1] == "online" and "online" in states[i:]
    stalled = next(e for name, e in sse.events if name == "state" and e["state"] == "stalled")
    assert "no new frame" in stalled["reason"]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        codes = {"/auth": 401, "/missing": 404}
        code = codes.get(self.path, 200)
        body = b"<html>not a video</html>"
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for s in held:
            s.close()
        lsock.close()


def test_failing_sources_are_classified(
    detector: Any, vtest_h264: Path, web_server: str, black_hole: int, tmp_path: Path
) -> None:
    secure = RtspServer(vtest_h264, ("/cam1",), auth="admin:s3cret")
    secure.start()
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
    refused = closed_port.getsockname()[1]
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("not a video")
    cases = {
        "refused": (f"rtsp://127.0.0.1:{refused}/cam", "connection_refused"),
        "silent": (f"rtsp://127.0.0.1:{black_hole}/cam", "timeout"),
        "wrongpath": (secure.url("/nope").replace("rtsp://", "rtsp://admin:s3cret@"), "not_found"),
        "badpass": (secure.url("/cam1").replace("rtsp://", "rtsp://admin:wrong@"), "auth_failed"),
        "webpage": (f"{web_server}/page", "unsupported_codec"),
        "web404": (f"{web_server}/missing", "not_found"),
        "web401": (f"{web_server}/auth", "auth_failed"),
        "nofile": (str(tmp_path / "absent.mp4"), "not_found"),
        "notvideo": (str(text_file), "unsupported_codec"),
    }
    try:
        with (
            run_service(
                settings_for(
                    capture={"backoff_initial_s": 1.0}, sources={"media_roots": [str(tmp_path)]}
                ),
                detector,
            ) as svc,
            httpx.Client(base_url=svc.url, timeout=10) as c,
        ):
            for sid, (url, _) in cases.items():
                assert c.post("/v1/streams", json={"url": url, "id": sid}).status_code == 201
            good = secure.url("/cam1").replace("rtsp://", "rtsp://admin:s3cret@")
            assert c.post("/v1/streams", json={"url": good, "id": "good"}).status_code == 201

            def wrong() -> dict[str, Any]:
                got = {sid: (status(c, sid)["last_error"] or {}) for sid in cases}
                return {s: e for s, e in got.items() if e.get("kind") != cases[s][1]}

            deadline = time.monotonic() + 30
            while wrong() and time.monotonic() < deadline:
                time.sleep(0.3)
            assert not wrong()
            wait_until(lambda: processed(c, "good") >= 1, 60, what="the good stream")
            t0 = time.monotonic()
            assert c.get("/healthz").status_code == 200
            assert time.monotonic() - t0 < 2
            listing = c.get("/v1/streams").text
            assert "s3cret" not in listing and "wrong@" not in listing
            # offline between retries, connecting during one (backoff from 1 s): never online
            assert all(status(c, sid)["state"] in ("offline", "connecting") for sid in cases)
            assert not wrong()
    finally:
        secure.stop()
        closed_port.close()


def test_crowds_of_clients_come_and_go(detector: Any, vtest_avi: Path) -> None:
    streams = [{"url": str(vtest_avi), "id": "v", "loop": True}]
    with (
        run_service(settings_for(streams=streams), detector) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as c,
    ):
        hub = svc.pipeline.hub
        wait_until(lambda: processed(c, "v") >= 2, 60)
        port = int(svc.url.rsplit(":", 1)[1])

        # a subscriber that never reads: its queue and socket fill up, nothing else waits
        slow = socket.create_connection(("127.0.0.1", port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"GET /v1/streams/v/mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: hub.subscribers >= 1, 10)
        baseline = hub.subscribers

        paths = ["/v1/streams/v/events", "/v1/streams/v/mjpeg", "/v1/events"]
        paths += ["/v1/streams/v/darknet.json"]
        socks = []
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            socks.append(s)
        for s in socks:
            assert s.recv(64).startswith(b"HTTP/1.1 200")
        for _ in range(10):  # WebSocket clients too
            with ws_connect(svc.url.replace("http", "ws") + "/v1/streams/v/ws") as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "status"
        t0 = time.monotonic()
        assert c.get("/healthz").status_code == 200
        assert time.monotonic() - t0 < 3
        for i, s in enumerate(socks):
            if i % 2:  # half vanish without a goodbye (RST)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        wait_until(lambda: hub.subscribers <= baseline, 20, what="subscriptions released")
        text = c.get("/metrics").text
        assert f"xnoryolo_subscribers {float(hub.subscribers)}" in text
        assert "xnoryolo_subscriber_dropped_events_total" in text

        # the pipeline and other clients carried on
        before = processed(c, "v")
        ev = read_sse(c, "/v1/streams/v/events", lambda e: e[-1][0] == "detections", 30)
        assert ev[-1][1]["frame"] >= 0
        wait_until(lambda: processed(c, "v") > before + 2, 30)
        slow.close()


def test_http_mjpeg_and_hls_sources(detector: Any, vtest_avi: Path, tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    hls.mkdir()
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-i", str(vtest_avi), "-frames:v", "40", "-an"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-g", "10"),
            *("-f", "hls", "-hls_time", "1", "-hls_list_size", "0", str(hls / "index.m3u8")),
        ],
        check=True,
        timeout=120,
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(hls))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    streams = [{"url": str(vtest_avi), "id": "src", "loop": True}]
    try:
        with (
            run_service(settings_for(streams=streams), detector) as svc,
            httpx.Client(base_url=svc.url, timeout=10) as c,
        ):
            wait_until(lambda: processed(c, "src") >= 1, 60)
            # the service's own MJPEG output is an HTTP MJPEG camera like any other
            mjpeg = {"url": f"{svc.url}/v1/streams/src/mjpeg", "id": "mjpeg"}
            m3u8 = f"http://127.0.0.1:{web.server_address[1]}/index.m3u8"
            assert c.post("/v1/streams", json=mjpeg).status_code == 201
            assert c.post("/v1/streams", json={"url": m3u8, "id": "hls"}).status_code == 201
            wait_until(lambda: processed(c, "mjpeg") >= 2 and processed(c, "hls") >= 2, 60)
            assert status(c, "mjpeg")["kind"] == "http" and status(c, "hls")["live"] is True
    finally:
        web.shutdown()
        web.server_close()


def test_rtsps_source(detector: Any, vtest_h264: Path, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (.ci/apt-packages lists it)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    pem = tmp_path / "server.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    server = RtspServer(vtest_h264, ("/cam1",), auth="admin:s3cret", tls=pem)
    server.start()
    try:
        with (
            run_service(settings_for(), detector) as svc,
            httpx.Client(base_url=svc.url, timeout=10) as c,
        ):
            url = server.url("/cam1")
            assert url.startswith("rtsps://")
            good = url.replace("rtsps://", "rtsps://admin:s3cret@")
            assert c.post("/v1/streams", json={"url": good, "id": "tls"}).status_code == 201
            missing = server.url("/none")
            assert c.post("/v1/streams", json={"url": missing, "id": "nf"}).status_code == 201
            wait_until(lambda: processed(c, "tls") >= 2, 60, what="frames over RTSPS")
            wait_until(lambda: (status(c, "nf")["last_error"] or {}).get("kind"), 20)
            assert status(c, "nf")["last_error"]["kind"] == "not_found"  # probed over TLS
    finally:
        server.stop()


class _MjpegCamera(http.server.BaseHTTPRequestHandler):
    """An HTTP MJPEG camera sending `frame` (JPEG bytes) a few times a second."""

    frame = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for _ in range(50):
            part = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + self.frame + b"\r\n"
            try:
                self.wfile.write(part)
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)

    def log_message(self, *args: Any) -> None:
        pass


def test_frames_beyond_max_pixels_are_never_decoded(detector: Any, vtest_avi: Path) -> None:
    """768x576 frames (442,368 pixels) against a limit of 100,000: the HTTP MJPEG camera is
    refused from its first JPEG's header, before FFmpeg opens it; a file's frames are refused
    as they are read. Neither reaches inference."""
    import cv2

    cap = cv2.VideoCapture(str(vtest_avi))
    ok, image = cap.read()
    cap.release()
    assert ok
    _MjpegCamera.frame = cv2.imencode(".jpg", image)[1].tobytes()
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MjpegCamera)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    camera = f"http://127.0.0.1:{web.server_address[1]}/video.mjpg"
    streams = [{"url": str(vtest_avi), "id": "file", "loop": True}, {"url": camera, "id": "cam"}]
    settings = settings_for(streams=streams, limits={"max_pixels": 100_000})
    try:
        with run_service(settings, detector) as svc, httpx.Client(base_url=svc.url) as c:

            def refused(sid: str) -> bool:
                error = status(c, sid)["last_error"]
                return error is not None and error["kind"] == "frames_too_large"

            wait_until(lambda: refused("file") and refused("cam"), 30)
            for sid in ("file", "cam"):
                s = status(c, sid)
                assert "768x576" in s["last_error"]["message"], s
                assert "limits.max_pixels" in s["last_error"]["message"], s
                assert s["frames_processed"] == 0, s
            assert "a frame is 768x576" in status(c, "file")["last_error"]["message"]
            assert "the stream's frames" in status(c, "cam")["last_error"]["message"]
    finally:
        web.shutdown()
        web.server_close()
