"""Newest-frame slots, one per stream, handed to the inference workers round-robin so that
no stream starves another."""

from __future__ import annotations

import threading
from collections import deque

from .events import Frame


class FrameScheduler:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._slots: dict[str, Frame | None] = {}
        self._order: deque[str] = deque()
        self._closed = False

    def add(self, stream: str) -> None:
        with self._cond:
            if stream not in self._slots:
                self._slots[stream] = None
                self._order.append(stream)

    def remove(self, stream: str) -> None:
        with self._cond:
            self._slots.pop(stream, None)
            if stream in self._order:
                self._order.remove(stream)
            self._cond.notify_all()

    def offer(self, frame: Frame) -> bool:
        """Live sources: replace the waiting frame; True when an unprocessed one was dropped."""
        with self._cond:
            if frame.stream not in self._slots:
                return False
            dropped = self._slots[frame.stream] is not None
            self._slots[frame.stream] = frame
            self._cond.notify_all()
            return dropped

    def put(self, frame: Frame, stop: threading.Event, poll: float = 0.2) -> bool:
        """Files: wait until the previous frame was taken, so every frame is processed.
        False when the stream went away or `stop` was set."""
        with self._cond:
            while True:
                if stop.is_set() or self._closed or frame.stream not in self._slots:
                    return False
                if self._slots[frame.stream] is None:
                    self._slots[frame.stream] = frame
                    self._cond.notify_all()
                    return True
                self._cond.wait(poll)

    def take(self, timeout: float) -> Frame | None:
        """The waiting frame of the next stream in turn that has one, or None on timeout."""
        with self._cond:
            if not self._cond.wait_for(self._pending, timeout):
                return None
            for _ in range(len(self._order)):
                stream = self._order[0]
                self._order.rotate(-1)
                frame = self._slots[stream]
                if frame is not None:
                    self._slots[stream] = None
                    self._cond.notify_all()  # a file source may wait for its slot
                    return frame
            return None

    def _pending(self) -> bool:
        return self._closed or any(f is not None for f in self._slots.values())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
