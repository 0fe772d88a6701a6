"""What counting lines and zones report: one frozen dataclass per kind of event, each with the
one JSON form it has everywhere (stream events, job summaries). `stream` is set by the
service for live streams and left empty (out of the JSON) for jobs; `frame` is the stream's
frame number or the video's frame index, `t` the video time in seconds (the source's clock
where it has one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _common(kind: str, stream: str) -> dict[str, Any]:
    return {"type": kind, **({"stream": stream} if stream else {})}


@dataclass(frozen=True)
class LineCrossed:
    line: str
    direction: str  # "in" or "out"
    track_id: int
    class_id: int
    name: str
    frame: int
    t: float
    timestamp: float | None = None  # wall-clock time (live streams)
    stream: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            **_common("line_crossed", self.stream),
            "line": self.line,
            "direction": self.direction,
            "track_id": self.track_id,
            "class_id": self.class_id,
            "name": self.name,
            "frame": self.frame,
            "t": round(self.t, 3),
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class ZoneEntered:
    zone: str
    track_id: int
    class_id: int
    name: str
    frame: int
    t: float
    timestamp: float | None = None
    stream: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            **_common("zone_entered", self.stream),
            "zone": self.zone,
            "track_id": self.track_id,
            "class_id": self.class_id,
            "name": self.name,
            "frame": self.frame,
            "t": round(self.t, 3),
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class ZoneLeft:
    """A track left the zone (`reason` "exited"), or was lost while inside ("lost": the
    dwell runs to when it was last seen)."""

    zone: str
    track_id: int
    class_id: int
    name: str
    frame: int
    t: float
    dwell_s: float
    reason: str = "exited"
    timestamp: float | None = None
    stream: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            **_common("zone_left", self.stream),
            "zone": self.zone,
            "track_id": self.track_id,
            "class_id": self.class_id,
            "name": self.name,
            "frame": self.frame,
            "t": round(self.t, 3),
            "dwell_s": round(self.dwell_s, 3),
            "reason": self.reason,
            "timestamp": self.timestamp,
        }


AnalysisEvent = LineCrossed | ZoneEntered | ZoneLeft
