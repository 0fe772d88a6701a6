"""Per-stream supervision state and counters, shared by its capture thread, the inference
workers and the API (all access under one lock)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .events import SourceError, StateEvent, StreamState


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()


class StreamStatus:
    def __init__(
        self,
        stream: str,
        emit: Callable[[StateEvent], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self._emit = emit
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self.state: StreamState | None = None
        self.state_since = wall()
        self.last_error: SourceError | None = None
        self.last_error_at: float | None = None
        self.reconnects = 0
        self.stalls = 0
        self.dropped = 0
        self.skipped = 0
        self.frames_in = 0
        self.frames_processed = 0
        self.last_frame: float | None = None  # monotonic time of the newest fresh frame
        self.last_result: float | None = None
        self.last_latency_ms: float | None = None
        self._latency_sum = 0.0
        self._in = RateMeter()
        self._out = RateMeter()

    def set_state(
        self, state: StreamState, error: SourceError | None = None, reason: str = ""
    ) -> bool:
        """Move to `state`; emits one StateEvent when the state changes."""
        with self._lock:
            previous = self.state
            if error is not None:
                self.last_error, self.last_error_at = error, self._wall()
            if state == previous:
                return False
            if state == StreamState.STALLED:
                self.stalls += 1
            self.state = state
            self.state_since = self._wall()
            # Emitted under the lock so that subscribers see changes in the order they happened
            # (publishing never blocks).
            self._emit(StateEvent(self.stream, state, previous, self.state_since, error, reason))
        return True

    def frame_in(self) -> None:
        now = self._clock()
        with self._lock:
            self.frames_in += 1
            self.last_frame = now
            self._in.add(now)
            back = self.state in (StreamState.CONNECTING, StreamState.STALLED, StreamState.OFFLINE)
        if back:
            self.set_state(StreamState.ONLINE)

    def check_stall(self, stall_after: float) -> bool:
        """Called by the watchdog: online with no fresh frame for `stall_after` s -> stalled."""
        with self._lock:
            idle = self.last_frame is not None and self._clock() - self.last_frame > stall_after
            stalled = self.state == StreamState.ONLINE and idle
        if stalled:
            return self.set_state(StreamState.STALLED, reason=f"no new frame for {stall_after:g} s")
        return False

    def count(self, dropped: int = 0, skipped: int = 0, reconnects: int = 0) -> None:
        with self._lock:
            self.dropped += dropped
            self.skipped += skipped
            self.reconnects += reconnects

    def result(self, latency_ms: float) -> None:
        now = self._clock()
        with self._lock:
            self.frames_processed += 1
            self.last_result = now
            self.last_latency_ms = latency_ms
            self._latency_sum += latency_ms
            self._out.add(now)

    def held(self) -> None:
        """A frame the motion gate let go without inference: the stream is alive."""
        now = self._clock()
        with self._lock:
            self.last_result = now

    def result_age(self) -> float | None:
        with self._lock:
            return None if self.last_result is None else self._clock() - self.last_result

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            n = self.frames_processed
            return {
                "state": self.state.value if self.state else StreamState.CONNECTING.value,
                "state_since": self.state_since,
                "input_fps": round(self._in.rate(now), 2),
                "processed_fps": round(self._out.rate(now), 2),
                "frames_in": self.frames_in,
                "frames_processed": n,
                "dropped_frames": self.dropped,
                "skipped_frames": self.skipped,
                "reconnects": self.reconnects,
                "stalls": self.stalls,
                "last_error": (
                    {**self.last_error.to_json(), "at": self.last_error_at}
                    if self.last_error
                    else None
                ),
                "latency_ms": {
                    "last": None
                    if self.last_latency_ms is None
                    else round(self.last_latency_ms, 1),
                    "mean": round(self._latency_sum / n, 1) if n else None,
                },
            }
