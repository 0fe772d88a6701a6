"""Health and readiness probes and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Model loaded and every enabled stream produced a result recently")
def readyz(request: Request) -> JSONResponse:
    p = getattr(request.app.state, "pipeline", None)
    if p is None:
        return JSONResponse({"ready": False, "model": False, "streams": {}}, status_code=503)
    streams = p.manager.readiness(p.settings.ready_window_s)
    ready = all(streams.values())
    return JSONResponse(
        {"ready": ready, "model": True, "streams": streams}, status_code=200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    registry = request.app.state.pipeline.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
