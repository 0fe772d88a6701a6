"""How the routers reach the running service: the collaborators the app's lifespan builds, one
dependency function each, used with FastAPI's `Depends` through the `Annotated` aliases below
(HTTP and WebSocket routes alike)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from ..jobs.intake import JobIntake
from ..jobs.service import JobService
from ..pipeline import Pipeline
from ..settings import ServeSettings
from .auth import AUTHENTICATED


@dataclass(frozen=True)
class Services:
    """Everything the routes use; set on `app.state.services` while the app runs."""

    settings: ServeSettings
    pipeline: Pipeline
    jobs: JobService
    intake: JobIntake
    detect_limiter: anyio.CapacityLimiter
    info: Mapping[str, Any]  # what runs: version, model, engine (GET /v1/info)
    started_at: float  # time.monotonic() at start


def get_authenticated(conn: HTTPConnection) -> bool:
    """Whether the caller gave a valid API key, or none is needed (auth.ApiKeyMiddleware)."""
    return bool(conn.scope.get("state", {}).get(AUTHENTICATED, False))


def get_started(conn: HTTPConnection) -> Services | None:
    """The services, or None before the lifespan started them."""
    services: Services | None = conn.app.state.services
    return services


def get_services(started: Annotated[Services | None, Depends(get_started)]) -> Services:
    if started is None:
        raise HTTPException(503, "the service is starting", headers={"Retry-After": "1"})
    return started


def get_settings(services: Annotated[Services, Depends(get_services)]) -> ServeSettings:
    return services.settings


def get_pipeline(services: Annotated[Services, Depends(get_services)]) -> Pipeline:
    return services.pipeline


def get_jobs(services: Annotated[Services, Depends(get_services)]) -> JobService:
    return services.jobs


def get_intake(services: Annotated[Services, Depends(get_services)]) -> JobIntake:
    return services.intake


def get_detect_limiter(
    services: Annotated[Services, Depends(get_services)],
) -> anyio.CapacityLimiter:
    return services.detect_limiter


ServicesDep = Annotated[Services, Depends(get_services)]
AuthenticatedDep = Annotated[bool, Depends(get_authenticated)]
StartedDep = Annotated[Services | None, Depends(get_started)]
SettingsDep = Annotated[ServeSettings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
IntakeDep = Annotated[JobIntake, Depends(get_intake)]
DetectLimiterDep = Annotated[anyio.CapacityLimiter, Depends(get_detect_limiter)]
