"""Video sources: what a URL names, opening it with OpenCV's FFmpeg backend under explicit
timeouts, and telling why an open failed.

OpenCV holds one process-wide lock for the whole of every FFmpeg open (captures and writers
alike; reads and releases do not take it). An open that blocks where FFmpeg cannot interrupt
it (a FIFO, a device, any open(2) that waits) therefore stops every other open in the
process: other streams, uploads, jobs. So no such open may reach FFmpeg: FFmpeg's own
protocol syntax (`async:`, `pipe:`, `concat:`, `subfile,,...:`) is no source, and a local
file is opened here first, without blocking, checked to be a regular file and handed to
FFmpeg as that very file (/proc/self/fd/N), so nothing can swap it for a FIFO in between."""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import re
import socket
import ssl
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from ..imagelimits import ImageRefused, check_size, image_size
from ..policy import (
    DEFAULT_PORTS,
    CheckedRedirects,
    HostNotFound,
    SourcePolicy,
    SourceRefused,
    redirect_refusal,
)
from ..redact import AmbiguousCredentials, redact, redact_url, split_credentials
from .events import ErrorKind, SourceError

SourceKind = Literal["file", "rtsp", "http", "device"]

# FFmpeg reads "proto:rest" (and "subfile,,opts,:rest") as a protocol, not a file name.
_FFMPEG_PROTOCOL = re.compile(r"[A-Za-z0-9+.,-]*:")
_DOS_PATH = re.compile(r"[A-Za-z]:[\\/]")
_DEVICE = re.compile(r"\d{1,3}|/dev/video\d+|/dev/v4l/by-(?:id|path)/[\w.:@+-]+")


class InvalidSource(ValueError):
    """A URL that names no source kind the service can read."""


class Capture(Protocol):
    """The part of cv2.VideoCapture the pipeline uses (fakes implement it in tests)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


@dataclass(frozen=True)
class Source:
    """What a stream reads. `policy`: the source policy its every (re)connection is checked
    against (None: a trusted source from the settings file)."""

    url: str = field(repr=False)  # may hold credentials
    kind: SourceKind
    policy: SourcePolicy | None = field(default=None, repr=False, compare=False)
    # the largest frame (width x height) to decode: limits.max_pixels (None: no limit)
    max_pixels: int | None = field(default=None, compare=False)

    @property
    def live(self) -> bool:
        """Live sources keep only their newest frame; files deliver every frame."""
        return self.kind != "file"

    @property
    def redacted(self) -> str:
        return redact_url(self.url) if self.kind in ("rtsp", "http") else redact(self.url)

    @property
    def bare_url(self) -> str:
        """A network source's URL without its credentials."""
        return split_credentials(self.url)[0]

    @property
    def default_name(self) -> str:
        if self.kind in ("file", "device"):
            return Path(self.url).name or self.url
        parts = urlsplit(self.bare_url)
        return f"{parts.hostname or ''}{parts.path or ''}" or self.redacted


def parse_source(url: str, policy: SourcePolicy | None = None) -> Source:
    """The source `url` names; InvalidSource if none, SourceRefused if `policy` (the API's)
    does not allow it. Checks only what needs no network or file access (see
    `check_source`)."""
    url = url.strip()
    if not url:
        raise InvalidSource("empty source URL")
    if _DEVICE.fullmatch(url):
        if policy is not None:
            policy.check_device(url)
        return Source(url, "device", policy)
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        kind: SourceKind = "rtsp"
    elif scheme in ("http", "https"):
        kind = "http"
    elif scheme == "file":
        return _file_source(unquote(urlsplit(url).path), policy)
    elif scheme:
        raise InvalidSource(
            f"unsupported URL scheme {scheme!r}: use rtsp(s)://, http(s)://, a file or a device"
        )
    else:
        return _file_source(url, policy)
    try:
        bare, _ = split_credentials(url)
    except AmbiguousCredentials as exc:
        raise InvalidSource(str(exc)) from None
    if not urlsplit(bare).hostname:
        raise InvalidSource(f"{redact_url(url)}: no host in the URL")
    if policy is not None and scheme not in policy.schemes:
        raise SourceRefused(f"the source policy does not allow {scheme}:// sources")
    return Source(url, kind, policy)


def _file_source(path: str, policy: SourcePolicy | None) -> Source:
    if _FFMPEG_PROTOCOL.match(path) and not _DOS_PATH.match(path):
        raise InvalidSource(
            "FFmpeg protocol syntax ('name:...') is not a source: use rtsp(s)://, http(s)://, "
            "a file path or a device"
        )
    if policy is not None:
        policy.check_file(path)
    return Source(path, "file", policy)


def check_source(source: Source) -> None:
    """`source` against its policy, with what needs the network or the file system: every
    address of a network source's host, a file's real path and type. SourceRefused,
    HostNotFound or InvalidSource (not a regular file); nothing for trusted sources."""
    policy = source.policy
    if policy is None:
        return
    if source.kind in ("rtsp", "http"):
        policy.check_network(source.url)
    elif source.kind == "file":
        policy.check_file(source.url)
        with contextlib.suppress(FileNotFoundError), _opened_file(source.url):
            pass
    else:
        policy.check_device(source.url)


class NotARegularFile(InvalidSource):
    """A local source of the wrong type: a FIFO, socket, device or folder where a video file
    is expected, anything but a character device where a capture device is."""


@contextlib.contextmanager
def _opened_file(path: str) -> Iterator[int]:
    """`path` opened for reading without blocking (a FIFO opens at once with O_NONBLOCK);
    NotARegularFile unless it is a regular file, OSError if it cannot be opened."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # what opening a Unix socket answers
            raise NotARegularFile("not a regular file (a socket)") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"not a regular file ({_describe(mode)})")
        yield fd
    finally:
        os.close(fd)


def _describe(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "not a file"


def _check_device(path: str) -> None:
    """NotARegularFile unless the device path names a character device (OSError if none):
    a FIFO named like a camera would block OpenCV's open like any other."""
    mode = os.stat(path).st_mode
    if not stat.S_ISCHR(mode):
        raise NotARegularFile(f"not a capture device ({_describe(mode)})")


@contextlib.contextmanager
def pinned_file(source: Source) -> Iterator[str]:
    """A name under which FFmpeg opens exactly the regular file `source` names (checked
    against its policy by its real path), while the context lasts."""
    with _opened_file(source.url) as fd:
        proc = f"/proc/self/fd/{fd}"
        if source.policy is not None:
            real = os.readlink(proc) if os.path.exists(proc) else source.url
            source.policy.check_file(real)
        yield proc if os.path.exists(proc) else source.url


# The protocols FFmpeg may use for any open in the process, also those a source opens by
# itself (HLS segments, RTSP's transports, a playlist inside an uploaded file): no `pipe:`,
# `fd:`, `unix:`, `async:`, `subfile:`, `concat:`, `ftp:` ...
FFMPEG_PROTOCOLS = "file,http,https,tcp,tls,udp,rtp,srtp,rtsp,rtsps,httpproxy,crypto,data"


def configure_ffmpeg(options: str) -> None:
    """Set OpenCV's FFmpeg capture options, process-wide (OpenCV reads them at each open);
    FFMPEG_PROTOCOLS as the protocol whitelist unless `options` names its own."""
    if "protocol_whitelist;" not in options:
        whitelist = f"protocol_whitelist;{FFMPEG_PROTOCOLS}"
        options = f"{options}|{whitelist}" if options else whitelist
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options


def open_capture(source: Source, open_timeout: float, read_timeout: float) -> Capture:
    """An opened capture, or SourceFailure telling why not."""
    try:
        check_source(source)
    except (SourceRefused, HostNotFound, InvalidSource) as exc:
        raise _refusal(source, exc) from None
    except OSError:
        pass  # a file that cannot be opened: told below, as for a trusted one
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
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout * 1000),
    ]
    if source.kind == "device":
        dev: Any = int(source.url) if source.url.isdigit() else source.url
        if isinstance(dev, str):
            try:
                _check_device(dev)
            except InvalidSource as exc:
                raise _refusal(source, exc) from None
            except OSError:
                raise SourceFailure(_diagnose_local(source)) from None
        cap = cv2.VideoCapture(dev)
    elif source.kind == "file":
        try:
            with pinned_file(source) as name:
                cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG, params)
        except (SourceRefused, InvalidSource) as exc:
            raise _refusal(source, exc) from None
        except OSError:
            raise SourceFailure(_diagnose_local(source)) from None
    else:
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


def _refusal(source: Source, exc: Exception) -> SourceFailure:
    kind = (
        ErrorKind.REFUSED
        if isinstance(exc, SourceRefused)
        else ErrorKind.NOT_FOUND
        if isinstance(exc, HostNotFound)
        else ErrorKind.UNSUPPORTED
    )
    return SourceFailure(SourceError(kind, f"{source.redacted}: {exc}"))


def _has_userinfo(source: Source) -> bool:
    return split_credentials(source.url)[1] is not None


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
    if not os.access(path, os.R_OK):
        return SourceError(ErrorKind.UNKNOWN, f"{name}: not readable")
    return SourceError(ErrorKind.UNSUPPORTED, f"{name}: not a video FFmpeg can decode")


def probe(source: Source, timeout: float) -> SourceError | None:
    """Ask an RTSP or HTTP server for the stream: None when it offers it, else why not."""
    name = source.redacted
    parts = urlsplit(source.bare_url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
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
    url = source.bare_url  # credentials stay out of the probe
    try:
        if url[:6].lower() == "rtsps:":
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
    url, credentials = split_credentials(source.url)
    req = urllib.request.Request(url, method="GET")
    if credentials is not None:
        user_pass = f"{credentials[0]}:{credentials[1] or ''}"
        # Sent to the URL's own host only: urllib drops unredirected headers on redirects.
        req.add_unredirected_header(
            "Authorization", "Basic " + base64.b64encode(user_pass.encode()).decode()
        )
    # a trusted source's redirects are the operator's; the API's are checked like the URL
    handlers = [] if source.policy is None else [CheckedRedirects(source.policy.network)]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            if source.max_pixels is not None and ctype.startswith(_JPEG_STREAMS):
                error = _check_first_jpeg(resp, source, timeout)
                if error is not None:
                    return error
    except SourceRefused as exc:
        return SourceError(ErrorKind.REFUSED, f"{name}: {redirect_refusal(exc)}")
    except HostNotFound as exc:
        return SourceError(ErrorKind.NOT_FOUND, f"{name}: {redirect_refusal(exc)}")
    except urllib.error.HTTPError as exc:
        return _from_status(name, exc.code)
    except TimeoutError:
        return SourceError(ErrorKind.TIMEOUT, f"{name}: no HTTP answer within {timeout:g} s")
    except (urllib.error.URLError, OSError) as exc:
        return SourceError(ErrorKind.UNKNOWN, f"{name}: {redact(str(exc))}")
    if ctype.startswith(("text/html", "text/plain", "application/json", "text/xml")):
        return SourceError(ErrorKind.UNSUPPORTED, f"{name}: not a video stream ({ctype})")
    return None


# MJPEG cameras and snapshot URLs: FFmpeg would decode (allocate) a frame of whatever size the
# first JPEG declares, so its header is read here first.
_JPEG_STREAMS = ("multipart/x-mixed-replace", "image/jpeg")
_JPEG_HEAD_BYTES = 64 * 1024


def _check_first_jpeg(resp: Any, source: Source, timeout: float) -> SourceError | None:
    """SourceError when the first JPEG of an HTTP MJPEG/JPEG answer is beyond the frame
    limit; None when it is within it or its header cannot be read in time (FFmpeg's own
    open then tells, and every decoded frame is checked again)."""
    assert source.max_pixels is not None
    head, deadline = b"", time.monotonic() + timeout
    while len(head) < _JPEG_HEAD_BYTES and time.monotonic() < deadline:
        chunk = resp.read1(_JPEG_HEAD_BYTES - len(head))
        if not chunk:
            break
        head += chunk
        start = head.find(b"\xff\xd8")
        size = image_size(head[start:]) if start >= 0 else None
        if size is not None:
            try:
                check_size(*size, source.max_pixels, "the stream's frames")
            except ImageRefused as exc:
                return SourceError(ErrorKind.TOO_LARGE, f"{source.redacted}: {exc}")
            return None
    return None


def _from_status(name: str, status: int) -> SourceError | None:
    if status in (401, 403):
        return SourceError(ErrorKind.AUTH_FAILED, f"{name}: authentication failed ({status})")
    if status in (404, 410):
        return SourceError(ErrorKind.NOT_FOUND, f"{name}: no such stream ({status})")
    if status < 300:
        return None
    return SourceError(ErrorKind.UNKNOWN, f"{name}: the server answered {status}")
