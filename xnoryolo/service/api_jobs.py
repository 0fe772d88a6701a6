"""/v1/jobs: uploaded-video jobs. Submit (upload or URL), follow (poll or SSE), cancel or
delete, and download the results: detections as JSON, JSON lines, MOTChallenge and COCO, and
the annotated video."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xnoryolo.detector.video import VideoError, probe_video

from .jobs import JobBusy, JobNotFound, JobOptionsData, JobService
from .jobs_store import JobRecord, JobState
from .jobs_upload import save_body, save_multipart
from .redact import redact

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RAW_TYPES = ("video/", "application/octet-stream")


class JobOptions(BaseModel):
    """Options of a job: form fields, query parameters or the JSON body."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=4096, description="http(s) URL of a video")
    threshold: float | None = Field(default=None, ge=0, le=1)
    classes: list[str] | None = Field(default=None, description="report only these class names")
    stride: int = Field(default=1, ge=1, le=1000, description="detect on every n-th frame")
    video: bool = Field(default=True, description="also write the annotated MP4")
    max_frames: int | None = Field(default=None, ge=1, description="stop after this many frames")

    @field_validator("classes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()] or None
        return value

    def data(self) -> JobOptionsData:
        return JobOptionsData(
            self.threshold, self.classes, self.stride, self.video, self.max_frames
        )


def _jobs(request: Request) -> JobService:
    return request.app.state.jobs


def _options(request: Request, values: dict[str, Any]) -> JobOptions:
    merged: dict[str, Any] = dict(request.query_params)
    merged.pop("api_key", None)
    merged.pop("filename", None)
    merged.update(values)
    try:
        opts = JobOptions.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise HTTPException(422, redact(problems)) from None
    names = getattr(_jobs(request).detector, "names", None)
    if opts.classes and names is not None:
        unknown = sorted(set(opts.classes) - set(names))
        if unknown:
            raise HTTPException(422, f"unknown class names: {', '.join(unknown)}")
    return opts


def _suffix(filename: str | None) -> str:
    # FFmpeg probes the content; the suffix only helps it with headerless streams (.h264).
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""


def _accepted(rec: JobRecord) -> JSONResponse:
    return JSONResponse(rec.to_json(), status_code=202, headers={"Location": f"/v1/jobs/{rec.id}"})


@router.post(
    "",
    status_code=202,
    summary="Submit a video: multipart field 'file', a raw video/* body, or JSON {'url': ...}",
)
async def create_job(request: Request) -> JSONResponse:
    svc = _jobs(request)
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("application/json") or ctype.startswith(
        "application/x-www-form-urlencoded"
    ):
        if ctype.startswith("application/json"):
            raw = await request.body()
            if len(raw) > 64 * 1024:
                raise HTTPException(413, "the JSON body is too large")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise HTTPException(400, "the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise HTTPException(422, "the JSON body must be an object")
        else:
            async with request.form(max_files=0, max_fields=20) as form:
                body = {k: v for k, v in form.items() if isinstance(v, str)}
        opts = _options(request, body)
        if not opts.url:
            raise HTTPException(422, "give a 'url' (http or https) or upload a 'file'")
        if not opts.url.lower().startswith(("http://", "https://")):
            raise HTTPException(422, "url: only http:// and https:// URLs are fetched")
        job_id, _ = await anyio.to_thread.run_sync(svc.new_job)
        return _accepted(svc.submit(job_id, opts.url, None, opts.data()))

    is_multipart = ctype.startswith("multipart/form-data")
    if not is_multipart and not ctype.startswith(_RAW_TYPES):
        raise HTTPException(
            415,
            "send a video as multipart/form-data (field 'file'), as a video/* or "
            "application/octet-stream body, or JSON {'url': ...}",
        )
    limit = int(svc.config.max_upload_mb * 1024 * 1024)
    job_id, job_dir = await anyio.to_thread.run_sync(svc.new_job)
    part = job_dir / "input.part"
    try:
        if is_multipart:
            filename, fields = await save_multipart(request, part, limit)
        else:
            await save_body(request, part, limit)
            filename, fields = request.query_params.get("filename"), {}
        opts = _options(request, fields)
        if opts.url:
            raise HTTPException(422, "give either a 'file' or a 'url', not both")
        if part.stat().st_size == 0:
            raise HTTPException(422, "the upload is empty (0 bytes)")
        dest = job_dir / f"input{_suffix(filename)}"
        part.replace(dest)
        try:
            info = await anyio.to_thread.run_sync(probe_video, dest)
        except VideoError as exc:
            raise HTTPException(415, f"the upload is not a decodable video: {exc}") from None
    except BaseException:
        svc.discard(job_id)
        raise
    return _accepted(svc.submit(job_id, "upload", filename, opts.data(), info))


@router.get("", summary="Jobs, newest first")
def list_jobs(
    request: Request,
    state: JobState | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    return [r.to_json() for r in _jobs(request).list_jobs(state, limit)]


def _get(request: Request, job_id: str) -> JobRecord:
    try:
        return _jobs(request).get(job_id)
    except JobNotFound:
        raise HTTPException(404, f"no job {job_id!r}") from None


@router.get("/{job_id}", summary="One job: state, progress, fps, ETA, error, result links")
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    return _get(request, job_id).to_json()


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job (200, the job); delete a finished one (204)",
    responses={204: {"description": "deleted with its files"}},
)
def delete_job(job_id: str, request: Request) -> Response:
    rec = _get(request, job_id)
    svc = _jobs(request)
    if not rec.state.finished:
        return JSONResponse(svc.cancel(job_id).to_json())
    try:
        svc.delete(job_id)
    except JobBusy:
        raise HTTPException(
            409, "the job is still stopping; try again", headers={"Retry-After": "1"}
        ) from None
    except JobNotFound:
        raise HTTPException(404, f"no job {job_id!r}") from None
    return Response(status_code=204)


async def _job_events(request: Request, job_id: str, keepalive: float) -> AsyncIterator[str]:
    last: dict[str, Any] | None = None
    quiet = 0.0
    while True:
        try:
            rec = _jobs(request).get(job_id)
        except JobNotFound:
            yield f"event: deleted\ndata: {json.dumps({'id': job_id})}\n\n"
            return
        doc = rec.to_json()
        if doc != last:
            last = doc
            quiet = 0.0
            yield f"event: job\ndata: {json.dumps(doc)}\n\n"
            if rec.state.finished:
                return
        elif quiet >= keepalive:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(0.25)
        quiet += 0.25


@router.get("/{job_id}/events", summary="Server-Sent Events: the job object at each change")
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    _get(request, job_id)
    keepalive = request.app.state.settings.keepalive_s
    return StreamingResponse(
        _job_events(request, job_id, keepalive),
        media_type="text/event-stream",
        headers=_NO_BUFFERING,
    )


def _result(request: Request, job_id: str, kind: str) -> tuple[JobRecord, Path]:
    rec = _get(request, job_id)
    if rec.state != JobState.SUCCEEDED:
        raise HTTPException(
            409,
            f"job {job_id} is {rec.state.value}: results exist once it has succeeded",
            headers={"Retry-After": "2"} if not rec.state.finished else None,
        )
    if kind not in rec.outputs:
        raise HTTPException(404, f"job {job_id} was not asked for this result ({kind})")
    path = _jobs(request).result_path(job_id, kind)
    if not path.is_file():
        raise HTTPException(410, f"the result file of job {job_id} is missing")
    return rec, path


def _json_document(rec: JobRecord, path: Path) -> Iterator[bytes]:
    head = {k: v for k, v in rec.to_json().items() if k in ("id", "state", "video", "options")}
    yield (json.dumps(head)[:-1] + ', "frames": [').encode()
    sep = b""
    with path.open("rb") as f:
        for line in f:
            line = line.strip()
            if line:
                yield sep + line
                sep = b", "
    yield b"]}\n"


_FORMATS = {"json", "jsonl", "mot", "coco"}


@router.get(
    "/{job_id}/detections",
    summary="Detections: ?format=json (default), jsonl (or Accept: application/x-ndjson), "
    "mot (MOTChallenge txt) or coco",
)
def job_detections(job_id: str, request: Request, format: str | None = Query(None)) -> Response:
    fmt = format
    if fmt is None:
        accept = request.headers.get("accept", "")
        fmt = "jsonl" if ("ndjson" in accept or "jsonl" in accept) else "json"
    if fmt not in _FORMATS:
        raise HTTPException(422, f"format: one of {', '.join(sorted(_FORMATS))}")
    if fmt == "mot":
        _, path = _result(request, job_id, "mot")
        return FileResponse(path, media_type="text/plain", filename=f"{job_id}.mot.txt")
    if fmt == "coco":
        _, path = _result(request, job_id, "coco")
        return FileResponse(path, media_type="application/json", filename=f"{job_id}.coco.json")
    rec, path = _result(request, job_id, "jsonl")
    if fmt == "jsonl":
        return FileResponse(path, media_type="application/x-ndjson", filename=f"{job_id}.jsonl")
    return StreamingResponse(_json_document(rec, path), media_type="application/json")


@router.get(
    "/{job_id}/video",
    summary="The annotated video (MP4; `video.annotated_codec` in the job tells the codec)",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
def job_video(job_id: str, request: Request) -> FileResponse:
    _, path = _result(request, job_id, "video")
    return FileResponse(path, media_type="video/mp4", filename=f"{job_id}.mp4")
