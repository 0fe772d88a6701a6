"""/v1/jobs: uploaded-video jobs. Submit (upload or URL), follow (poll or SSE), cancel or
delete, and download the results: detections as JSON, JSON lines, MOTChallenge and COCO, and
the annotated video."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from ..jobs.intake import InvalidJob, NotAVideo, VideoTooLarge
from ..jobs.service import JobBusy, JobNotFound, JobService
from ..jobs.store import JobRecord, JobState
from .deps import IntakeDep, JobsDep, SettingsDep
from .uploads import save_body, save_multipart

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RAW_TYPES = ("video/", "application/octet-stream")
# Query parameters that are not job options.
_NOT_OPTIONS = ("api_key", "filename")


def _query_options(request: Request) -> dict[str, Any]:
    return {k: v for k, v in request.query_params.items() if k not in _NOT_OPTIONS}


def _accepted(rec: JobRecord) -> JSONResponse:
    return JSONResponse(rec.to_json(), status_code=202, headers={"Location": f"/v1/jobs/{rec.id}"})


async def _json_or_form(request: Request, ctype: str, max_fields: int) -> dict[str, Any]:
    # The body is already bounded (limits.max_body_kb, bodies.BodyLimitMiddleware).
    if ctype.startswith("application/json"):
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nesting thousands deep
            raise HTTPException(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(422, "the JSON body must be an object")
        return body
    async with request.form(max_files=0, max_fields=max_fields) as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post(
    "",
    status_code=202,
    summary="Submit a video: multipart field 'file', a raw video/* body, or JSON {'url': ...}",
)
async def create_job(request: Request, intake: IntakeDep, settings: SettingsDep) -> JSONResponse:
    ctype = request.headers.get("content-type", "").lower()
    is_multipart = ctype.startswith("multipart/form-data")
    if not is_multipart and not ctype.startswith(
        ("application/json", "application/x-www-form-urlencoded", *_RAW_TYPES)
    ):
        raise HTTPException(
            415,
            "send a video as multipart/form-data (field 'file'), as a video/* or "
            "application/octet-stream body, or JSON {'url': ...}",
        )

    async def save(dest: Path) -> tuple[str | None, dict[str, str]]:
        if is_multipart:
            return await save_multipart(
                request, dest, intake.limit, max_fields=settings.limits.max_form_fields
            )
        await save_body(request, dest, intake.limit)
        return request.query_params.get("filename"), {}

    try:
        if ctype.startswith(("application/json", "application/x-www-form-urlencoded")):
            body = await _json_or_form(request, ctype, settings.limits.max_form_fields)
            rec = await intake.from_url({**_query_options(request), **body})
        else:
            rec = await intake.from_upload(save, _query_options(request))
    except InvalidJob as exc:
        raise HTTPException(422, str(exc)) from None
    except NotAVideo as exc:
        raise HTTPException(415, str(exc)) from None
    except VideoTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    return _accepted(rec)


@router.get("", summary="Jobs, newest first")
def list_jobs(
    jobs: JobsDep,
    state: JobState | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    return [r.to_json() for r in jobs.list_jobs(state, limit)]


def _get(jobs: JobService, job_id: str) -> JobRecord:
    try:
        return jobs.get(job_id)
    except JobNotFound:
        raise HTTPException(404, f"no job {job_id!r}") from None


@router.get("/{job_id}", summary="One job: state, progress, fps, ETA, error, result links")
def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    return _get(jobs, job_id).to_json()


@router.delete(
    "/{job_id}",
    summary="Cancel a queued or running job (200, the job); delete a finished one (204)",
    responses={204: {"description": "deleted with its files"}},
)
def delete_job(job_id: str, jobs: JobsDep) -> Response:
    rec = _get(jobs, job_id)
    if not rec.state.finished:
        return JSONResponse(jobs.cancel(job_id).to_json())
    try:
        jobs.delete(job_id)
    except JobBusy:
        raise HTTPException(
            409, "the job is still stopping; try again", headers={"Retry-After": "1"}
        ) from None
    except JobNotFound:
        raise HTTPException(404, f"no job {job_id!r}") from None
    return Response(status_code=204)


async def _job_events(jobs: JobService, job_id: str, keepalive: float) -> AsyncIterator[str]:
    last: dict[str, Any] | None = None
    quiet = 0.0
    while True:
        try:
            rec = jobs.get(job_id)
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
async def job_events(job_id: str, jobs: JobsDep, settings: SettingsDep) -> StreamingResponse:
    _get(jobs, job_id)
    return StreamingResponse(
        _job_events(jobs, job_id, settings.keepalive_s),
        media_type="text/event-stream",
        headers=_NO_BUFFERING,
    )


def _result(jobs: JobService, job_id: str, kind: str) -> tuple[JobRecord, Path]:
    rec = _get(jobs, job_id)
    if rec.state != JobState.SUCCEEDED:
        raise HTTPException(
            409,
            f"job {job_id} is {rec.state.value}: results exist once it has succeeded",
            headers={"Retry-After": "2"} if not rec.state.finished else None,
        )
    if kind not in rec.outputs:
        raise HTTPException(404, f"job {job_id} was not asked for this result ({kind})")
    path = jobs.result_path(job_id, kind)
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
def job_detections(
    job_id: str, request: Request, jobs: JobsDep, format: str | None = Query(None)
) -> Response:
    fmt = format
    if fmt is None:
        accept = request.headers.get("accept", "")
        fmt = "jsonl" if ("ndjson" in accept or "jsonl" in accept) else "json"
    if fmt not in _FORMATS:
        raise HTTPException(422, f"format: one of {', '.join(sorted(_FORMATS))}")
    if fmt == "mot":
        _, path = _result(jobs, job_id, "mot")
        return FileResponse(path, media_type="text/plain", filename=f"{job_id}.mot.txt")
    if fmt == "coco":
        _, path = _result(jobs, job_id, "coco")
        return FileResponse(path, media_type="application/json", filename=f"{job_id}.coco.json")
    rec, path = _result(jobs, job_id, "jsonl")
    if fmt == "jsonl":
        return FileResponse(path, media_type="application/x-ndjson", filename=f"{job_id}.jsonl")
    return StreamingResponse(_json_document(rec, path), media_type="application/json")


@router.get(
    "/{job_id}/summary",
    summary="Tracks, per line in/out counts per class, per zone visits and dwell times, frames "
    "the motion gate skipped, and the line and zone events",
)
def job_summary(job_id: str, jobs: JobsDep) -> FileResponse:
    _, path = _result(jobs, job_id, "summary")
    return FileResponse(path, media_type="application/json", filename=f"{job_id}.summary.json")


@router.get(
    "/{job_id}/video",
    summary="The annotated video (MP4; `video.annotated_codec` in the job tells the codec)",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
def job_video(job_id: str, jobs: JobsDep) -> FileResponse:
    _, path = _result(jobs, job_id, "video")
    return FileResponse(path, media_type="video/mp4", filename=f"{job_id}.mp4")
