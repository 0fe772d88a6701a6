"""Hostile inputs against a real `xnoryolo serve` (uvicorn on loopback, the real yolov3-tiny):
decompression bombs and malformed images, oversized and stalled bodies, slow and broken peers
for URL jobs, missing keys and foreign origins, malformed model and settings files, hostile
upload names. Each must get a clear 4xx (or a clear failed job) while a file stream looping
the demo clip keeps being processed; its fps and the process's RSS are sampled throughout
(`XNORYOLO_HOSTILE_REPORT=path.json` writes the figures)."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import threading
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from hostile_servers import hostile_server, raw_request, status_of
from jobs_helpers import cut_video
from refdata import DEMO_CLIP
from service_helpers import Service, run_service, settings_for, wait_until

pytestmark = pytest.mark.timeout(120)

KEY = "hostile-test-key"
AUTH = {"X-API-Key": KEY}
MAX_PIXELS = 1_000_000
MAX_DETECTIONS = 100
# The server's RSS may grow by at most this much over the whole module (the 30000x30000 JPEG
# alone would take 2.7 GB if it were decoded).
RSS_GROWTH_BOUND_MB = 600


# -- the service, the healthy stream and the samplers ---------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Monitor:
    """Samples the healthy stream's processed frames and state, and RSS, every 0.25 s."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.samples: list[tuple[float, int, str, float]] = []
        self.marks: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            s = self.svc.pipeline.manager.get("healthy").to_json()
            self.samples.append((time.monotonic(), s["frames_processed"], s["state"], _rss_mb()))

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def fps(self, start: float, end: float) -> float:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return 0.0
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def states(self, start: float, end: float) -> set[str]:
        return {s[2] for s in self.samples if start <= s[0] <= end}


@pytest.fixture(scope="module")
def hostile_detector(model_files: Any) -> Any:
    from xnoryolo.detector import Detector

    return Detector.from_files(
        model_files.cfg, model_files.weights, model_files.names, max_detections=MAX_DETECTIONS
    )


@pytest.fixture(scope="module")
def svc(hostile_detector: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    settings = settings_for(
        api_keys=[KEY],
        max_upload_mb=4,
        data_dir=tmp_path_factory.mktemp("hostile-data"),
        streams=[{"url": str(DEMO_CLIP), "id": "healthy", "loop": True, "fps": 5}],
        limits={
            "max_pixels": MAX_PIXELS,
            "max_body_kb": 64,
            "max_form_fields": 20,
            "body_timeout_s": 2.0,
            "max_detections": MAX_DETECTIONS,
            "download_deadline_s": 6.0,
            "download_min_kbps": 16.0,
            "download_rate_window_s": 4.0,
            "download_workers": 2,
        },
        jobs={"max_upload_mb": 4, "url_timeout_s": 3.0, "workers": 1},
    )
    with run_service(settings, hostile_detector) as service:
        yield service


@pytest.fixture(scope="module")
def monitor(svc: Service) -> Iterator[Monitor]:
    mon = Monitor(svc)
    mon.thread.start()
    yield mon
    mon.stop.set()
    mon.thread.join(5)


@pytest.fixture
def client(svc: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.url, timeout=30, headers=AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def port(svc: Service) -> int:
    return int(svc.url.rsplit(":", 1)[1])


def one_line_detail(r: httpx.Response) -> str:
    body = r.json()
    detail = body.get("detail", body.get("error"))
    assert isinstance(detail, str) and detail and "\n" not in detail, body
    assert "Traceback" not in detail
    return detail


def test_00_healthy_stream_before(client: httpx.Client, monitor: Monitor) -> None:
    wait_until(
        lambda: client.get("/v1/streams/healthy").json()["frames_processed"] >= 10,
        90,
        what="the healthy stream to process 10 frames",
    )
    monitor.mark("warm")
    time.sleep(3)  # a few seconds of undisturbed processing to compare with
    monitor.mark("hostile")


# -- images: bombs, lies and garbage ---------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w: int, h: int, body: bytes = b"\x00" * 64) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(body))
        + _chunk(b"IEND", b"")
    )


def real_png(w: int, h: int) -> bytes:
    """A genuine, decodable PNG of zeros: a few KB that decode to w*h*3 bytes."""
    ok, buf = cv2.imencode(".png", np.zeros((h, w, 3), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return bytes(buf)


def jpeg(w: int, h: int) -> bytes:
    """A real 16x16 JPEG whose frame header claims w x h (libjpeg fills the missing rows, so
    decoding it would really allocate and write w*h*3 bytes)."""
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(bytes(buf))
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00;"


def bmp(w: int, h: int, core: bool = False) -> bytes:
    if core:
        dib = struct.pack("<IHHHH", 12, w, h, 1, 24)
    else:
        dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib) + 16, 0, 0, 14 + len(dib)) + dib + b"\0" * 16


def webp(kind: bytes, w: int, h: int) -> bytes:
    if kind == b"VP8X":
        data = b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    elif kind == b"VP8L":
        data = b"\x2f" + ((w - 1) | ((h - 1) << 14)).to_bytes(4, "little") + b"\0" * 8
    else:
        data = b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", w, h) + b"\0" * 8
    chunk = kind + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def tiff(w: int, h: int, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (277, 3, 1, 1)]
    ifd = struct.pack(e + "H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack(e + "HHII", tag, kind, count, value)
    return head + ifd + struct.pack(e + "I", 0)


IMAGE_CASES: list[tuple[str, Callable[[], bytes], int]] = [
    ("png-bomb-30000", lambda: png(30000, 30000), 413),
    ("png-real-zeros-2000", lambda: real_png(2000, 2000), 413),
    ("png-side-over-opencv", lambda: png(1 << 21, 1), 413),
    ("png-opencv-pixel-limit", lambda: png(40000, 40000), 413),
    ("png-zero-size", lambda: png(0, 0), 400),
    ("png-cut-header", lambda: png(100, 100)[:20], 400),
    ("png-corrupt-data", lambda: png(64, 64, b"\xff" * 100)[:-20] + b"\0" * 20, 400),
    ("jpeg-bomb-30000", lambda: jpeg(30000, 30000), 413),
    ("jpeg-max-65500", lambda: jpeg(65500, 65500), 413),
    ("jpeg-wide-strip", lambda: jpeg(65000, 16), 413),
    ("jpeg-soi-only", lambda: b"\xff\xd8", 400),
    (
        "jpeg-no-frame",
        lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9",
        400,
    ),
    ("jpeg-bad-segment", lambda: b"\xff\xd8\xff\xe0\x00\x00" + b"\0" * 64, 400),
    ("jpeg-zero-size", lambda: jpeg(0, 0), 400),
    ("gif-65535", lambda: gif(65535, 65535), 413),
    ("gif-zero", lambda: gif(0, 0), 400),
    ("bmp-50000", lambda: bmp(50000, 50000), 413),
    ("bmp-top-down-huge", lambda: bmp(40000, -40000), 413),
    ("bmp-core-header", lambda: bmp(60000, 60000, core=True), 413),
    ("webp-vp8x", lambda: webp(b"VP8X", 16000, 16000), 413),
    ("webp-vp8l", lambda: webp(b"VP8L", 16000, 16000), 413),
    ("webp-vp8", lambda: webp(b"VP8 ", 16000, 16000), 413),
    ("tiff-le", lambda: tiff(40000, 40000), 413),
    ("tiff-be", lambda: tiff(40000, 40000, big_endian=True), 413),
    ("tiff-ifd-outside", lambda: b"II*\x00" + struct.pack("<I", 1 << 30), 400),
    ("pnm-p6", lambda: b"P6\n30000 30000\n255\n" + b"\0" * 64, 413),
    ("pnm-p5-comments", lambda: b"P5 # a\n# b\n 20000\n#c\n 20000 255\n" + b"\0" * 64, 413),
    ("pnm-garbage-dims", lambda: b"P6\nabc def\n255\n", 400),
    ("random-bytes", lambda: np.random.default_rng(1).bytes(4096), 400),
    ("html", lambda: b"<html><script>alert(1)</script></html>", 400),
    ("empty", lambda: b"", 400),
]


@pytest.mark.parametrize(
    ("make", "status"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES]
)
def test_detect_refuses_hostile_image(
    client: httpx.Client, make: Callable[[], bytes], status: int
) -> None:
    r = client.post("/v1/detect", content=make(), headers={"content-type": "image/png"})
    assert r.status_code == status, r.text
    one_line_detail(r)


@pytest.mark.parametrize(
    ("make", "status"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES]
)
def test_deepstack_refuses_hostile_image(
    client: httpx.Client, make: Callable[[], bytes], status: int
) -> None:
    r = client.post("/v1/vision/detection", files={"image": ("x.png", make(), "image/png")})
    assert r.status_code == status, r.text
    assert r.json()["success"] is False
    one_line_detail(r)


def _with_app_segment(jpg: bytes, size: int) -> bytes:
    # A long APPn segment (EXIF, ICC) before the frame header, as cameras write them.
    seg = b"\xff\xe2" + struct.pack(">H", 65535) + b"\0" * 65533
    return jpg[:2] + seg * (size // 65537 + 1) + jpg[2:]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp", ".ppm", ".pgm", ".gif"])
def test_real_images_are_measured_not_refused(ext: str) -> None:
    """The header reader must not refuse what OpenCV writes (a false refusal is a 400)."""
    from xnoryolo.service.imagelimits import image_size

    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    try:
        ok, buf = cv2.imencode(ext, image if ext != ".pgm" else image[:, :, 0])
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip(f"this OpenCV build does not write {ext}")
    data = bytes(buf)
    assert image_size(data) == (53, 37)
    if ext == ".jpg":
        assert image_size(_with_app_segment(data, 200_000)) == (53, 37)


@pytest.mark.parametrize("nms", ["1", "0"])
def test_threshold_zero_is_capped(client: httpx.Client, nms: str) -> None:
    ok, frame = cv2.VideoCapture(str(DEMO_CLIP)).read()
    assert ok
    jpg = bytes(cv2.imencode(".jpg", frame)[1])
    r = client.post(
        f"/v1/detect?threshold=0&nms={nms}", content=jpg, headers={"content-type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["detections"]) == MAX_DETECTIONS


# -- bodies: huge, endless, stalled, many fields ------------------------------------------
def _post(path: str, ctype: str, length: str, body: bytes = b"", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode() + body


def _chunked(path: str, ctype: str, size: int) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    block = b"a" * 16384
    body = b"".join(b"4000\r\n" + block + b"\r\n" for _ in range(size // 16384))
    return head + body + b"0\r\n\r\n"


RAW_BODY_CASES: list[tuple[str, bytes, set[int]]] = [
    ("json-300mb-declared", _post("/v1/streams", "application/json", "300000000"), {413}),
    ("job-json-300mb-declared", _post("/v1/jobs", "application/json", "300000000"), {413}),
    (
        "job-form-300mb-declared",
        _post("/v1/jobs", "application/x-www-form-urlencoded", "300000000"),
        {413},
    ),
    ("detect-1tb-declared", _post("/v1/detect", "image/jpeg", "1000000000000"), {413}),
    ("job-upload-1tb-declared", _post("/v1/jobs", "video/mp4", "1000000000000"), {413}),
    (
        "multipart-1tb-declared",
        _post("/v1/jobs", "multipart/form-data; boundary=x", "1000000000000"),
        {413},
    ),
    ("json-promised-never-sent", _post("/v1/streams", "application/json", "100"), {408}),
    ("job-json-promised-never-sent", _post("/v1/jobs", "application/json", "100"), {408}),
    ("detect-promised-never-sent", _post("/v1/detect", "image/jpeg", "100"), {408}),
    ("job-upload-stalls", _post("/v1/jobs", "video/mp4", "1000", b"\0" * 100), {408}),
    ("content-length-not-a-number", _post("/v1/streams", "application/json", "abc"), {400}),
    ("content-length-negative", _post("/v1/streams", "application/json", "-1"), {400}),
    ("json-1mb-chunked", _chunked("/v1/streams", "application/json", 1 << 20), {413}),
    ("form-1mb-chunked", _chunked("/v1/jobs", "application/x-www-form-urlencoded", 1 << 20), {413}),
    ("text-plain-1mb-chunked", _chunked("/v1/jobs", "text/plain", 1 << 20), {413, 415}),
]


@pytest.mark.parametrize(
    ("request_bytes", "statuses"),
    [c[1:] for c in RAW_BODY_CASES],
    ids=[c[0] for c in RAW_BODY_CASES],
)
def test_hostile_body_is_answered(port: int, request_bytes: bytes, statuses: set[int]) -> None:
    response = raw_request(port, request_bytes, read_for=20)
    assert status_of(response) in statuses, response[:300]


def test_dripped_json_body_is_cut_off(port: int) -> None:
    """A small body sent a byte at a time never finishes within the body deadline."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_post("/v1/streams", "application/json", "60"))
        sock.settimeout(0.5)
        got = b""
        for _ in range(30):  # 15 s at most
            try:
                sock.sendall(b" ")
            except OSError:
                break
            try:
                got += sock.recv(4096)
            except TimeoutError:
                continue
            if got:
                break
    assert status_of(got) == 408, got[:200]


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BODY_CASES: list[tuple[str, str, dict[str, Any], set[int]]] = [
    (
        "form-5000-fields",
        "/v1/jobs",
        {
            "content": b"&".join(b"f%d=1" % i for i in range(5000)),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        {400, 413},
    ),
    (
        "json-nested-jobs",
        "/v1/jobs",
        {"content": _nested(30000), "headers": {"content-type": "application/json"}},
        {400, 422},
    ),
    (
        "json-nested-streams",
        "/v1/streams",
        {"content": _nested(30000), "headers": {"content-type": "application/json"}},
        {400, 422},
    ),
    (
        "json-huge-int",
        "/v1/jobs",
        {
            "content": b'{"stride": ' + b"9" * 50000 + b"}",
            "headers": {"content-type": "application/json"},
        },
        {400, 422},
    ),
    ("json-long-url", "/v1/streams", {"json": {"url": "rtsp://127.0.0.1/" + "a" * 60000}}, {422}),
    ("json-list-body", "/v1/jobs", {"json": [1, 2, 3]}, {422}),
    (
        "multipart-job-100-fields",
        "/v1/jobs",
        {"files": {"file": ("a.mp4", b"\0" * 10)}, "data": {f"f{i}": "1" for i in range(100)}},
        {413},
    ),
    (
        "multipart-detect-100-fields",
        "/v1/detect",
        {"files": {"image": ("a.png", b"\0" * 10)}, "data": {f"f{i}": "1" for i in range(100)}},
        {413},
    ),
    (
        "multipart-long-field",
        "/v1/jobs",
        {"files": {"file": ("a.mp4", b"\0" * 10)}, "data": {"threshold": "1" * 100_000}},
        {413},
    ),
    (
        "multipart-no-boundary",
        "/v1/jobs",
        {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
        {400},
    ),
    (
        "multipart-malformed",
        "/v1/detect",
        {
            "content": b"garbage\r\n\r\n",
            "headers": {"content-type": "multipart/form-data; boundary=zz"},
        },
        {400},
    ),
    (
        "multipart-two-images",
        "/v1/detect",
        {"files": [("image", ("a.png", b"1")), ("image", ("b.png", b"2"))]},
        {400},
    ),
    (
        "detect-wrong-type",
        "/v1/detect",
        {"content": b"x", "headers": {"content-type": "text/plain"}},
        {415},
    ),
    (
        "job-wrong-type",
        "/v1/jobs",
        {"content": b"x", "headers": {"content-type": "text/html"}},
        {413, 415},
    ),
]


@pytest.mark.parametrize(
    ("path", "kwargs", "statuses"), [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES]
)
def test_hostile_form_or_json(
    client: httpx.Client, path: str, kwargs: dict[str, Any], statuses: set[int]
) -> None:
    r = client.post(path, **kwargs)
    assert r.status_code in statuses, r.text[:300]


# -- URL jobs: slow, stalled, endless and broken peers ----------------------------------------
@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    big = tmp_path_factory.mktemp("big") / "big.avi"
    writer = cv2.VideoWriter(str(big), cv2.VideoWriter.fourcc(*"MJPG"), 5, (1280, 1024))
    for _ in range(2):
        writer.write(np.zeros((1024, 1280, 3), np.uint8))
    writer.release()
    with hostile_server(big) as server:
        yield server


def _wait_job(client: httpx.Client, job_id: str, timeout: float = 40) -> dict[str, Any]:
    def finished() -> Any:
        rec = client.get(f"/v1/jobs/{job_id}").json()
        return rec if rec["state"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(finished, timeout, 0.2, what=f"job {job_id} to end")  # type: ignore[no-any-return]


URL_JOB_CASES = [
    ("drip", "/drip", "KB/s"),
    ("silent", "/silent", ""),
    ("header-drip", "/header-drip", ""),
    ("endless", "/endless", "larger than"),
    ("steady-past-deadline", "/steady", "longer than"),
    ("status-500", "/500", "500"),
    ("status-403", "/403", "403"),
    ("redirect-loop", "/loop", "redirect"),
    ("garbage", "/garbage", "not a decodable video"),
    ("short-body", "/short", ""),
    ("not-http", "/bad-status", ""),
    ("frames-over-pixel-limit", "/video", "max_pixels"),
]


@pytest.mark.parametrize(
    ("path", "reason"), [c[1:] for c in URL_JOB_CASES], ids=[c[0] for c in URL_JOB_CASES]
)
def test_url_job_from_hostile_peer_fails_cleanly(
    client: httpx.Client, peer: Any, path: str, reason: str
) -> None:
    r = client.post("/v1/jobs", json={"url": peer.url(path), "video": False})
    assert r.status_code == 202, r.text
    rec = _wait_job(client, r.json()["id"])
    assert rec["state"] == "failed", rec
    assert rec["error"] and "\n" not in rec["error"] and reason in rec["error"], rec["error"]


def test_url_job_to_closed_port_fails(client: httpx.Client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = client.post("/v1/jobs", json={"url": f"http://127.0.0.1:{closed}/v.mp4"})
    rec = _wait_job(client, r.json()["id"])
    assert rec["state"] == "failed" and "refused" in rec["error"].lower(), rec


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999/v.mp4", "http://[::1/v.mp4", "http://127.0.0.1:0/v.mp4"]
)
def test_url_job_with_an_unusable_address_fails(client: httpx.Client, url: str) -> None:
    r = client.post("/v1/jobs", json={"url": url})
    assert r.status_code in (202, 422), r.text
    if r.status_code == 202:
        rec = _wait_job(client, r.json()["id"])
        assert rec["state"] == "failed" and "\n" not in rec["error"], rec


def test_cancel_interrupts_a_dripping_download(client: httpx.Client, peer: Any) -> None:
    before = peer.client_gone
    job_id = client.post("/v1/jobs", json={"url": peer.url("/drip")}).json()["id"]
    time.sleep(0.5)
    assert client.delete(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    wait_until(lambda: peer.client_gone > before, 10, what="the download to be cut off")
    assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"


def test_a_slow_download_does_not_hold_the_workers(
    client: httpx.Client, peer: Any, tmp_path: Path
) -> None:
    slow = client.post("/v1/jobs", json={"url": peer.url("/drip")}).json()["id"]
    clip = cut_video(DEMO_CLIP, tmp_path / "clip.avi", 2)
    with clip.open("rb") as f:
        r = client.post(
            "/v1/jobs", files={"file": ("clip.avi", f)}, data={"video": "false", "max_frames": "1"}
        )
    assert r.status_code == 202, r.text
    fast = _wait_job(client, r.json()["id"])
    assert fast["state"] == "succeeded", fast
    slow_rec = _wait_job(client, slow)
    # The upload ran while the slow download was still going, not after it.
    assert slow_rec["finished_at"] > fast["started_at"], (slow_rec, fast)


BAD_JOB_URLS = [
    "file:///etc/passwd",
    "ftp://127.0.0.1/v.mp4",
    "javascript:alert(1)",
    "gopher://127.0.0.1:70/",
    "data:video/mp4;base64,AAAA",
    "/etc/passwd",
    "",
    "http" + "s" * 5000 + "://x",
]


@pytest.mark.parametrize("url", BAD_JOB_URLS, ids=range(len(BAD_JOB_URLS)))
def test_job_url_that_is_not_http_is_refused(client: httpx.Client, url: str) -> None:
    r = client.post("/v1/jobs", json={"url": url})
    assert r.status_code == 422, r.text
    one_line_detail(r)


def test_upload_with_oversized_frames_is_refused(
    client: httpx.Client, peer: Any, tmp_path: Path
) -> None:
    big = tmp_path / "big.avi"
    big.write_bytes(peer.video)
    r = client.post("/v1/jobs", files={"file": ("big.avi", big.read_bytes())})
    assert r.status_code == 413, r.text
    assert "max_pixels" in one_line_detail(r)


# -- upload names --------------------------------------------------------------------------
HOSTILE_NAMES = [
    ("../../etc/cron.d/evil.avi", "evil.avi"),
    ("C:\\Windows\\win.ini.avi", "win.ini.avi"),
    ("line\nINFO forged log line.avi", None),
    ("\u202eiva.exe", None),
    ("\x1b[31mred.avi", None),
    ("a" * 1000 + ".avi", "a" * 196 + ".avi"),
    ("..", None),
]


@pytest.mark.parametrize(("name", "stored"), HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_upload_names_are_sanitised(
    client: httpx.Client, tmp_path: Path, name: str, stored: str | None
) -> None:
    clip = cut_video(DEMO_CLIP, tmp_path / "c.avi", 1)
    r = client.post(
        "/v1/jobs",
        files={"file": (name, clip.read_bytes(), "video/x-msvideo")},
        data={"video": "false", "max_frames": "1"},
    )
    assert r.status_code == 202, r.text
    rec = r.json()
    kept = rec["filename"]
    if stored is not None:
        assert kept == stored
    if kept is not None:
        assert len(kept) <= 200 and "/" not in kept and "\\" not in kept
        assert all(unicodedata.category(c)[0] not in "CZ" or c == " " for c in kept), kept
    assert client.get(f"/v1/jobs/{rec['id']}").json()["filename"] == kept
    _wait_job(client, rec["id"])
    client.delete(f"/v1/jobs/{rec['id']}")


# -- keys and origins ----------------------------------------------------------------------
NO_KEY_CASES = [
    ("none", {}, ""),
    ("wrong-header", {"X-API-Key": "nope"}, ""),
    ("wrong-bearer", {"Authorization": "Bearer nope"}, ""),
    ("empty-header", {"X-API-Key": ""}, ""),
    ("basic-auth", {"Authorization": "Basic " + KEY}, ""),
    ("wrong-query", {}, "?api_key=nope"),
    ("empty-query", {}, "?api_key="),
    ("key-prefix", {"X-API-Key": KEY[:-1]}, ""),
]


@pytest.mark.parametrize(
    ("headers", "query"), [c[1:] for c in NO_KEY_CASES], ids=[c[0] for c in NO_KEY_CASES]
)
@pytest.mark.parametrize("path", ["/v1/streams", "/metrics", "/openapi.json", "/docs"])
def test_routes_need_a_key(svc: Service, headers: dict[str, str], query: str, path: str) -> None:
    r = httpx.get(svc.url + path + query, headers=headers, timeout=10)
    assert r.status_code == 401, r.text


def test_readyz_without_a_key_says_only_ready(svc: Service) -> None:
    anonymous = httpx.get(svc.url + "/readyz", timeout=10)
    assert set(anonymous.json()) == {"ready"}
    keyed = httpx.get(svc.url + "/readyz", headers=AUTH, timeout=10)
    assert "healthy" in keyed.json()["streams"]


@pytest.mark.parametrize("name", ["api_key", "api%5Fkey", "api%5fkey", "api_key%20"])
def test_query_key_spellings_work_and_are_taken_out(name: str) -> None:
    import asyncio

    from xnoryolo.service.api.auth import ApiKeyMiddleware

    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["query_string"])

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/streams",
        "headers": [],
        "query_string": f"a=1&{name}={KEY}&b=2".encode(),
    }
    asyncio.run(ApiKeyMiddleware(app, [KEY])(scope, None, None))  # type: ignore[arg-type]
    assert seen == [b"a=1&b=2"]  # reached the app (key valid), without the key


def test_docs_page_hands_the_key_to_openapi(svc: Service) -> None:
    page = httpx.get(f"{svc.url}/docs?api_key={KEY}", timeout=10)
    assert page.status_code == 200
    assert f"/openapi.json?api_key={KEY}" in page.text
    schema = httpx.get(f"{svc.url}/openapi.json?api_key={KEY}", timeout=10).json()
    assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"


FOREIGN_ORIGINS = [
    "http://evil.example",
    "null",
    "http://127.0.0.1.evil.example",
    "https://127.0.0.1:1",
    "file://",
    "not a url",
]


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS, ids=range(len(FOREIGN_ORIGINS)))
def test_websocket_from_a_foreign_origin_is_refused(svc: Service, origin: str) -> None:
    url = svc.url.replace("http", "ws") + f"/v1/streams/healthy/ws?api_key={KEY}"
    with pytest.raises(InvalidStatus) as exc:
        ws_connect(url, origin=origin, open_timeout=10)  # type: ignore[arg-type]
    assert exc.value.response.status_code == 403


def test_websocket_from_the_own_origin_is_served(svc: Service) -> None:
    url = svc.url.replace("http", "ws") + f"/v1/streams/healthy/ws?api_key={KEY}"
    with ws_connect(url, origin=svc.url, open_timeout=10) as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(timeout=10))["type"] == "status"


CSRF_CASES = [
    ("job-form", "POST", "/v1/jobs", {"data": {"url": "http://127.0.0.1:9/v.mp4"}}),
    ("job-multipart", "POST", "/v1/jobs", {"files": {"file": ("a.mp4", b"\0")}}),
    ("job-text", "POST", "/v1/jobs", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
    ("stream-add", "POST", "/v1/streams", {"json": {"url": "rtsp://127.0.0.1:9/x"}}),
    ("stream-delete", "DELETE", "/v1/streams/healthy", {}),
    ("detect", "POST", "/v1/detect", {"content": b"x", "headers": {"content-type": "image/png"}}),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"), [c[1:] for c in CSRF_CASES], ids=[c[0] for c in CSRF_CASES]
)
def test_state_changes_from_a_foreign_origin_are_refused(
    client: httpx.Client, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    headers = {**kwargs.pop("headers", {}), "Origin": "http://evil.example"}
    r = client.request(method, path, headers=headers, **kwargs)
    assert r.status_code == 403, r.text
    assert client.get("/v1/streams/healthy").status_code == 200  # still there


@pytest.mark.parametrize(
    ("host", "keys", "opt_out", "refused"),
    [
        ("0.0.0.0", [], False, True),
        ("::", [], False, True),
        ("192.168.1.5", [], False, True),
        ("[::]", [], False, True),
        ("0.0.0.0", [], True, False),
        ("0.0.0.0", ["k"], False, False),
        ("127.0.0.1", [], False, False),
        ("::1", [], False, False),
        ("localhost", [], False, False),
    ],
)
def test_keyless_means_loopback(host: str, keys: list[str], opt_out: bool, refused: bool) -> None:
    from xnoryolo.service.app import check_exposure
    from xnoryolo.service.settings import ConfigError

    settings = settings_for(host=host, api_keys=keys, access={"allow_keyless_public": opt_out})
    if refused:
        with pytest.raises(ConfigError, match="without API keys"):
            check_exposure(settings)
    else:
        check_exposure(settings)


@pytest.mark.parametrize("value", [",", "", " , ", "k1,,k2", "k1,"])
def test_empty_api_keys_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from xnoryolo.service.settings import ConfigError, load_settings

    monkeypatch.setenv("XNORYOLO_API_KEYS", value)
    with pytest.raises(ConfigError, match="empty"):
        load_settings(None)


# -- model and settings files ---------------------------------------------------------------
def _cfg(tmp: Path, net: str) -> Path:
    p = tmp / "net.cfg"
    p.write_text(
        f"[net]\n{net}\nchannels=3\n\n[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\n"
        "activation=leaky\n\n[convolutional]\nfilters=18\nsize=1\nactivation=linear\n\n"
        "[yolo]\nmask=0,1,2\nanchors=10,14,23,27,37,58\nclasses=1\nnum=3\n"
    )
    return p


@pytest.mark.parametrize(
    ("net", "line", "match"),
    [
        ("width=20000\nheight=20000", 2, "GiB"),
        ("width=416\nheight=100000", 3, "more than"),
        ("width=99999999999999999999\nheight=416", 2, "more than"),
        ("width=65536\nheight=65536", 2, "GiB"),
    ],
)
def test_cfg_needing_gigabytes_is_refused_at_load(
    tmp_path: Path, net: str, line: int, match: str
) -> None:
    from xnoryolo.detector.errors import CfgError
    from xnoryolo.detector.network import Network

    cfg = _cfg(tmp_path, net)
    with pytest.raises(CfgError, match=match) as exc:
        Network.from_cfg(cfg)
    assert str(exc.value).startswith(f"{cfg}:{line}:")


def _huge_sparse(tmp: Path) -> Path:
    p = tmp / "huge.weights"
    with p.open("wb") as f:
        f.write(struct.pack("<3iQ", 0, 2, 5, 0))
        f.truncate(64 << 30)  # 64 GB, none of it on disk
    return p


@pytest.mark.parametrize(
    "which",
    [
        "char-device-cfg",
        "char-device-weights",
        "huge-weights",
        "fifo-cfg",
        "dir-cfg",
        "char-device-names",
    ],
)
def test_model_files_that_are_not_files_fail_fast(tmp_path: Path, which: str) -> None:
    from xnoryolo.detector import Detector
    from xnoryolo.detector.errors import XnoryoloError

    cfg = _cfg(tmp_path, "width=64\nheight=64")
    weights: Path | str = tmp_path / "w.weights"
    names: Path | str | None = None
    if which == "char-device-cfg":
        cfg = Path("/dev/zero")
    elif which == "char-device-weights":
        weights = "/dev/zero"
    elif which == "huge-weights":
        weights = _huge_sparse(tmp_path)
    elif which == "fifo-cfg":
        cfg = tmp_path / "fifo.cfg"
        os.mkfifo(cfg)
        # Opening a FIFO blocks until a writer comes: give it one that writes nothing.
        threading.Thread(target=lambda: open(cfg, "wb").close(), daemon=True).start()
    elif which == "dir-cfg":
        cfg = tmp_path
    elif which == "char-device-names":
        from xnoryolo.detector.network import Network
        from xnoryolo.detector.weights import random_weights

        weights.write_bytes(random_weights(Network.from_cfg(cfg)))  # type: ignore[union-attr]
        names = "/dev/zero"
    with pytest.raises(XnoryoloError) as exc:
        Detector.from_files(cfg, weights, names)
    assert "\n" not in str(exc.value)
    if which == "huge-weights":
        assert "do not belong" in str(exc.value)
    elif which != "dir-cfg":
        assert "regular file" in str(exc.value)
    if which == "fifo-cfg":
        assert stat.S_ISFIFO(cfg.stat().st_mode)


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 16,
        b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        b"host: 1\x00\x00",
        "host: \udcff".encode("utf-8", "surrogateescape"),
    ],
    ids=["random", "png", "nul", "latin-1"],
)
def test_binary_config_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    from xnoryolo.service.settings import ConfigError, load_settings

    p = tmp_path / "binary.yaml"
    p.write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        load_settings(p)
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)


def test_config_on_a_character_device_fails_fast() -> None:
    from xnoryolo.service.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="regular file"):
        load_settings("/dev/zero")


# -- stream URLs that must be refused (the source policy) -----------------------------------
def _fifo(tmp: Path) -> str:
    path = tmp / "camera.fifo"
    os.mkfifo(path)
    return str(path)


# Each: (id, a function of a temporary folder giving the URL). The integrator may extend it.
STREAM_URL_CASES: list[tuple[str, Callable[[Path], str]]] = [
    ("fifo", _fifo),
    ("async-scheme", lambda tmp: f"async:{DEMO_CLIP}"),
    ("subfile-scheme", lambda tmp: f"subfile,,start,0,end,100,,:{DEMO_CLIP}"),
    ("concat-scheme", lambda tmp: f"concat:{DEMO_CLIP}|{DEMO_CLIP}"),
    ("char-device", lambda tmp: "/dev/zero"),
]


@pytest.mark.parametrize(
    "make", [c[1] for c in STREAM_URL_CASES], ids=[c[0] for c in STREAM_URL_CASES]
)
def test_stream_url_outside_the_policy_is_refused(
    client: httpx.Client, tmp_path: Path, make: Callable[[Path], str]
) -> None:
    r = client.post("/v1/streams", json={"url": make(tmp_path)})
    # 403: outside the source policy (no local files without media_roots, no FFmpeg protocol
    # syntax); 422: a path that is no regular file. Either way without server paths.
    assert r.status_code in (403, 422), r.text
    assert str(tmp_path) not in r.text and str(DEMO_CLIP.parent) not in r.text


# -- the healthy stream, throughout --------------------------------------------------------
def test_zz_healthy_stream_after(client: httpx.Client, monitor: Monitor) -> None:
    monitor.mark("after")
    time.sleep(3)
    monitor.mark("end")
    warm, hostile, after, end = (monitor.marks[k] for k in ("warm", "hostile", "after", "end"))
    figures = {
        "fps_before": round(monitor.fps(warm, hostile), 2),
        "fps_during": round(monitor.fps(hostile, after), 2),
        "fps_after": round(monitor.fps(after, end), 2),
        "hostile_phase_s": round(after - hostile, 1),
        "rss_start_mb": round(monitor.samples[0][3], 1),
        "rss_max_mb": round(max(s[3] for s in monitor.samples), 1),
    }
    print("hostile suite:", json.dumps(figures))
    report = os.environ.get("XNORYOLO_HOSTILE_REPORT")
    if report:
        Path(report).write_text(json.dumps(figures, indent=1))
    assert monitor.states(warm, end) == {"online"}, "the healthy stream left 'online'"
    during = [s[1] for s in monitor.samples if hostile <= s[0] <= after]
    assert during[-1] > during[0], "the healthy stream stopped being processed"
    s = client.get("/v1/streams/healthy").json()
    assert s["state"] == "online", s
    assert figures["rss_max_mb"] - figures["rss_start_mb"] < RSS_GROWTH_BOUND_MB, figures
