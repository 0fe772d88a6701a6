"""Response models: they document the API in OpenAPI (the handlers build plain dicts)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from xnoryolo.detector import Detection

from ..streams.events import ErrorKind


class DetectResult(BaseModel):
    """`POST /v1/detect`: the detections of one image. Each detection is the `Detection`
    dataclass itself, so the documented fields are its fields (`Detection.to_json()`)."""

    width: int = Field(description="image width, pixels")
    height: int = Field(description="image height, pixels")
    inference_ms: float = Field(description="detector time, ms")
    detections: list[Detection]


class LastError(BaseModel):
    kind: str = Field(description="one of: " + ", ".join(k.value for k in ErrorKind))
    message: str = Field(description="what happened; credentials are redacted")
    at: float | None = Field(default=None, description="Unix time")


class Latency(BaseModel):
    last: float | None = Field(default=None, description="capture to result, ms")
    mean: float | None = None


class StreamInfo(BaseModel):
    id: str
    name: str
    url: str = Field(description="the source URL with credentials redacted")
    kind: str = Field(description="file, rtsp, http or device")
    live: bool = Field(description="live sources keep only their newest frame")
    enabled: bool
    fps_cap: float | None
    classes: list[str] | None
    threshold: float | None
    state: str = Field(description="connecting, online, stalled, offline or stopped")
    state_since: float
    input_fps: float
    processed_fps: float
    frames_in: int
    frames_processed: int
    dropped_frames: int = Field(description="live frames replaced by a newer one unprocessed")
    skipped_frames: int = Field(description="live frames skipped by the fps cap")
    reconnects: int
    stalls: int
    last_error: LastError | None
    latency_ms: Latency
    tracking: bool = Field(description="boxes get track ids")
    lines: list[dict[str, Any]] = Field(description="counting lines (as configured)")
    zones: list[dict[str, Any]] = Field(description="dwell zones (as configured)")
    motion: bool = Field(description="motion gating on")
    analysis: dict[str, Any] | None = Field(
        description="cumulative: tracks seen, per line in/out per class, per zone entered/left/"
        "inside per class and dwell times, frames inferred and skipped by the motion gate"
    )
