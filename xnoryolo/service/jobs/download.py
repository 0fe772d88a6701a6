"""Fetching a `url=` job's video into its folder, bounded in size, in time and in rate, from
where the network policy allows.

A socket timeout only bounds each read: a peer that drips a byte every few seconds would hold
the download forever. So a watchdog thread follows every transfer and shuts its socket down
(which ends a blocked read at once) when the job is cancelled, when the whole download passes
its deadline, or when it runs slower than the minimum rate over the rate window.

The URL and every redirect's target are checked against the network policy first;
credentials in the URL go to its own host as a header, never into a host name (or to a
resolver)."""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import time
import urllib.request
from base64 import b64encode
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xnoryolo.detector.video import Cancelled

from ..policy import (
    CheckedRedirects,
    HostNotFound,
    NetworkPolicy,
    SourceRefused,
    check_url,
    redirect_refusal,
)
from ..redact import redact, redact_url, split_credentials
from .layout import JobFolder


class DownloadError(RuntimeError):
    """The video at a job's URL could not be fetched; the message says why (redacted)."""


def _one_line(text: object) -> str:
    # A peer's words (a status line, urllib's multi-line redirect note) end up in the job's
    # error and in a log line: one line, bounded.
    return " ".join(str(text).split())[:300]


@dataclass(frozen=True)
class DownloadRules:
    """How long and how large one download may be (JobsConfig and LimitsConfig settings)."""

    limit_bytes: int
    read_timeout_s: float = 30.0
    deadline_s: float = 600.0
    min_bytes_per_s: float = 0.0
    rate_window_s: float = 20.0


class _Watchdog:
    """Aborts a transfer from outside: on cancel, past the deadline, or below the minimum
    rate. `reason` says which once it did."""

    TICK_S = 0.2

    def __init__(self, rules: DownloadRules, cancel: threading.Event) -> None:
        self.rules = rules
        self.cancel = cancel
        self.reason: str | None = None
        self.received = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="download-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.reason is not None:
                self._abort()

    def _abort(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _watch(self) -> None:
        rules = self.rules
        start = time.monotonic()
        samples: deque[tuple[float, int]] = deque([(start, 0)])
        while not self._done.wait(self.TICK_S):
            now = time.monotonic()
            samples.append((now, self.received))
            while len(samples) > 1 and samples[1][0] <= now - rules.rate_window_s:
                samples.popleft()
            reason = None
            if self.cancel.is_set():
                reason = "cancelled"
            elif now - start > rules.deadline_s:
                reason = f"the download took longer than {rules.deadline_s:g} s"
            elif rules.min_bytes_per_s and now - samples[0][0] >= rules.rate_window_s:
                t0, n0 = samples[0]
                rate = (self.received - n0) / (now - t0)
                if rate < rules.min_bytes_per_s:
                    reason = (
                        f"the download ran at {rate / 1024:.1f} KB/s, under the minimum of "
                        f"{rules.min_bytes_per_s / 1024:g} KB/s"
                    )
            if reason is not None:
                with self._lock:
                    self.reason = reason
                    self._abort()
                return


def _watched(base: type[http.client.HTTPConnection], watchdog: _Watchdog) -> Any:
    class Watched(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            super().connect()
            watchdog.attach(self.sock)

    return Watched


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self.conn_class = _watched(http.client.HTTPConnection, watchdog)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.conn_class, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self.conn_class = _watched(http.client.HTTPSConnection, watchdog)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(self.conn_class, context=self._context), req)  # type: ignore[attr-defined]


def checked_request(
    url: str, policy: NetworkPolicy, watchdog: _Watchdog
) -> tuple[urllib.request.OpenerDirector, urllib.request.Request]:
    """An opener and a request for `url`, checked against `policy` (DownloadError if it is
    not allowed): the opener checks each redirect's target the same way, and `watchdog`
    follows each of its connections (redirects too)."""
    try:
        check_url(policy, url)
    except (SourceRefused, HostNotFound) as exc:
        raise DownloadError(f"cannot download {redact_url(url)}: {exc}") from None
    bare, credentials = split_credentials(url)
    request = urllib.request.Request(bare)
    if credentials is not None:
        pair = f"{credentials[0]}:{credentials[1] or ''}".encode()
        # Unredirected: a redirect to another host never carries the credentials along.
        request.add_unredirected_header("Authorization", "Basic " + b64encode(pair).decode())
    opener = urllib.request.build_opener(
        _HTTPHandler(watchdog), _HTTPSHandler(watchdog), CheckedRedirects(policy)
    )
    return opener, request


def _transfer(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    dest: Path,
    rules: DownloadRules,
    watchdog: _Watchdog,
) -> None:
    with opener.open(request, timeout=rules.read_timeout_s) as resp, dest.open("wb") as f:
        while chunk := resp.read1(1 << 16):
            watchdog.received += len(chunk)
            if watchdog.received > rules.limit_bytes:
                mb = rules.limit_bytes / 1024 / 1024
                raise DownloadError(f"the video at the URL is larger than {mb:g} MB")
            f.write(chunk)


def download(
    url: str,
    folder: JobFolder,
    rules: DownloadRules,
    cancel: threading.Event,
    policy: NetworkPolicy | None = None,
) -> Path:
    """The video at `url`, saved as the job's input; Cancelled once `cancel` is set,
    DownloadError when it fails, breaks `rules` or leads where `policy` (default:
    NetworkPolicy's default deny list) does not allow."""
    part = folder.part
    try:
        with _Watchdog(rules, cancel) as watchdog:
            opener, request = checked_request(url, policy or NetworkPolicy(), watchdog)
            try:
                _transfer(opener, request, part, rules, watchdog)
            except (SourceRefused, HostNotFound) as exc:  # a redirect the policy refuses
                raise DownloadError(
                    f"cannot download {redact_url(url)}: {redirect_refusal(exc)}"
                ) from None
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts
                if watchdog.reason is None:
                    reason = _one_line(redact(str(exc)))
                    raise DownloadError(f"cannot download {redact_url(url)}: {reason}") from None
            # A socket shut down by the watchdog may also end as a short, "complete" read.
            if watchdog.reason == "cancelled":
                raise Cancelled()
            if watchdog.reason is not None:
                raise DownloadError(f"cannot download {redact_url(url)}: {watchdog.reason}")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    final = folder.input_for(None)
    part.replace(final)
    return final
