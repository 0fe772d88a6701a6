"""Health and readiness probes and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .deps import AuthenticatedDep, PipelineDep, ServicesDep, StartedDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Model loaded and every enabled stream produced a result recently (the detail "
    "per stream only with an API key, where keys are set)",
)
def readyz(started: StartedDep, authenticated: AuthenticatedDep) -> JSONResponse:
    if started is None:
        ready, detail = False, {"model": False, "streams": {}}
    else:
        p = started.pipeline
        streams = p.manager.readiness(p.settings.ready_window_s)
        ready, detail = all(streams.values()), {"model": True, "streams": streams}
    # Stream ids name cameras and places: a caller without a key learns only the answer.
    body = {"ready": ready, **detail} if authenticated else {"ready": ready}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/v1/info", summary="What runs: version, model, engine (kernels, threads), uptime")
def info(services: ServicesDep) -> dict[str, Any]:
    mqtt = services.pipeline.mqtt
    return {
        **services.info,
        "uptime_s": round(time.monotonic() - services.started_at, 1),
        "mqtt": mqtt.status() if mqtt is not None else None,
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(pipeline: PipelineDep) -> Response:
    return Response(generate_latest(pipeline.metrics.registry), media_type=CONTENT_TYPE_LATEST)
