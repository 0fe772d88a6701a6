"""Video sources: what a URL names, opening it with OpenCV's FFmpeg backend under explicit
timeouts, and telling why an open failed."""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from ..redact import redact
from .events import ErrorKind, SourceError

SourceKind = Literal["file", "rtsp", "http", "device"]

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


class InvalidSource(ValueError):
    """A URL that names no source kind the service can read."""


class Capture(Protocol):
    """The part of cv2.VideoCapture the pipeline uses (fakes implement it in tests)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


@dataclass(frozen=True)
class Source:
    url: str = field(repr=False)  # may hold credentials
    kind: SourceKind

    @property
    def live(self) -> bool:
        """Live sources keep only their newest frame; files deliver every frame."""
        return self.kind != "file"

    @property
    def redacted(self) -> str:
        return redact(self.url)

    @property
    def default_name(self) -> str:
        if self.kind in ("file", "device"):
            return Path(self.url).name or self.url
        parts = urlsplit(self.url)
        return f"{parts.hostname or ''}{parts.path or ''}" or self.redacted


def parse_source(url: str) -> Source:
    url = url.strip()
    if not url:
        raise InvalidSource("empty source URL")
    if re.fullmatch(r"\d{1,3}", url) or re.fullmatch(r"/dev/video\d+", url):
        return Source(url, "device")
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        kind: SourceKind = "rtsp"
    elif scheme in ("http", "https"):
        kind = "http"
    elif scheme == "file":
        return Source(unquote(urlsplit(url).path), "file")
    elif scheme:
        raise InvalidSource(
            f"unsupported URL scheme {scheme!r}: use rtsp(s)://, http(s)://, a file or a device"
        )
    else:
        kind = "file"
    if kind != "file" and not urlsplit(url).hostname:
        raise InvalidSource(f"{redact(url)}: no host in the URL")
    return Source(url, kind)


def configure_ffmpeg(options: str) -> None:
    """Set OpenCV's FFmpeg capture options, process-wide (OpenCV reads them at each open)."""
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options


def open_capture(source: Source, open_timeout: float, read_timeout: float) -> Capture:
    """An opened capture, or SourceFailure telling why not."""
    network = source.kind in ("rtsp", "http")
    if network:
        # OpenCV holds a process-wide lock for the whole of an FFmpeg open, so one dead
        # camera would delay every other stream's (re)connection: ask the server first.
        error = probe(source, open_timeout)
        if error is not None and not (
            error.kind == ErrorKind.AUTH_FAILED and _has_userinfo(source)
        ):
            raise SourceFailure(error)
    t0 = time.monotonic()
    if source.kind == "device":
        dev: Any = int(source.url) if source.url.isdigit() else source.url
        cap = cv2.VideoCapture(dev)
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(read_timeout * 1000),
        ]
        cap = cv2.VideoCapture(source.url, cv2.CAP_FFMPEG, params)
    if cap.isOpened():
        return cap
    cap.release()
    if not network:
        raise SourceFailure(_diagnose_local(source))
    elapsed = time.monotonic() - t0
    error = probe(source, open_timeout)
    if error is None and elapsed >= 0.8 * open_timeout:
        # It answers but sent no decodable video in time (e.g. a camera that stopped).
        error = SourceError(
            ErrorKind.TIMEOUT, f"{source.redacted}: no video within {open_timeout:g} s"
        )
    elif error is None:
        error = SourceError(
            ErrorKind.UNSUPPORTED, f"{source.redacted}: FFmpeg cannot decode this stream"
        )
    raise SourceFailure(error)


class SourceFailure(Exception):
    def __init__(self, error: SourceError) -> None:
        super().__init__(error.message)
        self.error = error


def _has_userinfo(source: Source) -> bool:
    return "@" in urlsplit(source.url).netloc


def _diagnose_local(source: Source) -> SourceError:
    name = source.redacted
    if source.kind == "device":
        if source.url.startswith("/dev/") and not Path(source.url).exists():
            return SourceError(ErrorKind.NOT_FOUND, f"{name}: no such device")
        return SourceError(ErrorKind.UNKNOWN, f"{name}: the device cannot be opened")
    path = Path(source.url)
    if not path.exists():
        return SourceError(ErrorKind.NOT_FOUND, f"{name}: no such file")
    if not path.is_file():
        return SourceError(ErrorKind.UNSUPPORTED, f"{name}: not a regular file")
    return SourceError(ErrorKind.UNSUPPORTED, f"{name}: not a video FFmpeg can decode")


def probe(source: Source, timeout: float) -> SourceError | None:
    """Ask an RTSP or HTTP server for the stream: None when it offers it, else why not."""
    name = source.redacted
    parts = urlsplit(source.url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return SourceError(ErrorKind.NOT_FOUND, f"{name}: bad port")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        return SourceError(ErrorKind.NOT_FOUND, f"{name}: unknown host {host}")
    except ConnectionRefusedError:
        return SourceError(ErrorKind.CONNECTION_REFUSED, f"{name}: connection refused")
    except TimeoutError:
        return SourceError(ErrorKind.TIMEOUT, f"{name}: no answer within {timeout:g} s")
    except OSError as exc:
        return SourceError(ErrorKind.TIMEOUT, f"{name}: unreachable ({exc.strerror or exc})")
    if scheme in ("rtsp", "rtsps"):
        return _diagnose_rtsp(sock, source, host, timeout)
    sock.close()
    return _diagnose_http(source, timeout)


def _diagnose_rtsp(
    sock: socket.socket, source: Source, host: str, timeout: float
) -> SourceError | None:
    name = source.redacted
    parts = urlsplit(source.url)
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    url = parts._replace(netloc=netloc).geturl()  # credentials stay out of the probe
    try:
        if parts.scheme.lower() == "rtsps":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # a probe for a status line only
            sock = ctx.wrap_socket(sock, server_hostname=host)
        sock.settimeout(timeout)
        sock.sendall(
            f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n".encode()
        )
        reply = sock.recv(1024).decode("latin-1", errors="replace")
    except TimeoutError:
        return SourceError(
            ErrorKind.TIMEOUT, f"{name}: connected, but no RTSP answer within {timeout:g} s"
        )
    except OSError as exc:
        return SourceError(ErrorKind.DISCONNECTED, f"{name}: {exc.strerror or exc}")
    finally:
        sock.close()
    m = re.match(r"RTSP/\d\.\d (\d{3})", reply)
    if not m:
        return SourceError(ErrorKind.UNSUPPORTED, f"{name}: the server does not speak RTSP")
    return _from_status(name, int(m.group(1)))


def _diagnose_http(source: Source, timeout: float) -> SourceError | None:
    name = source.redacted
    parts = urlsplit(source.url)
    url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    req = urllib.request.Request(url, method="GET")
    if parts.username is not None:
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        req.add_header("Authorization", "Basic " + base64.b64encode(user_pass.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return _from_status(name, exc.code)
    except TimeoutError:
        return SourceError(ErrorKind.TIMEOUT, f"{name}: no HTTP answer within {timeout:g} s")
    except (urllib.error.URLError, OSError) as exc:
        return SourceError(ErrorKind.UNKNOWN, f"{name}: {redact(str(exc))}")
    if ctype.startswith(("text/html", "text/plain", "application/json", "text/xml")):
        return SourceError(ErrorKind.UNSUPPORTED, f"{name}: not a video stream ({ctype})")
    return None


def _from_status(name: str, status: int) -> SourceError | None:
    if status in (401, 403):
        return SourceError(ErrorKind.AUTH_FAILED, f"{name}: authentication failed ({status})")
    if status in (404, 410):
        return SourceError(ErrorKind.NOT_FOUND, f"{name}: no such stream ({status})")
    if status < 300:
        return None
    return SourceError(ErrorKind.UNKNOWN, f"{name}: the server answered {status}")
