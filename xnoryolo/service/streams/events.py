"""What flows through the pipeline: frames, detection results and stream state changes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xnoryolo.detector import Detection
from xnoryolo.tracking.events import LineCrossed, ZoneEntered, ZoneLeft


class StreamState(str, enum.Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    STALLED = "stalled"
    OFFLINE = "offline"
    STOPPED = "stopped"


class ErrorKind(str, enum.Enum):
    NOT_FOUND = "not_found"
    AUTH_FAILED = "auth_failed"
    REFUSED = "refused_by_policy"
    TIMEOUT = "timeout"
    UNSUPPORTED = "unsupported_codec"
    TOO_LARGE = "frames_too_large"
    CONNECTION_REFUSED = "connection_refused"
    DISCONNECTED = "disconnected"
    STALLED = "stalled"
    END_OF_STREAM = "end_of_stream"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SourceError:
    """Why a source could not be opened or read; `message` never holds credentials."""

    kind: ErrorKind
    message: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "message": self.message}


@dataclass(frozen=True)
class Frame:
    """One decoded picture of a stream.

    pts: the source's presentation time in seconds where it has one; timestamp: wall-clock
    capture time (time.time()); captured: monotonic capture time, for latency."""

    stream: str
    seq: int
    image: np.ndarray = field(repr=False, compare=False)
    timestamp: float
    captured: float
    pts: float | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class DetectionEvent:
    """The detections of one frame; latency_ms runs from capture to the end of inference."""

    stream: str
    frame: Frame
    detections: tuple[Detection, ...]
    latency_ms: float
    inference_ms: float

    @property
    def timestamp(self) -> float:
        return self.frame.timestamp

    @property
    def pts(self) -> float | None:
        return self.frame.pts

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "detections",
            "stream": self.stream,
            "frame": self.frame.seq,
            "pts": self.frame.pts,
            "timestamp": self.frame.timestamp,
            "width": self.frame.width,
            "height": self.frame.height,
            "latency_ms": round(self.latency_ms, 2),
            "inference_ms": round(self.inference_ms, 2),
            "detections": [d.to_json() for d in self.detections],
        }


@dataclass(frozen=True)
class StateEvent:
    """A stream changed state (every change is one event)."""

    stream: str
    state: StreamState
    previous: StreamState | None
    timestamp: float
    error: SourceError | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "state",
            "stream": self.stream,
            "state": self.state.value,
            "previous": self.previous.value if self.previous else None,
            "timestamp": self.timestamp,
            "reason": self.reason,
            "error": self.error.to_json() if self.error else None,
        }


# Line and zone events (xnoryolo.tracking.events) carry their stream and wall-clock time.
Event = DetectionEvent | StateEvent | LineCrossed | ZoneEntered | ZoneLeft

__all__ = [
    "DetectionEvent",
    "ErrorKind",
    "Event",
    "Frame",
    "LineCrossed",
    "SourceError",
    "StateEvent",
    "StreamState",
    "ZoneEntered",
    "ZoneLeft",
]
