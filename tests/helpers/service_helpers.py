"""Helpers for the service tests: free ports, polling, a real RTSP server subprocess, a real
uvicorn server in a thread."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)


def gst_rtsp_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


class RtspServer:
    """tests/helpers/rtsp_server.py as a subprocess that can be killed and brought back."""

    def __init__(
        self,
        media: Path,
        mounts: tuple[str, ...],
        auth: str | None = None,
        tls: Path | None = None,
    ) -> None:
        self.media = media
        self.mounts = mounts
        self.auth = auth
        self.tls = tls
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        scheme = "rtsps" if self.tls else "rtsp"
        return f"{scheme}://127.0.0.1:{self.port}{mount}"

    def start(self) -> None:
        cmd = [
            SYSTEM_PYTHON,
            str(Path(__file__).with_name("rtsp_server.py")),
            "--port",
            str(self.port),
        ]
        cmd += ["--file", str(self.media)]
        for m in self.mounts:
            cmd += ["--mount", m]
        if self.auth:
            cmd += ["--auth", self.auth]
        if self.tls:
            cmd += ["--tls", str(self.tls)]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "READY <port>" once it listens
        if not line.startswith("READY"):
            self.stop()
            pytest.fail("the RTSP test server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def pause(self) -> None:
        self.signal(signal.SIGUSR1)

    def resume(self) -> None:
        self.signal(signal.SIGUSR2)


@dataclass
class Service:
    url: str
    app: Any
    server: Any

    @property
    def pipeline(self) -> Any:
        return self.app.state.services.pipeline


@contextlib.contextmanager
def run_service(settings: Any, detector: Any) -> Iterator[Service]:
    """The real app under a real uvicorn on 127.0.0.1 (a free port), in a thread."""
    import uvicorn

    from xnoryolo.service.app import create_app

    app = create_app(settings, detector)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="websockets-sansio",
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, what="uvicorn")
        assert server.started, "uvicorn did not start"
        yield Service(f"http://127.0.0.1:{port}", app, server)
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def settings_for(**values: Any) -> Any:
    """ServeSettings with fast timeouts for tests (no environment or file)."""
    from xnoryolo.service.settings import ServeSettings

    capture = {
        "open_timeout_s": 3.0,
        "read_timeout_s": 2.0,
        "stall_after_s": 1.0,
        "reconnect_after_stall_s": 3.0,
        "backoff_initial_s": 0.3,
        "backoff_max_s": 2.0,
    }
    capture.update(values.pop("capture", {}))

    class Isolated(ServeSettings):
        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_: Any) -> Any:
            return (init_settings,)  # XNORYOLO_* variables of the caller's shell stay out

    return Isolated(capture=capture, keepalive_s=1.0, **values)
