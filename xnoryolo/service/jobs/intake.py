"""Taking in a job: its options checked, its video saved into a fresh job folder (an upload
written by the caller, or a URL fetched later by a worker), probed, and queued. The HTTP
layer only reads the request and turns the errors raised here into answers."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xnoryolo.detector.video import VideoError, probe_video
from xnoryolo.tracking import AnalysisSpec, LineSpec, MotionSpec, TrackerSpec, ZoneSpec

from ..redact import redact
from .layout import JobFolder
from .runner import frame_size_error
from .service import JobOptionsData, JobService
from .store import JobRecord

# Writes the request's video to the path given; answers its file name and the other form
# fields that came with it.
SaveUpload = Callable[[Path], Awaitable[tuple[str | None, dict[str, str]]]]


MAX_FILENAME = 200


def safe_filename(name: str | None) -> str | None:
    """A client's file name as it may be stored, shown and logged: its last path component,
    without control, format (bidi) or separator characters, at most `MAX_FILENAME` long;
    None when nothing is left."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(
        c if unicodedata.category(c)[0] not in "CZ" or c == " " else "_" for c in base
    ).strip(" ._")
    if not kept:
        return None
    if len(kept) > MAX_FILENAME:
        stem, dot, suffix = kept.rpartition(".")
        if dot and 0 < len(suffix) <= 10:
            kept = f"{stem[: MAX_FILENAME - len(suffix) - 1]}.{suffix}"
        else:
            kept = kept[:MAX_FILENAME]
    return kept


class InvalidJob(ValueError):
    """A submission refused as it was given (options, missing or empty video)."""


class NotAVideo(ValueError):
    """An upload FFmpeg cannot decode."""


class VideoTooLarge(ValueError):
    """An upload whose frames are beyond the pixel limit."""


class JobOptions(BaseModel):
    """Options of a job: form fields, query parameters or the JSON body."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=4096, description="http(s) URL of a video")
    threshold: float | None = Field(default=None, ge=0, le=1)
    classes: list[str] | None = Field(default=None, description="report only these class names")
    stride: int = Field(default=1, ge=1, le=1000, description="detect on every n-th frame")
    video: bool = Field(default=True, description="also write the annotated MP4")
    max_frames: int | None = Field(default=None, ge=1, description="stop after this many frames")
    track: TrackerSpec = Field(
        default_factory=TrackerSpec, description="track ids: true/false or the tracker's options"
    )
    lines: list[LineSpec] = Field(default=[], max_length=64, description="counting lines")
    zones: list[ZoneSpec] = Field(default=[], max_length=64, description="dwell zones")
    motion: MotionSpec = Field(
        default_factory=MotionSpec, description="motion gating: true/false or its options"
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()] or None
        return value

    @field_validator("track", "lines", "zones", "motion", mode="before")
    @classmethod
    def _json_field(cls, value: Any) -> Any:
        # form fields and query parameters carry lists and objects as JSON text
        if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
            try:
                return json.loads(value)
            except (ValueError, RecursionError):
                raise ValueError("not valid JSON") from None
        return value

    @model_validator(mode="after")
    def _analysis_ok(self) -> JobOptions:
        # names unique, lines and zones only with tracking, their classes reported
        self.analysis().check_reported(self.classes)
        return self

    def analysis(self) -> AnalysisSpec:
        return AnalysisSpec(
            tracking=self.track, lines=self.lines, zones=self.zones, motion=self.motion
        )

    def data(self) -> JobOptionsData:
        return JobOptionsData(
            self.threshold,
            self.classes,
            self.stride,
            self.video,
            self.max_frames,
            self.model_dump(mode="json", include={"track", "lines", "zones", "motion"}),
        )


class JobIntake:
    def __init__(self, jobs: JobService, names: Sequence[str]) -> None:
        self.jobs = jobs
        self.names = frozenset(names)

    @property
    def limit(self) -> int:
        """The largest upload accepted, in bytes."""
        return int(self.jobs.config.max_upload_mb * 1024 * 1024)

    def options(self, values: Mapping[str, Any]) -> JobOptions:
        """The options in `values`, checked; InvalidJob if they are not usable."""
        try:
            opts = JobOptions.model_validate(dict(values))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise InvalidJob(redact(problems)) from None
        unknown = sorted((set(opts.classes or ()) | opts.analysis().class_names()) - self.names)
        if unknown:
            raise InvalidJob(f"unknown class names: {', '.join(unknown)}")
        return opts

    async def from_url(self, values: Mapping[str, Any]) -> JobRecord:
        """A job for the video at the http(s) `url` in `values` (fetched by its worker)."""
        opts = self.options(values)
        if not opts.url:
            raise InvalidJob("give a 'url' (http or https) or upload a 'file'")
        if not opts.url.lower().startswith(("http://", "https://")):
            raise InvalidJob("url: only http:// and https:// URLs are fetched")
        job_id, _ = await anyio.to_thread.run_sync(self.jobs.new_job)
        return self.jobs.submit(job_id, opts.url, None, opts.data())

    async def from_upload(self, save: SaveUpload, values: Mapping[str, Any]) -> JobRecord:
        """A job for an uploaded video that `save` writes; `values` are options given besides
        the form fields (the query string). Nothing of a refused upload stays on disk."""
        job_id, path = await anyio.to_thread.run_sync(self.jobs.new_job)
        folder = JobFolder(path)
        try:
            raw_name, fields = await save(folder.part)
            filename = safe_filename(raw_name)
            opts = self.options({**values, **fields})
            if opts.url:
                raise InvalidJob("give either a 'file' or a 'url', not both")
            if folder.part.stat().st_size == 0:
                raise InvalidJob("the upload is empty (0 bytes)")
            dest = folder.input_for(filename)
            folder.part.replace(dest)
            try:
                info = await anyio.to_thread.run_sync(probe_video, dest)
            except VideoError as exc:
                raise NotAVideo(f"the upload is not a decodable video: {exc}") from None
            try:
                frame_size_error(info, self.jobs.limits.max_pixels)
            except VideoError as exc:
                raise VideoTooLarge(f"the upload is refused: {exc}") from None
        except BaseException:
            self.jobs.discard(job_id)
            raise
        return self.jobs.submit(job_id, "upload", filename, opts.data(), info)
