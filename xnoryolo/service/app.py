"""The FastAPI application: the lifespan builds the collaborators (the live pipeline, the job
service) and puts them on `app.state.services` for the routers (see api/deps.py); one router
per resource."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import xnoryolo

from .api import ROUTERS
from .api.auth import ApiKeyMiddleware
from .api.bodies import BodyLimitMiddleware
from .api.deps import Services
from .api.docs import declare_api_key
from .inference import DescribedDetector, DetectorLike, LiveActivity
from .jobs.intake import JobIntake
from .jobs.metrics import JobsCollector
from .jobs.service import JobService
from .pipeline import Pipeline
from .policy import NetworkPolicy
from .redact import redact
from .settings import ConfigError, ServeSettings
from .streams.manager import StreamNotFound
from .streams.sources import InvalidSource, parse_source
from .web import PublicPageMiddleware

log = logging.getLogger("xnoryolo.service")


def load_detector(settings: ServeSettings) -> DetectorLike:
    from xnoryolo.detector import Detector

    m = settings.model
    cfg, weights, names = m.cfg, m.weights, m.names
    if cfg is None and weights is None and names is None:
        from xnoryolo.configs import default_model

        log.warning(
            "no model given: serving the default model, distilled for the demo scene only "
            "(xnoryolo/configs/default/MODEL.md); pass --cfg/--weights/--names for your own"
        )
        weights = default_model()
    elif weights is None or (cfg is None and weights.suffix.lower() != ".xnor"):
        raise ConfigError(
            "incomplete model: pass --cfg, --weights and --names (or model: cfg/weights/names "
            "in the --config file); a packed .xnor file needs no --cfg"
        )
    return Detector.from_files(
        cfg,
        weights,
        names,
        backend=m.backend,
        threads=settings.threads,
        precision=m.precision,
        thresh=m.thresh,
        nms=m.nms,
        max_detections=settings.limits.max_detections,
    )


def service_info(settings: ServeSettings, detector: DetectorLike) -> dict[str, Any]:
    """What `GET /v1/info` reports of the running service."""
    engine = detector.info() if isinstance(detector, DescribedDetector) else {}
    return {"version": xnoryolo.__version__, **engine}


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def check_exposure(settings: ServeSettings) -> None:
    """Without API keys the server listens on loopback only, unless the settings say
    `access.allow_keyless_public: true` (ConfigError otherwise)."""
    if settings.api_keys or settings.access.allow_keyless_public:
        return
    host = settings.host.strip().strip("[]").lower()
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    if not loopback:
        raise ConfigError(
            f"refusing to listen on {settings.host} without API keys: anyone who can connect "
            "could add streams and read every result; set api_keys (XNORYOLO_API_KEYS), or "
            "expose the box without them with --allow-keyless-public (access.allow_keyless_public"
            ": true, XNORYOLO_ACCESS__ALLOW_KEYLESS_PUBLIC=true)"
        )


def check_streams(settings: ServeSettings, names: list[str]) -> None:
    """The config file's streams, checked before the server starts (ConfigError if bad)."""
    seen: set[str] = set()
    for i, stream in enumerate(settings.streams):
        try:
            parse_source(stream.url)
        except InvalidSource as exc:
            raise ConfigError(f"streams.{i}.url: {exc}") from None
        unknown = sorted(set(stream.classes or ()) - set(names))
        if unknown:
            raise ConfigError(f"streams.{i}.classes: unknown class names: {', '.join(unknown)}")
        if stream.id is not None:
            if stream.id in seen:
                raise ConfigError(f"streams.{i}.id: {stream.id!r} is used twice")
            seen.add(stream.id)


def create_app(
    settings: ServeSettings, detector: DetectorLike | None = None, run_jobs: bool = True
) -> FastAPI:
    """The service app. `detector` defaults to the model named in `settings`; the pipeline
    starts with the app's lifespan and stops with it. `run_jobs=False`: video jobs are only
    accepted and served here (`xnoryolo worker` processes run them)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Live inference goes through LiveActivity so that video jobs can yield to it.
        live = LiveActivity(detector or load_detector(settings))
        pipeline = Pipeline.build(live, settings)
        pipeline.start()
        job_service = JobService(
            settings.jobs,
            settings.data_dir,
            live.detector,
            live,
            settings.limits,
            NetworkPolicy.from_config(settings.sources),
            run_jobs=run_jobs,
        )
        job_service.start()
        pipeline.metrics.registry.register(JobsCollector(job_service))
        app.state.services = Services(
            settings=settings,
            pipeline=pipeline,
            jobs=job_service,
            intake=JobIntake(job_service, live.names),
            detect_limiter=anyio.CapacityLimiter(settings.workers),
            info=service_info(settings, live.detector),
            started_at=time.monotonic(),
        )
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(job_service.stop)
            await anyio.to_thread.run_sync(pipeline.stop)

    app = FastAPI(
        title="xnoryolo",
        version=xnoryolo.__version__,
        summary="Real-time XNOR Tiny-YOLO detection on video streams and images",
        lifespan=lifespan,
        docs_url=None,  # api/docs.py serves it, handing the page's API key on
        redoc_url=None,  # ReDoc loads its logo from a CDN
    )
    app.state.services = None  # until the lifespan starts them
    limits = settings.limits
    # The last added runs first: keys and origins are checked before any body is read.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=int(limits.max_body_kb * 1024),
        timeout_s=limits.body_timeout_s,
    )
    app.add_middleware(
        ApiKeyMiddleware, keys=settings.api_keys, allowed_origins=settings.access.allowed_origins
    )
    # Outermost: the web page loads without a key, so that it can ask for one.
    app.add_middleware(PublicPageMiddleware)

    @app.exception_handler(StreamNotFound)
    async def _not_found(request: Request, exc: StreamNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"no stream {exc.stream!r}"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back, which may hold a camera's password.
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": redact(str(e.get("msg", ""))),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    for router in ROUTERS:
        app.include_router(router)
    if settings.api_keys:
        declare_api_key(app)
    return app
