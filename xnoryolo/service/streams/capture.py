"""One capture thread per stream: open, read, supervise, reconnect forever with backoff.

Every open runs on a thread of its own under a deadline: an open that does not return in time
is abandoned (its capture released whenever it does return) and the stream goes offline with
a timeout, so that stopping, deleting and reconnecting the stream never wait on it. A stream
starts no second open while its abandoned one is still running."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import cv2

from ..imagelimits import ImageRefused, check_size
from ..settings import CaptureConfig
from .backoff import Backoff
from .events import ErrorKind, Frame, SourceError, StreamState
from .memory import return_freed_memory
from .scheduler import FrameScheduler
from .sources import Capture, Source, SourceFailure, open_capture
from .status import StreamStatus

log = logging.getLogger("xnoryolo.service.capture")

Opener = Callable[[Source, float, float], Capture]


def open_deadline(settings: CaptureConfig) -> float:
    """The longest an open may take: the probe's connect and answer, FFmpeg's own open and a
    second probe to tell why it failed, each bounded by the open timeout, and name lookups."""
    return 5 * settings.open_timeout_s + 5.0


class _OpenAttempt:
    """One call of the opener on its own thread; whoever comes last releases the capture of
    an attempt that was abandoned."""

    def __init__(self, opener: Opener, source: Source, settings: CaptureConfig, name: str):
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        self._cap: Capture | None = None
        self._error: SourceError | None = None
        self.thread = threading.Thread(
            target=self._run,
            args=(opener, source, settings.open_timeout_s, settings.read_timeout_s),
            name=f"open-{name}",
            daemon=True,
        )
        self.thread.start()

    def _run(
        self, opener: Opener, source: Source, open_timeout: float, read_timeout: float
    ) -> None:
        cap: Capture | None = None
        error: SourceError | None = None
        try:
            cap = opener(source, open_timeout, read_timeout)
        except SourceFailure as failure:
            error = failure.error
        except Exception as exc:  # a bug must not leave a stream silently dead
            log.exception("%s: open failed", source.redacted)
            error = SourceError(ErrorKind.UNKNOWN, f"internal error: {exc}")
        with self._lock:
            if not self._abandoned:
                self._cap, self._error = cap, error
                self.done.set()
                return
        if cap is not None:
            cap.release()

    def outcome(self) -> Capture | SourceError:
        with self._lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            return cap
        assert self._error is not None
        return self._error

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class StreamCapture:
    """Reads one source on its own thread and offers its frames to the scheduler.

    Live sources keep only the newest frame (older unprocessed ones count as dropped); files
    wait for each frame to be taken. `fps` caps the frames offered (live: skipped, files:
    paced)."""

    def __init__(
        self,
        stream: str,
        source: Source,
        status: StreamStatus,
        scheduler: FrameScheduler,
        settings: CaptureConfig,
        fps: float | None = None,
        loop: bool = False,
        opener: Opener = open_capture,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        deadline: float | None = None,
    ) -> None:
        self.stream = stream
        self.source = source
        self.status = status
        self.scheduler = scheduler
        self.settings = settings
        self.fps = fps
        self.loop = loop
        self._opener = opener
        self._backoff = backoff or Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self._clock = clock
        self._deadline = deadline if deadline is not None else open_deadline(settings)
        self._attempt: _OpenAttempt | None = None
        self._stop = threading.Event()
        self._reconnect = threading.Event()
        self._wake = threading.Event()
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name=f"capture-{stream}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def reconnect_now(self) -> None:
        """Drop the connection (once the current read returns) or cut the backoff wait short."""
        self._reconnect.set()
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._supervise()
        finally:
            return_freed_memory()  # the decoder's buffers, freed into this thread's arena

    def _supervise(self) -> None:
        first = True
        rewind = False  # a looping file starts again: no reconnect, no state change
        while not self._stop.is_set():
            if not rewind:
                if not first:
                    self.status.count(reconnects=1)
                self.status.set_state(StreamState.CONNECTING)
            first = rewind = False
            self._reconnect.clear()
            self._wake.clear()
            try:
                error = self._session()
            except Exception as exc:  # a bug must not leave a stream silently dead
                log.exception("%s: capture failed", self.stream)
                error = SourceError(ErrorKind.UNKNOWN, f"internal error: {exc}")
            if self._stop.is_set():
                break
            if error is None:  # reconnect asked for: no wait
                continue
            if error.kind == ErrorKind.END_OF_STREAM:
                if self.loop:
                    rewind = True
                    continue
                self.status.set_state(StreamState.STOPPED, error, "end of file")
                return
            self.status.set_state(StreamState.OFFLINE, error, error.message)
            delay = self._backoff.next()
            log.info("%s: %s; reconnecting in %.1f s", self.stream, error.message, delay)
            self._wake.wait(delay)
        self.status.set_state(StreamState.STOPPED, reason="stopped")

    def _open(self) -> Capture | SourceError | None:
        """The opened capture, why there is none, or None once stopped."""
        previous = self._attempt
        if previous is not None and previous.thread.is_alive():
            return SourceError(
                ErrorKind.TIMEOUT, f"{self.source.redacted}: the previous open has not returned"
            )
        attempt = self._attempt = _OpenAttempt(
            self._opener, self.source, self.settings, self.stream
        )
        end = time.monotonic() + self._deadline
        while not attempt.done.wait(min(0.1, max(0.0, end - time.monotonic()))):
            if self._stop.is_set():
                attempt.abandon()
                return None
            if time.monotonic() >= end:
                attempt.abandon()
                log.warning(
                    "%s: the open did not return within %.0f s: abandoned",
                    self.stream,
                    self._deadline,
                )
                return SourceError(
                    ErrorKind.TIMEOUT,
                    f"{self.source.redacted}: the open did not return within {self._deadline:g} s",
                )
        self._attempt = None
        return attempt.outcome()

    def _session(self) -> SourceError | None:
        opened = self._open()
        if opened is None or isinstance(opened, SourceError):
            return opened
        cap = opened
        try:
            return self._read(cap)
        except cv2.error as exc:
            return SourceError(ErrorKind.UNKNOWN, f"{self.source.redacted}: {exc}")
        finally:
            cap.release()

    def _read(self, cap: Capture) -> SourceError | None:
        s = self.settings
        live = self.source.live
        slow_read = 0.8 * s.read_timeout_s
        interval = 1.0 / self.fps if self.fps else 0.0
        last_fresh = self._clock()
        last_offer = float("-inf")
        fresh = 0
        while not self._stop.is_set() and not self._reconnect.is_set():
            t0 = self._clock()
            ok, image = cap.read()
            now = self._clock()
            if not ok or image is None:
                if not live and not fresh:
                    return SourceError(ErrorKind.UNSUPPORTED, f"{self.source.redacted}: no frame")
                if not live:
                    return SourceError(
                        ErrorKind.END_OF_STREAM, f"{self.source.redacted}: end of file"
                    )
                if now - t0 >= slow_read:
                    return SourceError(ErrorKind.TIMEOUT, f"no data for {s.read_timeout_s:g} s")
                return SourceError(ErrorKind.DISCONNECTED, "the source closed the stream")
            if live and now - t0 >= slow_read:
                # After its read timeout OpenCV hands back the previous picture: not a frame.
                self.status.check_stall(s.stall_after_s)
                if now - last_fresh >= s.reconnect_after_stall_s:
                    return SourceError(
                        ErrorKind.STALLED, f"no new frame for {now - last_fresh:.0f} s"
                    )
                continue
            if self.source.max_pixels is not None:
                try:
                    check_size(image.shape[1], image.shape[0], self.source.max_pixels, "a frame")
                except ImageRefused as exc:
                    return SourceError(ErrorKind.TOO_LARGE, f"{self.source.redacted}: {exc}")
            last_fresh = now
            fresh += 1
            self.status.frame_in()
            self._backoff.reset()
            if interval and now - last_offer < interval * 0.9:
                if live:
                    self.status.count(skipped=1)
                    continue
                if self._stop.wait(last_offer + interval - now):
                    return None
                now = self._clock()
            last_offer = now
            pos = cap.get(cv2.CAP_PROP_POS_MSEC)
            frame = Frame(
                self.stream,
                self._seq,
                image,
                timestamp=time.time(),
                captured=now,
                pts=pos / 1000.0 if pos > 0 or not live else None,
            )
            self._seq += 1
            if live:
                if self.scheduler.offer(frame):
                    self.status.count(dropped=1)
            elif not self.scheduler.put(frame, self._stop):
                return None
        return None
