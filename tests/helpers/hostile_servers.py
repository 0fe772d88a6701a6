"""Hostile HTTP peers on loopback for the service's URL jobs: each path of one threaded server
misbehaves in its own way (drips, stalls, never ends, loops redirects...). Every handler stops
by itself after `MAX_S` or when the client goes away, so a test never leaves one running."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

MAX_S = 30.0


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


class HostileServer:
    """`url(path)` for each behaviour in `BEHAVIOURS`; `closed` counts connections that ended
    because the client went away (a download that was interrupted)."""

    def __init__(self, video: Path | None = None) -> None:
        self.video = video.read_bytes() if video else b""
        self.client_gone = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(MAX_S)
                head = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        chunk = sock.recv(4096)
                        if not chunk:
                            return
                        head += chunk
                path = head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "/"
                behaviour = outer.behaviours().get(path.split("?")[0])
                if behaviour is None:
                    _send(sock, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    return
                if not behaviour(sock):
                    with outer.lock:
                        outer.client_gone += 1

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    # Each behaviour answers False when the client went away before it was done.
    def behaviours(self) -> dict[str, Callable[[socket.socket], bool]]:
        return {
            "/drip": self._drip,
            "/silent": self._silent,
            "/header-drip": self._header_drip,
            "/endless": self._endless,
            "/steady": self._steady,
            "/500": lambda s: _send(s, b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"),
            "/403": lambda s: _send(s, b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"),
            "/loop": lambda s: _send(
                s, b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"
            ),
            "/garbage": lambda s: self._body(s, bytes(range(256)) * 400),
            "/short": self._short,
            "/bad-status": lambda s: _send(s, b"NOT-HTTP garbage\r\n\r\n"),
            "/video": lambda s: self._body(s, self.video),
        }

    @staticmethod
    def _body(sock: socket.socket, data: bytes) -> bool:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {len(data)}\r\n"
        return _send(sock, head.encode() + b"Connection: close\r\n\r\n" + data)

    @staticmethod
    def _drip(sock: socket.socket) -> bool:
        """A valid 10 MB answer, one byte every half second."""
        if not _send(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"):
            return False
        end = time.monotonic() + MAX_S
        while time.monotonic() < end:
            if not _send(sock, b"\x00"):
                return False
            time.sleep(0.5)
        return True

    @staticmethod
    def _silent(sock: socket.socket) -> bool:
        """Accepts the request, never answers."""
        with contextlib.suppress(OSError):
            sock.settimeout(MAX_S)
            return bool(sock.recv(1)) or False  # b"": the client closed
        return True

    @staticmethod
    def _header_drip(sock: socket.socket) -> bool:
        """The status line and headers, one byte every half second, never finished."""
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 10000
        end = time.monotonic() + MAX_S
        for byte in head:
            if time.monotonic() > end or not _send(sock, bytes([byte])):
                return False
            time.sleep(0.5)
        return True

    @staticmethod
    def _endless(sock: socket.socket) -> bool:
        """A body without a length that never ends, as fast as the client reads."""
        if not _send(sock, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"):
            return False
        block = b"\x00" * 65536
        end = time.monotonic() + MAX_S
        while time.monotonic() < end:
            if not _send(sock, block):
                return False
        return True

    @staticmethod
    def _steady(sock: socket.socket) -> bool:
        """Fast enough for the minimum rate (about 64 KB/s), too long for the deadline."""
        if not _send(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n"):
            return False
        end = time.monotonic() + MAX_S
        while time.monotonic() < end:
            if not _send(sock, b"\x00" * 6400):
                return False
            time.sleep(0.1)
        return True

    @staticmethod
    def _short(sock: socket.socket) -> bool:
        """Promises 1 MB, sends 10 bytes, closes."""
        return _send(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n0123456789")


@contextlib.contextmanager
def hostile_server(video: Path | None = None) -> Iterator[HostileServer]:
    with HostileServer(video) as server:
        yield server


def raw_request(port: int, data: bytes, read_for: float = 10.0) -> bytes:
    """Send raw bytes to 127.0.0.1:`port`; what came back until the server closed or
    `read_for` seconds passed."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_for) as sock:
        with contextlib.suppress(OSError):  # the server may answer (and close) before the end
            sock.sendall(data)
        got = b""
        end = time.monotonic() + read_for
        with contextlib.suppress(OSError):
            while time.monotonic() < end:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got:
                    head, _, body = got.partition(b"\r\n\r\n")
                    length = [
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ]
                    if length and len(body) >= length[0]:
                        break
        return got


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (0 when there is none)."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
