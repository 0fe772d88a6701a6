"""The set of streams: add, remove, reconnect, status; routes results and state changes to
the publisher and the metrics it is given (declared here as the protocols it needs)."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from xnoryolo.detector import Detection, DetectionTable
from xnoryolo.tracking import AnalysisEvent, FrameAnalysis

from ..policy import HostNotFound, SourcePolicy
from ..redact import redact
from ..settings import CaptureConfig, StreamConfig
from .capture import StreamCapture
from .events import DetectionEvent, Event, Frame, StateEvent, StreamState
from .scheduler import FrameScheduler
from .sources import Source, check_source, parse_source
from .status import StreamStatus

log = logging.getLogger("xnoryolo.service.streams")

CaptureFactory = Callable[..., StreamCapture]


def _video_time(frame: Frame) -> float:
    """The frame's time for motion models: the source's clock where it has one."""
    return frame.pts if frame.pts is not None else frame.captured


class StreamNotFound(LookupError):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


class StreamConflict(ValueError):
    """A stream with this id exists."""


class StreamLimit(RuntimeError):
    """The service runs as many streams as it may."""


class UnknownClasses(ValueError):
    """A stream asked for class names the model does not have."""


class Publisher(Protocol):
    """Where results and state changes go (the publish hub)."""

    def publish(self, event: Event) -> None: ...
    def close_stream(self, stream: str) -> None: ...


class StreamMetrics(Protocol):
    """What the manager reports to the metrics."""

    def observe_result(self, stream: str, latency_s: float, inference_s: float) -> None: ...
    def forget(self, stream: str) -> None: ...


@dataclass(frozen=True)
class DetectParams:
    """A stream's own detection settings, applied by the inference workers."""

    threshold: float | None = None
    classes: frozenset[str] | None = None
    analysis: FrameAnalysis | None = None  # motion gating before inference, tracking after

    def detections(
        self, frame: Frame, found: DetectionTable
    ) -> tuple[tuple[Detection, ...], list[AnalysisEvent]]:
        """The frame's detections of the stream's classes, with track ids where the stream
        tracks, and the line and zone events they caused."""
        table = found.only(self.classes) if self.classes else found
        if self.analysis is None or not self.analysis.tracking:
            return tuple(table.detections()), []
        ids, events = self.analysis.update(
            (frame.width, frame.height), table, _video_time(frame), frame.seq
        )
        return tuple(table.detections(ids)), events


@dataclass
class ManagedStream:
    id: str
    name: str
    config: StreamConfig
    source: Source
    status: StreamStatus
    capture: StreamCapture
    params: DetectParams

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": redact(self.name),  # a name may hold a URL
            "url": self.source.redacted,
            "kind": self.source.kind,
            "live": self.source.live,
            "enabled": self.config.enabled,
            "fps_cap": self.config.fps,
            "classes": self.config.classes,
            "threshold": self.config.threshold,
            "tracking": self.config.tracking.enabled,
            "lines": [x.model_dump(mode="json") for x in self.config.lines],
            "zones": [z.model_dump(mode="json") for z in self.config.zones],
            "motion": self.config.motion.enabled,
            **self.status.snapshot(),
            "analysis": self.params.analysis.summary() if self.params.analysis else None,
        }


def _analysis(config: StreamConfig) -> FrameAnalysis | None:
    analysis = FrameAnalysis(config.analysis())
    return analysis if analysis.active else None


class StreamManager:
    def __init__(
        self,
        scheduler: FrameScheduler,
        hub: Publisher,
        capture_settings: CaptureConfig,
        metrics: StreamMetrics | None = None,
        class_names: Sequence[str] | None = None,
        capture_factory: CaptureFactory = StreamCapture,
        watchdog_interval: float = 0.25,
        policy: SourcePolicy | None = None,
        max_streams: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.hub = hub
        self.capture_settings = capture_settings
        self.metrics = metrics
        self.class_names = set(class_names) if class_names is not None else None
        self._capture_factory = capture_factory
        self.policy = policy
        self.max_streams = max_streams
        self.max_pixels = max_pixels  # every stream's frame limit, trusted ones too
        self._streams: dict[str, ManagedStream] = {}
        self._latest: dict[str, DetectionEvent] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interval = watchdog_interval
        self._watchdog = threading.Thread(target=self._watch, name="stream-watchdog", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for ms in streams:
            ms.capture.stop(timeout=0)
        for ms in streams:
            ms.capture.stop(timeout=self.capture_settings.read_timeout_s + 1)

    def _watch(self) -> None:
        # A read blocked on a silent source cannot report the stall itself.
        while not self._stop.wait(self._interval):
            for ms in self.list():
                ms.status.check_stall(self.capture_settings.stall_after_s)

    # -- streams ---------------------------------------------------------------------------
    def add(self, config: StreamConfig, trusted: bool = False) -> ManagedStream:
        """A new stream, started if enabled. Unless `trusted` (the settings file's streams),
        its source is checked against the source policy (SourceRefused) and the stream
        counted against `max_streams` (StreamLimit)."""
        if not trusted:
            self._check_room()
        source = replace(
            parse_source(config.url, None if trusted else self.policy), max_pixels=self.max_pixels
        )
        if not trusted:
            # The host's addresses, the file's type. A host that does not resolve yet or a
            # missing file is told by the stream's status: checked again at each connection.
            with contextlib.suppress(HostNotFound, OSError):
                check_source(source)
        wanted = set(config.classes or ()) | config.analysis().class_names()
        if wanted and self.class_names is not None:
            unknown = sorted(wanted - self.class_names)
            if unknown:
                raise UnknownClasses(f"unknown class names: {', '.join(unknown)}")
        stream_id = config.id or uuid.uuid4().hex[:12]
        status = StreamStatus(stream_id, self._on_state)
        capture = self._capture_factory(
            stream_id,
            source,
            status,
            self.scheduler,
            self.capture_settings,
            fps=config.fps,
            loop=config.loop,
        )
        ms = ManagedStream(
            id=stream_id,
            name=config.name or source.default_name,
            config=config,
            source=source,
            status=status,
            capture=capture,
            params=DetectParams(
                config.threshold,
                frozenset(config.classes) if config.classes else None,
                _analysis(config),
            ),
        )
        with self._lock:
            if stream_id in self._streams:
                raise StreamConflict(f"a stream with id {stream_id!r} exists")
            if not trusted:
                self._check_room(locked=True)
            self._streams[stream_id] = ms
        log.info("stream %s (%s): added, %s", stream_id, ms.name, source.redacted)
        if config.enabled:
            self.scheduler.add(stream_id)
            capture.start()
        else:
            status.set_state(StreamState.STOPPED, reason="disabled")
        return ms

    def _check_room(self, locked: bool = False) -> None:
        if self.max_streams is None:
            return
        count = len(self._streams) if locked else len(self.list())
        if count >= self.max_streams:
            raise StreamLimit(
                f"the service runs its maximum of {self.max_streams} streams (max_streams): "
                "remove one first"
            )

    def get(self, stream_id: str) -> ManagedStream:
        with self._lock:
            ms = self._streams.get(stream_id)
        if ms is None:
            raise StreamNotFound(stream_id)
        return ms

    def list(self) -> list[ManagedStream]:
        with self._lock:
            return list(self._streams.values())

    def remove(self, stream_id: str) -> ManagedStream:
        with self._lock:
            ms = self._streams.pop(stream_id, None)
            self._latest.pop(stream_id, None)
        if ms is None:
            raise StreamNotFound(stream_id)
        # Never wait on a read blocked on a silent source: the thread ends once it returns.
        ms.capture.stop(timeout=0)
        self.scheduler.remove(stream_id)
        if self.metrics is not None:
            self.metrics.forget(stream_id)
        ms.status.set_state(StreamState.STOPPED, reason="removed")
        self.hub.close_stream(stream_id)  # its clients get the "stopped" event, then the end
        log.info("stream %s: removed", stream_id)
        return ms

    def reconnect(self, stream_id: str) -> ManagedStream:
        ms = self.get(stream_id)
        if ms.config.enabled:
            ms.capture.reconnect_now()
        return ms

    def params(self, stream_id: str) -> DetectParams | None:
        with self._lock:
            ms = self._streams.get(stream_id)
        return ms.params if ms is not None else None

    def latest(self, stream_id: str) -> DetectionEvent | None:
        self.get(stream_id)
        with self._lock:
            return self._latest.get(stream_id)

    def readiness(self, window: float) -> dict[str, bool]:
        """Each enabled, not stopped stream -> whether it produced a result in `window` s."""
        out = {}
        for ms in self.list():
            if not ms.config.enabled or ms.status.state == StreamState.STOPPED:
                continue
            age = ms.status.result_age()
            out[ms.id] = age is not None and age <= window
        return out

    # -- events ----------------------------------------------------------------------------
    def on_result(self, event: DetectionEvent, happened: Sequence[AnalysisEvent] = ()) -> None:
        """A frame's detections (`DetectParams.detections`) and the line and zone events
        they caused."""
        with self._lock:
            ms = self._streams.get(event.stream)
        if ms is None:
            return
        frame = event.frame
        found = [replace(e, stream=ms.id, timestamp=frame.timestamp) for e in happened]
        with self._lock:
            if event.stream not in self._streams:
                return
            self._latest[event.stream] = event
        ms.status.result(event.latency_ms)
        if self.metrics is not None:
            self.metrics.observe_result(
                event.stream, event.latency_ms / 1000.0, event.inference_ms / 1000.0
            )
        self.hub.publish(event)
        for e in found:
            self.hub.publish(e)

    def on_held(self, frame: Frame) -> None:
        """A frame the motion gate let go without inference."""
        ms = self.params(frame.stream)
        if ms is not None and ms.analysis is not None:
            ms.analysis.hold(_video_time(frame))
        with self._lock:
            managed = self._streams.get(frame.stream)
        if managed is not None:
            managed.status.held()

    def analysis(self, stream_id: str) -> FrameAnalysis | None:
        params = self.params(stream_id)
        return params.analysis if params is not None else None

    def _on_state(self, event: StateEvent) -> None:
        detail = f" ({event.reason})" if event.reason else ""
        log.info("stream %s: %s%s", event.stream, event.state.value, detail)
        self.hub.publish(event)
