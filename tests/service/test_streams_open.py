"""Opens are bounded: an open that never returns is abandoned at its deadline (the stream goes
offline, stop and delete return at once, no second open piles up behind it), and a local
source is opened only as the regular file it is. OpenCV's process-wide open lock is measured,
not assumed."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from service_helpers import wait_until
from xnoryolo.service.settings import CaptureConfig
from xnoryolo.service.streams.capture import StreamCapture
from xnoryolo.service.streams.events import ErrorKind, StateEvent, StreamState
from xnoryolo.service.streams.scheduler import FrameScheduler
from xnoryolo.service.streams.sources import Source, SourceFailure, open_capture
from xnoryolo.service.streams.status import StreamStatus

pytestmark = pytest.mark.timeout(60)

FAST = CaptureConfig(
    open_timeout_s=0.5,
    read_timeout_s=0.3,
    stall_after_s=0.2,
    reconnect_after_stall_s=0.6,
    backoff_initial_s=0.05,
    backoff_max_s=0.1,
)


class Frames:
    def __init__(self) -> None:
        self.released = threading.Event()

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.01)
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released.set()


class HangingOpener:
    """Hangs in the open (as FFmpeg does on a FIFO) until `release` is set, then opens."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.caps: list[Frames] = []
        self.lock = threading.Lock()

    def __call__(self, source: Source, open_timeout: float, read_timeout: float) -> Frames:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            self.release.wait(30)
            cap = Frames()
            self.caps.append(cap)
            return cap
        finally:
            with self.lock:
                self.running -= 1


def capture(
    opener: Any, deadline: float, errors: list[str] | None = None
) -> tuple[StreamCapture, StreamStatus]:
    def emit(event: StateEvent) -> None:
        if errors is not None and event.error is not None:
            errors.append(event.error.message)

    status = StreamStatus("s", emit)
    sched = FrameScheduler()
    sched.add("s")
    cap = StreamCapture(
        "s", Source("rtsp://cam/x", "rtsp"), status, sched, FAST, opener=opener, deadline=deadline
    )
    return cap, status


def test_an_open_that_hangs_is_abandoned_at_its_deadline() -> None:
    opener = HangingOpener()
    errors: list[str] = []
    cap, status = capture(opener, deadline=0.5, errors=errors)
    cap.start()
    try:
        wait_until(lambda: status.state == StreamState.OFFLINE, 10, what="offline")
        assert status.last_error is not None and status.last_error.kind == ErrorKind.TIMEOUT
        # the retries do not start a second open while the first still hangs
        wait_until(lambda: status.reconnects >= 3, 10, what="retries")
        assert opener.calls == 1 and opener.most_at_once == 1
        assert "did not return within 0.5 s" in errors[0]
        assert "has not returned" in errors[-1]
        # once it returns, its capture is released, and the next open is a fresh one
        opener.release.set()
        wait_until(lambda: status.state == StreamState.ONLINE, 10, what="online")
        assert opener.calls == 2
        assert opener.caps[0].released.wait(5)
    finally:
        opener.release.set()
        cap.stop(5)
    assert not cap.alive


def test_stop_does_not_wait_for_a_hanging_open() -> None:
    opener = HangingOpener()
    cap, status = capture(opener, deadline=30)
    cap.start()
    try:
        wait_until(lambda: opener.calls == 1, 5)
        cap.stop(5)  # the open hangs for 30 s more: the thread must end without it
        assert not cap.alive
        assert status.state == StreamState.STOPPED
    finally:
        opener.release.set()
    wait_until(lambda: opener.caps and opener.caps[0].released.is_set(), 5, what="released")


def _open_in_thread(path: str, seconds: float) -> bool:
    """Whether OpenCV opened `path` within `seconds` (on a thread left behind otherwise)."""
    done = threading.Event()

    def work() -> None:
        cv2.VideoCapture(path, cv2.CAP_FFMPEG).release()
        done.set()

    threading.Thread(target=work, daemon=True).start()
    return done.wait(seconds)


@pytest.mark.parametrize("special", ["fifo", "socket", "device", "folder", "swapped"])
def test_local_sources_open_only_as_regular_files(
    special: str, tmp_path: Path, vtest_avi: Path
) -> None:
    """A FIFO given to FFmpeg would block its open, and with it OpenCV's lock on every other
    open in the process; it must be refused before FFmpeg sees it."""
    import socket

    path = tmp_path / "clip.mp4"
    held: list[socket.socket] = []
    if special == "fifo":
        os.mkfifo(path)
    elif special == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        held.append(sock)
    elif special == "device":
        path = Path("/dev/zero")
    elif special == "folder":
        path.mkdir()
    else:  # a symlink that named a video and now names a FIFO
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        path.symlink_to(fifo)
    try:
        with pytest.raises(SourceFailure) as info:
            open_capture(Source(str(path), "file"), 1.0, 1.0)
        assert info.value.error.kind == ErrorKind.UNSUPPORTED
        assert "not a regular file" in info.value.error.message
        assert _open_in_thread(str(vtest_avi), 20), "another open waits on OpenCV's lock"
    finally:
        for s in held:
            s.close()


def test_a_regular_file_opens(vtest_avi: Path) -> None:
    cap = open_capture(Source(str(vtest_avi), "file"), 5.0, 5.0)
    try:
        ok, image = cap.read()
        assert ok and image is not None
    finally:
        cap.release()


def test_ffmpeg_protocols_are_whitelisted(monkeypatch: pytest.MonkeyPatch, vtest_avi: Path) -> None:
    """Even a name that reached FFmpeg could not use its pseudo-protocols."""
    from xnoryolo.service.streams.sources import configure_ffmpeg

    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "")
    configure_ffmpeg("rtsp_transport;tcp")
    options = os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"]
    assert options.startswith("rtsp_transport;tcp|protocol_whitelist;file,")
    for name in (f"async:{vtest_avi}", f"subfile,,start,0,end,0,,:{vtest_avi}"):
        cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
        assert not cap.isOpened()
        cap.release()
    cap = cv2.VideoCapture(str(vtest_avi), cv2.CAP_FFMPEG)
    assert cap.isOpened()
    cap.release()
    configure_ffmpeg("protocol_whitelist;file")
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "protocol_whitelist;file"


def test_a_missing_device_is_not_found() -> None:
    with pytest.raises(SourceFailure) as info:
        open_capture(Source("/dev/video987", "device"), 1.0, 1.0)
    assert info.value.error.kind == ErrorKind.NOT_FOUND
