"""The pipeline's parts with injected fakes: no network, no model, fast."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from typing import Any, ClassVar

import numpy as np
import pytest

from service_helpers import wait_until
from xnoryolo.detector import Detection, DetectionTable
from xnoryolo.service.inference import InferencePool
from xnoryolo.service.publish.hub import PublishHub
from xnoryolo.service.redact import RedactingFilter, redact
from xnoryolo.service.settings import CaptureConfig, StreamConfig
from xnoryolo.service.streams.backoff import Backoff
from xnoryolo.service.streams.capture import StreamCapture
from xnoryolo.service.streams.events import (
    DetectionEvent,
    ErrorKind,
    Frame,
    SourceError,
    StateEvent,
    StreamState,
)
from xnoryolo.service.streams.manager import StreamManager
from xnoryolo.service.streams.scheduler import FrameScheduler
from xnoryolo.service.streams.sources import InvalidSource, Source, SourceFailure, parse_source
from xnoryolo.service.streams.status import StreamStatus

pytestmark = pytest.mark.timeout(60)

FAST = CaptureConfig(
    open_timeout_s=0.5,
    read_timeout_s=0.3,
    stall_after_s=0.2,
    reconnect_after_stall_s=0.6,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
)


def frame(stream: str, seq: int) -> Frame:
    return Frame(stream, seq, np.zeros((4, 4, 3), np.uint8), time.time(), time.monotonic())


# -- redaction ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "hunter2"),
        ("rtsps://admin@cam.local/live", "admin"),
        ("http://cam/video.mjpg?user=bob&password=hunter2", "hunter2"),
        ("GET /v1/events?api_key=s3cret HTTP/1.1", "s3cret"),
        ("opening rtsp://u:p%40ss@h/x failed", "p%40ss"),
    ],
)
def test_redact_removes_credentials(text: str, secret: str) -> None:
    clean = redact(text)
    assert secret not in clean
    assert "***" in clean


def test_redact_keeps_plain_urls() -> None:
    assert redact("rtsp://127.0.0.1:8554/cam1") == "rtsp://127.0.0.1:8554/cam1"


def test_logging_filter_redacts_arguments(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    log = logging.getLogger("xnoryolo.test.redact")
    log.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="xnoryolo.test.redact"):
        log.info("opening %s", "rtsp://admin:hunter2@cam/1")
    assert "hunter2" not in caplog.text and "rtsp://***@cam/1" in caplog.text


# -- sources ------------------------------------------------------------------------------
def test_parse_source_kinds() -> None:
    assert parse_source("rtsp://h/x").kind == "rtsp"
    assert parse_source("RTSPS://h/x").kind == "rtsp"
    assert parse_source("https://h/live.m3u8").kind == "http"
    assert parse_source("/dev/video0").kind == "device"
    assert parse_source("2").kind == "device"
    assert parse_source("clip.mp4").kind == "file"
    assert parse_source("file:///tmp/a%20b.mp4").url == "/tmp/a b.mp4"
    assert parse_source("clip.mp4").live is False
    assert parse_source("rtsp://h/x").live is True
    for bad in ("", "ftp://h/x", "rtsp:///nohost"):
        with pytest.raises(InvalidSource):
            parse_source(bad)


# -- backoff ------------------------------------------------------------------------------
def test_backoff_grows_with_jitter_and_cap() -> None:
    b = Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.2, rng=random.Random(1))
    delays = [b.next() for _ in range(8)]
    for i, d in enumerate(delays):
        base = min(8.0, 2.0**i)
        assert base * 0.8 <= d <= min(8.0, base * 1.2)
    assert delays[-1] <= 8.0
    b.reset()
    assert b.next() <= 1.2


# -- scheduler ----------------------------------------------------------------------------
def test_scheduler_keeps_newest_and_counts_drops() -> None:
    s = FrameScheduler()
    s.add("a")
    assert s.offer(frame("a", 0)) is False
    assert s.offer(frame("a", 1)) is True  # frame 0 was never taken
    got = s.take(0.1)
    assert got is not None and got.seq == 1
    assert s.take(0.05) is None


def test_scheduler_round_robin_does_not_starve() -> None:
    s = FrameScheduler()
    for name in "abc":
        s.add(name)
    served = []
    for i in range(9):
        for name in "abc":
            s.offer(frame(name, i))
        f = s.take(0.1)
        assert f is not None
        served.append(f.stream)
    assert served == list("abc" * 3)


def test_scheduler_put_waits_for_the_slot() -> None:
    s = FrameScheduler()
    s.add("f")
    stop = threading.Event()
    assert s.put(frame("f", 0), stop)
    done = threading.Event()
    threading.Thread(target=lambda: (s.put(frame("f", 1), stop), done.set())).start()
    assert not done.wait(0.2)  # blocked: frame 0 not taken yet
    assert s.take(0.1).seq == 0  # type: ignore[union-attr]
    assert done.wait(2)
    assert s.take(0.1).seq == 1  # type: ignore[union-attr]
    s.remove("f")
    assert s.put(frame("f", 2), stop) is False


# -- hub ----------------------------------------------------------------------------------
def test_hub_slow_subscriber_loses_events_not_others() -> None:
    hub = PublishHub()
    slow = hub.subscribe(maxsize=2)
    fast = hub.subscribe(maxsize=100)
    other = hub.subscribe(stream="b", maxsize=100)
    t0 = time.monotonic()
    for i in range(50):
        hub.publish(StateEvent("a", StreamState.ONLINE, None, float(i)))
    assert time.monotonic() - t0 < 1.0  # publishing never waits for readers
    assert slow.dropped == 48
    got = [slow.get_blocking(0.1) for _ in range(2)]
    assert [e.timestamp for e in got] == [48.0, 49.0]  # type: ignore[union-attr]
    assert sum(1 for _ in iter(lambda: fast.get_blocking(0.01), None)) == 50
    assert other.get_blocking(0.01) is None
    assert hub.dropped == 48
    slow.close()
    assert hub.subscribers == 2 and hub.dropped == 48


def test_hub_async_subscription_wakes_from_other_threads() -> None:
    hub = PublishHub()

    async def main() -> list[float]:
        sub = hub.subscribe(loop=asyncio.get_running_loop())
        threading.Timer(0.05, hub.publish, [StateEvent("a", StreamState.ONLINE, None, 1.0)]).start()
        first = await sub.get(timeout=5)
        timeout = await sub.get(timeout=0.05)
        threading.Timer(0.05, sub.close).start()
        closed = await sub.get(timeout=5)
        assert timeout is None and closed is None and sub.closed
        return [first.timestamp] if first else []

    assert asyncio.run(main()) == [1.0]
    assert hub.subscribers == 0


# -- capture supervision ------------------------------------------------------------------
class FakeCapture:
    """Frames at `fps`; `script` may make it fail or go stale after some reads."""

    def __init__(
        self, frames: int | None = None, fps: float = 100.0, stale_after: int | None = None
    ):
        self.frames = frames
        self.interval = 1.0 / fps
        self.stale_after = stale_after
        self.n = 0
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.stale_after is not None and self.n >= self.stale_after:
            time.sleep(FAST.read_timeout_s)  # OpenCV: the read timeout, then the old picture
            return True, np.zeros((4, 4, 3), np.uint8)
        if self.frames is not None and self.n >= self.frames:
            return False, None
        time.sleep(self.interval)
        self.n += 1
        return True, np.full((4, 4, 3), self.n % 256, np.uint8)

    def get(self, prop: int) -> float:
        return self.n * 10.0

    def release(self) -> None:
        self.released = True


class Recorder:
    def __init__(self) -> None:
        self.events: list[StateEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: StateEvent) -> None:
        with self.lock:
            self.events.append(event)

    def states(self) -> list[StreamState]:
        with self.lock:
            return [e.state for e in self.events]


def make_capture(
    opener: Any, live: bool = True, fps: float | None = None, loop: bool = False
) -> tuple[StreamCapture, StreamStatus, Recorder, FrameScheduler]:
    rec = Recorder()
    status = StreamStatus("s", rec)
    sched = FrameScheduler()
    sched.add("s")
    source = Source("rtsp://cam/x" if live else "clip.mp4", "rtsp" if live else "file")
    cap = StreamCapture(
        "s", source, status, sched, FAST, fps=fps, loop=loop, opener=opener,
        backoff=Backoff(FAST.backoff_initial_s, FAST.backoff_max_s, rng=random.Random(0)),
    )  # fmt: skip
    return cap, status, rec, sched


def test_live_capture_keeps_newest_and_counts_drops() -> None:
    cap, status, _, sched = make_capture(lambda *a: FakeCapture(fps=200))
    cap.start()
    try:
        wait_until(lambda: status.frames_in > 40, 5, what="frames")
        assert status.dropped > 20  # nobody took them
        f = sched.take(0.1)
        assert f is not None and f.seq > 20  # the newest, not the first
    finally:
        cap.stop(2)
    assert not cap.alive
    assert status.state == StreamState.STOPPED


def test_capture_reconnects_with_backoff_forever_and_recovers() -> None:
    attempts: list[float] = []

    def opener(*args: Any) -> FakeCapture:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise SourceFailure(SourceError(ErrorKind.CONNECTION_REFUSED, "refused"))
        if len(attempts) == 4:
            return FakeCapture(frames=5)  # then the connection drops
        return FakeCapture()

    cap, status, rec, _ = make_capture(opener)
    cap.start()
    try:
        wait_until(lambda: len(attempts) >= 5 and status.state == StreamState.ONLINE, 10)
    finally:
        cap.stop(2)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= FAST.backoff_initial_s * 0.7
    assert gaps[2] > gaps[0] * 1.5  # it grows (0.05 s, 0.1 s, 0.2 s, +-20 %)
    states = rec.states()
    assert states[:3] == [StreamState.CONNECTING, StreamState.OFFLINE, StreamState.CONNECTING]
    assert StreamState.ONLINE in states
    assert status.reconnects >= 4
    assert status.last_error is not None
    offline = [e for e in rec.events if e.state == StreamState.OFFLINE]
    assert offline[0].error and offline[0].error.kind == ErrorKind.CONNECTION_REFUSED
    assert offline[-1].error and offline[-1].error.kind == ErrorKind.DISCONNECTED


def test_capture_stale_frames_mean_stalled_then_reconnect() -> None:
    opened: list[FakeCapture] = []

    def opener(*args: Any) -> FakeCapture:
        opened.append(FakeCapture(stale_after=10 if not opened else None))
        return opened[-1]

    cap, status, rec, _ = make_capture(opener)
    cap.start()
    try:
        wait_until(lambda: len(opened) >= 2 and status.state == StreamState.ONLINE, 10)
    finally:
        cap.stop(2)
    states = rec.states()
    i = states.index(StreamState.STALLED)
    assert states[i - 1] == StreamState.ONLINE
    assert StreamState.OFFLINE in states[i:]
    assert status.stalls == 1
    assert opened[0].released


def test_reconnect_now_cuts_the_backoff_short() -> None:
    attempts: list[float] = []

    def opener(*args: Any) -> FakeCapture:
        attempts.append(time.monotonic())
        raise SourceFailure(SourceError(ErrorKind.TIMEOUT, "timeout"))

    slow = CaptureConfig(backoff_initial_s=30.0, backoff_max_s=30.0)
    rec = Recorder()
    status = StreamStatus("s", rec)
    sched = FrameScheduler()
    cap = StreamCapture("s", Source("rtsp://h/x", "rtsp"), status, sched, slow, opener=opener)
    cap.start()
    try:
        wait_until(lambda: status.state == StreamState.OFFLINE, 5)
        cap.reconnect_now()
        wait_until(lambda: len(attempts) >= 2, 5, what="an immediate retry")
    finally:
        cap.stop(2)


def test_file_capture_delivers_every_frame_then_stops() -> None:
    cap, status, rec, sched = make_capture(lambda *a: FakeCapture(frames=30), live=False)
    cap.start()
    seqs = []
    while len(seqs) < 30:
        f = sched.take(2)
        assert f is not None
        seqs.append(f.seq)
    wait_until(lambda: status.state == StreamState.STOPPED, 5)
    assert seqs == list(range(30))
    assert status.dropped == 0
    assert rec.events[-1].error and rec.events[-1].error.kind == ErrorKind.END_OF_STREAM
    assert rec.states().count(StreamState.STOPPED) == 1


def test_looping_file_rewinds_without_reconnecting() -> None:
    cap, status, rec, sched = make_capture(lambda *a: FakeCapture(frames=5), live=False, loop=True)
    cap.start()
    try:
        seqs = [sched.take(2) for _ in range(12)]
    finally:
        cap.stop(2)
    assert [f.seq for f in seqs if f is not None] == list(range(12))
    assert status.reconnects == 0
    assert rec.states() == [StreamState.CONNECTING, StreamState.ONLINE, StreamState.STOPPED]


def test_file_without_frames_backs_off() -> None:
    cap, status, _, _ = make_capture(lambda *a: FakeCapture(frames=0), live=False, loop=True)
    cap.start()
    try:
        wait_until(lambda: status.reconnects >= 2, 5)
    finally:
        cap.stop(2)
    assert status.last_error is not None and status.last_error.kind == ErrorKind.UNSUPPORTED
    assert status.reconnects < 10  # waited between attempts, no busy loop


def test_fps_cap_skips_live_frames() -> None:
    cap, status, _, sched = make_capture(lambda *a: FakeCapture(fps=100), fps=10)
    cap.start()
    got = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 1.0:
            f = sched.take(0.2)
            if f is not None:
                got.append(f)
    finally:
        cap.stop(2)
    assert 3 <= len(got) <= 13
    assert status.skipped > 40


# -- inference pool and manager -----------------------------------------------------------
class CountingDetector:
    names: ClassVar[list[str]] = ["person", "car"]

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable:
        time.sleep(self.delay)
        return DetectionTable.from_detections(
            [
                Detection(0, "person", 0.9, 0.5, 0.5, 0.2, 0.2, 1, 1, 2, 2),
                Detection(1, "car", 0.8, 0.5, 0.5, 0.2, 0.2, 1, 1, 2, 2),
            ]
        )


def test_pool_serves_every_stream_and_filters_classes() -> None:
    hub = PublishHub(default_maxsize=10_000)
    sched = FrameScheduler()
    manager = StreamManager(
        sched, hub, FAST, capture_factory=lambda *a, **k: StreamCapture(
            *a, **k, opener=lambda *x: FakeCapture(fps=100)
        ),
        class_names=CountingDetector.names,
    )  # fmt: skip
    pool = InferencePool(CountingDetector(0.02), sched, manager.params, manager.on_result)
    sub = hub.subscribe(maxsize=10_000)
    manager.start()
    pool.start()
    try:
        for name in "abc":
            manager.add(StreamConfig(url="rtsp://127.0.0.1/x", id=name, classes=["car"]))
        with pytest.raises(ValueError, match="unknown class"):
            manager.add(StreamConfig(url="rtsp://127.0.0.1/x", classes=["unicorn"]))
        wait_until(lambda: all(ms.status.frames_processed >= 5 for ms in manager.list()), 10)
    finally:
        pool.stop()
        manager.stop()
    counts = {ms.id: ms.status.frames_processed for ms in manager.list()} or {}
    events = list(iter(lambda: sub.get_blocking(0.01), None))
    dets = [e for e in events if isinstance(e, DetectionEvent)]
    per_stream = {s: sum(1 for e in dets if e.stream == s) for s in "abc"}
    assert min(per_stream.values()) >= 5, (per_stream, counts)
    assert max(per_stream.values()) - min(per_stream.values()) <= 3  # round-robin
    assert all(d.name == "car" for e in dets for d in e.detections)
    assert all(e.latency_ms >= e.inference_ms for e in dets)
