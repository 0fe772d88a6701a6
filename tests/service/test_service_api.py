"""The HTTP API under a real uvicorn with the real yolov3-tiny on real footage."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from refdata import SHARED
from service_clients import read_mjpeg, read_sse
from service_helpers import Service, run_service, settings_for, wait_until
from xnoryolo.detector import Detection
from xnoryolo.detector.video import decode_image

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def svc(detector: Any, vtest_avi: Path) -> Iterator[Service]:
    settings = settings_for(
        max_upload_mb=1,
        streams=[{"url": str(vtest_avi), "id": "vt", "name": "vtest", "loop": True}],
        sources={"media_roots": [str(vtest_avi.parent)]},  # the API adds files from there
    )
    with run_service(settings, detector) as service:
        yield service


@pytest.fixture
def client(svc: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.url, timeout=20) as c:
        yield c


def image_bytes(name: str) -> bytes:
    path = SHARED / "media" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path.read_bytes()


def wait_processing(client: httpx.Client, stream: str, frames: int = 2) -> dict[str, Any]:
    def done() -> Any:
        s = client.get(f"/v1/streams/{stream}").json()
        return s if s["frames_processed"] >= frames else None

    return wait_until(done, 60, what=f"{stream} to process {frames} frames")  # type: ignore[no-any-return]


# -- streams ------------------------------------------------------------------------------
def test_config_stream_status_object(client: httpx.Client) -> None:
    s = wait_processing(client, "vt")
    assert s["id"] == "vt" and s["name"] == "vtest" and s["kind"] == "file"
    assert s["state"] == "online"
    for key in ("input_fps", "processed_fps", "dropped_frames", "reconnects", "last_error"):
        assert key in s
    assert s["latency_ms"]["last"] > 0
    listed = client.get("/v1/streams").json()
    assert [x["id"] for x in listed] == ["vt"]


def test_add_inspect_reconnect_delete(client: httpx.Client, vtest_avi: Path) -> None:
    r = client.post(
        "/v1/streams",
        json={"url": str(vtest_avi), "name": "second", "fps": 5, "classes": ["person"]},
    )
    assert r.status_code == 201, r.text
    s = r.json()
    sid = s["id"]
    assert r.headers["location"] == f"/v1/streams/{sid}"
    assert s["fps_cap"] == 5 and s["classes"] == ["person"]
    events = read_sse(
        client,
        f"/v1/streams/{sid}/events",
        lambda ev: sum(1 for name, _ in ev if name == "detections") >= 2,
        60,
    )
    assert events[0][0] == "status" and events[0][1]["id"] == sid
    dets = [d for name, e in events if name == "detections" for d in e["detections"]]
    assert dets and {d["name"] for d in dets} == {"person"}  # the class filter
    assert client.post(f"/v1/streams/{sid}/reconnect").status_code == 200
    wait_until(lambda: client.get(f"/v1/streams/{sid}").json()["reconnects"] >= 1, 20)
    r = client.delete(f"/v1/streams/{sid}")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    assert client.get(f"/v1/streams/{sid}").status_code == 404
    assert client.delete(f"/v1/streams/{sid}").status_code == 404


def test_removing_a_stream_ends_its_event_streams(
    client: httpx.Client, svc: Service, vtest_avi: Path
) -> None:
    sid = client.post("/v1/streams", json={"url": str(vtest_avi)}).json()["id"]
    got: list[dict[str, Any]] = []

    def reader() -> None:
        with (
            httpx.Client(base_url=svc.url, timeout=30) as c,
            c.stream("GET", f"/v1/streams/{sid}/events") as resp,
        ):
            got.extend(json.loads(x[5:]) for x in resp.iter_lines() if x.startswith("data:"))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    wait_until(lambda: client.get(f"/v1/streams/{sid}").json()["frames_processed"] >= 1, 60)
    assert client.delete(f"/v1/streams/{sid}").status_code == 200
    thread.join(20)
    assert not thread.is_alive(), "the event stream did not end"
    assert got[-1]["type"] == "state" and got[-1]["state"] == "stopped"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"url": ""}, 422),
        ({"url": "ftp://127.0.0.1/x"}, 422),
        ({"url": "rtsp://127.0.0.1/x", "fps": -1}, 422),
        ({"url": "rtsp://127.0.0.1/x", "threshold": 2}, 422),
        ({"url": "rtsp://127.0.0.1/x", "classes": ["unicorn"]}, 422),
        ({"url": "rtsp://127.0.0.1/x", "id": "vt"}, 409),
        ({"url": "rtsp://127.0.0.1/x", "bogus": 1}, 422),
    ],
)
def test_add_stream_bad_input(client: httpx.Client, body: dict[str, Any], status: int) -> None:
    r = client.post("/v1/streams", json=body)
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_bad_json_body(client: httpx.Client) -> None:
    r = client.post(
        "/v1/streams", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_credentials_never_in_answers(client: httpx.Client) -> None:
    secret_url = "rtsp://admin:hunter2@127.0.0.1:9/cam"
    r = client.post("/v1/streams", json={"url": secret_url, "fps": -3})
    assert r.status_code == 422 and "hunter2" not in r.text
    r = client.post("/v1/streams", json={"url": secret_url, "id": "secret"})
    assert r.status_code == 201
    try:
        assert "hunter2" not in r.text and r.json()["url"] == "rtsp://***@127.0.0.1:9/cam"
        wait_until(lambda: client.get("/v1/streams/secret").json()["last_error"], 20)
        for path in ("/v1/streams", "/v1/streams/secret", "/metrics"):
            assert "hunter2" not in client.get(path).text
    finally:
        client.delete("/v1/streams/secret")


def test_unknown_stream_is_404_everywhere(client: httpx.Client, svc: Service) -> None:
    for method, path in [
        ("GET", "/v1/streams/nope"),
        ("DELETE", "/v1/streams/nope"),
        ("POST", "/v1/streams/nope/reconnect"),
        ("GET", "/v1/streams/nope/events"),
        ("GET", "/v1/streams/nope/mjpeg"),
        ("GET", "/v1/streams/nope/snapshot.jpg"),
        ("GET", "/v1/streams/nope/darknet.json"),
    ]:
        assert client.request(method, path).status_code == 404, path
    ws_url = svc.url.replace("http", "ws") + "/v1/streams/nope/ws"
    with pytest.raises(InvalidStatus), ws_connect(ws_url, open_timeout=10):
        pass


# -- outputs ------------------------------------------------------------------------------
def test_sse_all_streams(client: httpx.Client) -> None:
    events = read_sse(client, "/v1/events", lambda ev: ev[-1][0] == "detections", 60)
    assert any(name == "status" and e["id"] == "vt" for name, e in events)
    e = events[-1][1]
    assert e["stream"] == "vt" and e["width"] == 768 and e["height"] == 576
    assert {"frame", "pts", "timestamp", "latency_ms", "detections"} <= set(e)


def test_websocket_events(svc: Service) -> None:
    url = svc.url.replace("http", "ws") + "/v1/streams/vt/ws"
    with ws_connect(url, open_timeout=10) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "status" and first["id"] == "vt"
        got = []
        while len(got) < 2:
            msg = json.loads(ws.recv(timeout=30))
            if msg["type"] == "detections":
                got.append(msg)
        assert got[1]["frame"] > got[0]["frame"]
        names = {d["name"] for m in got for d in m["detections"]}
        assert "person" in names


def test_mjpeg_and_snapshot(client: httpx.Client) -> None:
    wait_processing(client, "vt")
    images = read_mjpeg(client, "/v1/streams/vt/mjpeg", frames=3, timeout=60)
    assert all(im.shape == (576, 768, 3) for im in images)
    r = client.get("/v1/streams/vt/snapshot.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    im = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert im is not None and im.shape == (576, 768, 3)


def test_darknet_json_stream(client: httpx.Client) -> None:
    text = ""
    with client.stream("GET", "/v1/streams/vt/darknet.json") as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_text():
            text += chunk
            if text.count('"frame_id"') >= 3:
                break
    # darknet's stream is a JSON array that grows; close it to parse what arrived
    body = text.rstrip().rstrip(",")
    frames = json.loads(body[: body.rfind("}") + 1] + "]")
    assert len(frames) >= 2
    obj = next(o for f in frames for o in f["objects"])
    assert set(obj) == {"class_id", "name", "relative_coordinates", "confidence"}
    assert set(obj["relative_coordinates"]) == {"center_x", "center_y", "width", "height"}


def test_several_clients_at_once(client: httpx.Client, svc: Service) -> None:
    import concurrent.futures as cf

    def sse() -> int:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            ev = read_sse(c, "/v1/streams/vt/events", lambda e: len(e) >= 3, 60)
            return len(ev)

    def mjpeg() -> int:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            return len(read_mjpeg(c, "/v1/streams/vt/mjpeg", 2, 60))

    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(sse) for _ in range(4)] + [pool.submit(mjpeg) for _ in range(4)]
        assert all(f.result(timeout=90) >= 2 for f in futures)


# -- single images ------------------------------------------------------------------------
def test_detect_multipart_and_raw(client: httpx.Client) -> None:
    png = image_bytes("basketball1.png")
    r = client.post("/v1/detect", files={"image": ("b.png", png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["width"] > 0 and "person" in {d["name"] for d in body["detections"]}
    raw = client.post("/v1/detect", content=png, headers={"content-type": "image/png"})
    assert raw.json()["detections"] == body["detections"]
    none = client.post("/v1/detect?classes=car", content=png, headers={"content-type": "image/png"})
    assert none.json()["detections"] == []


def test_detect_answers_the_one_detection_json(client: httpx.Client, detector: Any) -> None:
    """/v1/detect documents and answers `Detection` as `Detection.to_json()` writes it."""
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    ok = spec["paths"]["/v1/detect"]["post"]["responses"]["200"]["content"]["application/json"]
    result = schemas[ok["schema"]["$ref"].rsplit("/", 1)[1]]
    item = result["properties"]["detections"]["items"]["$ref"].rsplit("/", 1)[1]
    documented = list(schemas[item]["properties"])
    assert documented == [f.name for f in dataclasses.fields(Detection)]

    png = image_bytes("basketball1.png")
    r = client.post("/v1/detect", content=png, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    image = decode_image(png)
    assert image is not None
    expected = [d.to_json() for d in detector.detect(image)]
    assert expected and r.json()["detections"] == expected


def test_deepstack_detection(client: httpx.Client) -> None:
    r = client.post(
        "/v1/vision/detection",
        files={"image": ("b.png", image_bytes("basketball1.png"), "image/png")},
        data={"min_confidence": "0.3"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True
    p = body["predictions"][0]
    assert set(p) == {"label", "confidence", "x_min", "y_min", "x_max", "y_max"}
    assert p["label"] == "person" and p["x_max"] > p["x_min"] and p["confidence"] >= 0.3
    assert all(isinstance(p[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))


@pytest.mark.parametrize("path", ["/v1/detect", "/v1/vision/detection"])
def test_detect_bad_inputs(client: httpx.Client, path: str) -> None:
    cases = [
        (dict(content=b"hello", headers={"content-type": "text/plain"}), 415),
        (dict(files={"image": ("x.jpg", b"not an image", "image/jpeg")}), 400),
        (dict(files={"image": ("x.jpg", b"", "image/jpeg")}), 400),
        (dict(files={"other": ("x.jpg", b"abc", "image/jpeg")}), 400),
        (dict(data={"image": "text, not a file"}), 415),  # urlencoded form, not multipart
        (dict(files={"image": ("big.jpg", b"\xff" * (2 << 20), "image/jpeg")}), 413),
        (dict(content=b"\xff" * (2 << 20), headers={"content-type": "image/jpeg"}), 413),
    ]
    for kwargs, status in cases:
        r = client.post(path, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == status, (kwargs.keys(), r.text)
        if path == "/v1/vision/detection":
            assert r.json()["success"] is False and r.json()["error"]
    # a body streamed without Content-Length is still bounded
    r = client.post(
        path, content=iter([b"\xff" * (1 << 20)] * 3), headers={"content-type": "image/jpeg"}
    )
    assert r.status_code == 413
    assert client.get("/healthz").status_code == 200


# -- health, metrics, docs ----------------------------------------------------------------
def test_health_ready_metrics_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    wait_processing(client, "vt")
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["streams"]["vt"] is True
    text = client.get("/metrics").text
    for name in (
        'xnoryolo_stream_input_fps{name="vtest",stream="vt"}',
        'xnoryolo_stream_processed_fps{name="vtest",stream="vt"}',
        "xnoryolo_stream_dropped_frames_total",
        "xnoryolo_stream_reconnects_total",
        "xnoryolo_stream_stalls_total",
        'xnoryolo_stream_latency_seconds_bucket{le="1.0",stream="vt"}',
        "xnoryolo_inference_seconds_count",
    ):
        assert name in text, name
    spec = client.get("/openapi.json").json()
    assert "/v1/streams" in spec["paths"] and "/v1/vision/detection" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_info_says_what_runs(client: httpx.Client, detector: Any) -> None:
    import xnoryolo
    from xnoryolo.kernels.backend import get_simd

    info = client.get("/v1/info").json()
    assert info["version"] == xnoryolo.__version__
    assert info["model"] == "yolov3-tiny.weights"
    assert info["input"] == "416x416x3" and info["classes"] == 80
    assert info["binary_convolutions"] == "0 of 13"
    assert (info["backend"], info["kernels"]) == ("fast", get_simd())
    assert info["threads"] == detector.network.backend.threads
    assert info["uptime_s"] >= 0


def test_readyz_fails_for_a_stream_without_results(client: httpx.Client) -> None:
    r = client.post("/v1/streams", json={"url": "rtsp://127.0.0.1:9/none", "id": "dead"})
    assert r.status_code == 201
    try:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["streams"]["dead"] is False
    finally:
        client.delete("/v1/streams/dead")
    assert client.get("/readyz").status_code == 200


# -- API keys -----------------------------------------------------------------------------
def test_api_keys(detector: Any) -> None:
    with (
        run_service(settings_for(api_keys=["k-one", "k-two"]), detector) as svc,
        httpx.Client(base_url=svc.url, timeout=10) as c,
    ):
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        for path in ("/v1/streams", "/metrics", "/docs", "/openapi.json", "/v1/events"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert "api key" in r.json()["detail"].lower()
        assert c.get("/v1/streams", headers={"X-API-Key": "nope"}).status_code == 401
        assert c.get("/v1/streams", headers={"X-API-Key": "k-one"}).status_code == 200
        assert c.get("/v1/streams", headers={"Authorization": "Bearer k-two"}).status_code == 200
        assert c.get("/metrics?api_key=k-two").status_code == 200
        t0 = time.monotonic()
        with c.stream("GET", "/v1/events?api_key=k-one") as resp:  # EventSource style
            assert resp.status_code == 200
        assert time.monotonic() - t0 < 10
        ws = svc.url.replace("http", "ws")
        c.post(
            "/v1/streams",
            json={"url": "rtsp://127.0.0.1:9/x", "id": "w"},
            params={"api_key": "k-one"},
        )
        with pytest.raises(InvalidStatus), ws_connect(f"{ws}/v1/streams/w/ws", open_timeout=10):
            pass
        with ws_connect(f"{ws}/v1/streams/w/ws?api_key=k-one", open_timeout=10) as conn:
            assert json.loads(conn.recv(timeout=10))["type"] == "status"
