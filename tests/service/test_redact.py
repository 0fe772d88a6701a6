"""Redaction that does not depend on the URL being well-formed: passwords with `#`, `?`, `/`,
`@`, `:` and spaces, in status, events, logs and the metrics' name label; URLs whose
credentials cannot be parsed are refused without being echoed; a URL job's credentials go
to its server as a header, never to the resolver."""

from __future__ import annotations

import base64
import http.server
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client import generate_latest

from xnoryolo.service.jobs.download import DownloadError, DownloadRules, download
from xnoryolo.service.jobs.layout import JobFolder
from xnoryolo.service.publish.metrics import ServiceMetrics
from xnoryolo.service.redact import (
    AmbiguousCredentials,
    RedactingFilter,
    redact,
    redact_url,
    split_credentials,
)
from xnoryolo.service.settings import CaptureConfig, StreamConfig
from xnoryolo.service.streams.manager import StreamManager
from xnoryolo.service.streams.scheduler import FrameScheduler
from xnoryolo.service.streams.sources import InvalidSource, parse_source

pytestmark = pytest.mark.timeout(30)

SECRET = "Zq9-secret"
# Passwords as users type them into camera URLs.
PASSWORDS = [
    f"{SECRET}#frag",
    f"{SECRET}?x=1",
    f"a/{SECRET}",
    f"{SECRET}@home",
    f"my {SECRET} pass",
    f"{SECRET}:colon",
    f"{SECRET}%zz",
    f"#{SECRET}",
    f"@{SECRET}@",
    f"{SECRET}/?#@ x",
]
URLS = [
    f"{scheme}://admin:{pw}@{host}/stream1"
    for pw in PASSWORDS
    for scheme, host in (("rtsp", "192.0.2.10:554"), ("http", "cam.lan"))
]

_RULES = DownloadRules(limit_bytes=1024 * 1024, read_timeout_s=10.0)


@pytest.mark.parametrize("url", URLS)
def test_redact_url_hides_malformed_credentials(url: str) -> None:
    assert SECRET not in redact_url(url) and "admin" not in redact_url(url)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(
    "template",
    [
        "{url}",
        "opening {url} failed: refused",
        '{{"url": "{url}", "state": "offline"}}',
        "stream a (cam): added, {url}\nnext line",
        "cannot open '{url}'",
    ],
)
def test_redact_text_hides_malformed_credentials(url: str, template: str) -> None:
    text = template.format(url=url)
    assert SECRET not in redact(text)


def test_redact_keeps_what_it_can() -> None:
    assert redact("rtsp://127.0.0.1:8554/cam1 online") == "rtsp://127.0.0.1:8554/cam1 online"
    assert redact("rtsp://a:p@ss@h/x y") == "rtsp://***@h/x y"
    assert redact("GET /v1/events?api%5Fkey=k1&x=1") == "GET /v1/events?api%5Fkey=***&x=1"
    assert redact("GET /v1/events?API%5fKEY=k1") == "GET /v1/events?API%5fKEY=***"


@pytest.mark.parametrize("pw", [p for p in PASSWORDS if any(c in p for c in "#?/ ")])
def test_unparsable_credentials_are_refused_not_echoed(pw: str) -> None:
    url = f"rtsp://admin:{pw}@192.0.2.10/stream1"
    with pytest.raises(AmbiguousCredentials) as info:
        split_credentials(url)
    assert SECRET not in str(info.value)
    with pytest.raises(InvalidSource) as refused:
        parse_source(url)
    assert SECRET not in str(refused.value)


def test_parsable_credentials() -> None:
    assert split_credentials("rtsp://admin:p%23ss@h:554/x?y=1") == (
        "rtsp://h:554/x?y=1",
        ("admin", "p#ss"),
    )
    assert split_credentials("rtsp://a:p@ss@h/x") == ("rtsp://h/x", ("a", "p@ss"))
    assert split_credentials("rtsp://token@h/x") == ("rtsp://h/x", ("token", None))
    assert split_credentials("rtsp://h/x") == ("rtsp://h/x", None)
    assert parse_source("rtsp://a:p@ss@h/x").default_name == "h/x"


def test_logs_status_and_metrics_name_label(caplog: pytest.LogCaptureFixture) -> None:
    class Hub:
        def publish(self, event: Any) -> None:
            pass

        def close_stream(self, stream: str) -> None:
            pass

    class NoCapture:
        def __init__(self, *a: Any, **k: Any) -> None:
            pass

    metrics = ServiceMetrics()
    manager = StreamManager(
        FrameScheduler(),
        Hub(),
        CaptureConfig(),
        capture_factory=NoCapture,  # type: ignore[arg-type]
    )
    metrics.watch(lambda: [ms.to_json() for ms in manager.list()])
    logger = logging.getLogger("xnoryolo.service.streams")
    redacting = RedactingFilter()
    logger.addFilter(redacting)
    try:
        with caplog.at_level(logging.INFO, logger="xnoryolo.service.streams"):
            for i, pw in enumerate(["p@" + SECRET, SECRET + "@x"]):
                url = f"rtsp://admin:{pw}@192.0.2.10/s"
                manager.add(StreamConfig(url=url, id=f"s{i}", enabled=False), trusted=True)
                # a name that is itself a URL with a malformed password
                manager.add(
                    StreamConfig(
                        url="rtsp://192.0.2.10/s",
                        name=f"rtsp://admin:{SECRET}#x@192.0.2.10/s",
                        id=f"n{i}",
                        enabled=False,
                    ),
                    trusted=True,
                )
    finally:
        logger.removeFilter(redacting)
    assert SECRET not in caplog.text
    assert SECRET not in str([ms.to_json() for ms in manager.list()])
    assert SECRET not in generate_latest(metrics.registry).decode()


class _VideoServer(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"\x00" * 1000
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def video_server() -> Iterator[int]:
    _VideoServer.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _VideoServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_url_job_credentials_go_to_the_server_not_the_resolver(
    video_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    folder = JobFolder(tmp_path)
    url = f"http://admin:{SECRET}%40x@localhost:{video_server}/v.mp4"
    path = download(url, folder, _RULES, threading.Event())
    assert path.stat().st_size == 1000
    assert asked and not any(SECRET in host for host in asked)
    sent = base64.b64decode(_VideoServer.seen[-1].split()[1]).decode()  # type: ignore[union-attr]
    assert sent == f"admin:{SECRET}@x"


def test_url_job_redirect_to_a_denied_address(video_server: int, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="redirected to a URL the source policy") as info:
        download(
            f"http://admin:{SECRET}@127.0.0.1:{video_server}/redirect",
            JobFolder(tmp_path),
            _RULES,
            threading.Event(),
        )
    assert SECRET not in str(info.value) and "169.254" not in str(info.value)
    assert not (tmp_path / "input.part").exists()
    with pytest.raises(DownloadError, match="denies"):
        download("http://169.254.169.254/x", JobFolder(tmp_path), _RULES, threading.Event())
    with pytest.raises(DownloadError, match="percent-encode") as info:
        download(
            f"http://admin:{SECRET}#x@127.0.0.1:{video_server}/v.mp4",
            JobFolder(tmp_path),
            _RULES,
            threading.Event(),
        )
    assert SECRET not in str(info.value)
