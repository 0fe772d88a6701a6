"""Health and readiness probes and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .deps import PipelineDep, StartedDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Model loaded and every enabled stream produced a result recently")
def readyz(started: StartedDep) -> JSONResponse:
    if started is None:
        return JSONResponse({"ready": False, "model": False, "streams": {}}, status_code=503)
    p = started.pipeline
    streams = p.manager.readiness(p.settings.ready_window_s)
    ready = all(streams.values())
    return JSONResponse(
        {"ready": ready, "model": True, "streams": streams}, status_code=200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(pipeline: PipelineDep) -> Response:
    return Response(generate_latest(pipeline.metrics.registry), media_type=CONTENT_TYPE_LATEST)
