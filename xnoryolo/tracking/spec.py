"""What a stream or a job asks of tracking, counting and motion gating: pydantic models shared
by the settings file, `POST /v1/streams` and job options (one schema each).

Points are fractions of the frame width and height (0..1, x to the right, y down), like the
relative coordinates of a detection, so one setting fits any resolution of the same view."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Point = tuple[float, float]
Anchor = Literal["bottom", "center"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,63}$"


def _on_off(value: Any) -> Any:
    # `motion: on` / `tracking: off` (YAML reads on/off as booleans; the API may send strings)
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, str) and value.strip().lower() in ("on", "off", "true", "false"):
        return {"enabled": value.strip().lower() in ("on", "true")}
    return value


def _check_points(points: list[Point]) -> list[Point]:
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point ({x:g}, {y:g}) is outside the frame: points are fractions of the "
                "frame width and height, 0..1"
            )
    return points


class TrackerSpec(BaseModel):
    """ByteTrack's parameters: boxes at `high_thresh` or more are matched first and may start
    tracks; boxes between `low_thresh` and `high_thresh` only continue tracks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="give boxes track ids")
    high_thresh: float = Field(default=0.5, ge=0, le=1, description="first-stage box score")
    low_thresh: float = Field(default=0.1, ge=0, le=1, description="second-stage box score")
    new_track_thresh: float = Field(default=0.6, ge=0, le=1, description="score to start a track")
    match_iou: float = Field(
        default=0.2, ge=0, le=1, description="least IoU of a first-stage match"
    )
    min_hits: int = Field(
        default=2, ge=1, le=30, description="matches in a row before a track gets an id"
    )
    lost_frames: int = Field(
        default=30, ge=1, le=10_000, description="inferred frames a lost track is kept"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _on_off(value)


class MotionSpec(BaseModel):
    """Motion gating: a frame is inferred only when enough of it differs from the last
    inferred frame (greyscale, downscaled to `width` pixels), or `max_interval_s` passed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="skip inference on frames without motion")
    threshold: float = Field(
        default=0.002, ge=0, le=1, description="fraction of the picture that must change"
    )
    pixel_delta: int = Field(
        default=20, ge=1, le=255, description="grey-level change that counts as changed"
    )
    width: int = Field(default=160, ge=16, le=1920, description="width compared at, pixels")
    max_interval_s: float = Field(
        default=2.0, gt=0, le=3600, description="infer at least this often"
    )
    mask: list[list[Point]] = Field(
        default=[], description="polygons (fractions of the frame) where motion is ignored"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _on_off(value)

    @field_validator("mask")
    @classmethod
    def _polygons(cls, value: list[list[Point]]) -> list[list[Point]]:
        for poly in value:
            if len(poly) < 3:
                raise ValueError("a mask polygon needs at least 3 points")
            _check_points(poly)
        return value


class LineSpec(BaseModel):
    """A counting line from A to B: a track whose anchor crosses it from the left of A→B to
    its right (as seen on the picture) counts `in`, the other way `out`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    points: tuple[Point, Point] = Field(description="A and B, fractions of the frame")
    classes: list[str] | None = Field(default=None, description="count only these classes")
    anchor: Anchor = Field(default="bottom", description="the box point that crosses")

    @field_validator("points")
    @classmethod
    def _points(cls, value: tuple[Point, Point]) -> tuple[Point, Point]:
        _check_points(list(value))
        if value[0] == value[1]:
            raise ValueError("a line needs two different points")
        return value


class ZoneSpec(BaseModel):
    """A polygon: tracks entering and leaving it, and how long they stayed (dwell)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    points: list[Point] = Field(min_length=3, max_length=64, description="fractions of frame")
    classes: list[str] | None = Field(default=None, description="watch only these classes")
    anchor: Anchor = Field(default="bottom", description="the box point that must be inside")

    @field_validator("points")
    @classmethod
    def _points(cls, value: list[Point]) -> list[Point]:
        return _check_points(value)


class AnalysisSpec(BaseModel):
    """Everything a stream or job asks beyond boxes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking: TrackerSpec = Field(default_factory=TrackerSpec)
    lines: list[LineSpec] = Field(default=[], max_length=64)
    zones: list[ZoneSpec] = Field(default=[], max_length=64)
    motion: MotionSpec = Field(default_factory=MotionSpec)

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisSpec:
        names = [x.name for x in self.lines] + [z.name for z in self.zones]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"line and zone names must be unique: {', '.join(dup)}")
        if (self.lines or self.zones) and not self.tracking.enabled:
            raise ValueError("lines and zones count tracks: tracking must be enabled")
        return self

    def check_reported(self, classes: list[str] | None) -> None:
        """ValueError where lines or zones name classes outside the `classes` filter (boxes
        of other classes are dropped before tracking: they would never count)."""
        unseen = sorted(self.class_names() - set(classes)) if classes else []
        if unseen:
            raise ValueError(
                f"lines or zones name classes the 'classes' filter drops: {', '.join(unseen)}"
            )

    def class_names(self) -> set[str]:
        """Every class name the lines and zones name (checked against the model's)."""
        out: set[str] = set()
        for line in self.lines:
            out.update(line.classes or ())
        for zone in self.zones:
            out.update(zone.classes or ())
        return out
