"""Publish hub: every event goes to every interested subscriber through its own bounded
queue. A full queue loses its oldest event, so a slow subscriber never stalls the pipeline or
the other subscribers."""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from ..streams.events import Event


class Subscription:
    """A bounded queue fed from any thread, read by one asyncio task or one thread."""

    def __init__(
        self,
        hub: PublishHub,
        stream: str | None,
        maxsize: int,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._hub = hub
        self.stream = stream
        self._items: deque[Event] = deque()
        self._maxsize = max(1, maxsize)
        self._lock = threading.Lock()
        self._loop = loop
        self._ready = asyncio.Event() if loop is not None else None
        self._thread_ready = threading.Event()
        self.dropped = 0
        self.closed = False

    def put(self, item: Event) -> None:
        with self._lock:
            if self.closed:
                return
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
        self._notify()

    def _notify(self) -> None:
        self._thread_ready.set()
        if self._loop is not None and self._ready is not None:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the loop is closed: nobody reads any more
                self.close()

    def _pop(self) -> Event | None:
        with self._lock:
            if self._items:
                return self._items.popleft()
            if self._ready is not None:
                self._ready.clear()
            self._thread_ready.clear()
            return None

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None on timeout or once closed."""
        assert self._ready is not None, "subscribe with a loop to read asynchronously"
        while True:
            item = self._pop()
            if item is not None or self.closed:
                return item
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None

    def get_blocking(self, timeout: float | None = None) -> Event | None:
        while True:
            item = self._pop()
            if item is not None or self.closed:
                return item
            if not self._thread_ready.wait(timeout):
                return None

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._hub._discard(self)
        self._thread_ready.set()
        if self._loop is not None and self._ready is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._ready.set)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PublishHub:
    def __init__(self, default_maxsize: int = 16) -> None:
        self.default_maxsize = default_maxsize
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._dropped_gone = 0  # events lost by subscriptions closed since

    def subscribe(
        self,
        stream: str | None = None,
        maxsize: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Subscription:
        """Events of `stream` (all streams when None). Pass the running loop to read with
        `await sub.get()`; without one, read with `sub.get_blocking()`."""
        sub: Subscription = Subscription(self, stream, maxsize or self.default_maxsize, loop)
        with self._lock:
            self._subs.append(sub)
        return sub

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.stream is None or sub.stream == event.stream:
                sub.put(event)

    def _discard(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
                self._dropped_gone += sub.dropped

    @property
    def dropped(self) -> int:
        """Events lost by slow subscribers since the start."""
        with self._lock:
            return self._dropped_gone + sum(s.dropped for s in self._subs)

    def close_stream(self, stream: str) -> None:
        """End the subscriptions to `stream` (it is gone); they still read what was queued."""
        with self._lock:
            subs = [s for s in self._subs if s.stream == stream]
        for sub in subs:
            sub.close()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()
