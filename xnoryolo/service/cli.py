"""`xnoryolo serve`: run the detection service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the detection service (HTTP API, streams, events)")
    p.add_argument("--config", help="YAML settings file (see xnoryolo/configs/serve.example.yaml)")
    p.add_argument("--cfg", help="darknet .cfg file")
    p.add_argument("--weights", help="darknet .weights file")
    p.add_argument("--names", help="class names, one per line")
    p.add_argument(
        "--precision",
        choices=["f32", "int8"],
        help="f32 (darknet parity) or int8 (a calibrated model; its default)",
    )
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8080)")
    p.add_argument("--threads", type=int, help="detector threads")
    p.add_argument("--workers", type=int, help="inference workers shared by all streams")
    p.add_argument("--data-dir", help="video jobs' records and results (default ./data)")
    p.add_argument(
        "--allow-keyless-public",
        action="store_true",
        default=None,
        help="listen beyond loopback without API keys (anyone who can connect may use the box)",
    )
    p.add_argument(
        "--no-workers",
        action="store_true",
        help="run no video jobs here, only accept and serve them (`xnoryolo worker` processes "
        "run them; needs jobs.store: postgresql://...)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)
    add_worker_parser(subparsers)


def add_worker_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker", help="run queued video jobs from a shared job store (jobs.store: postgresql://)"
    )
    p.add_argument("--config", required=True, help="YAML settings file, as for serve")
    p.add_argument("--cfg", help="darknet .cfg file")
    p.add_argument("--weights", help="darknet .weights file")
    p.add_argument("--names", help="class names, one per line")
    p.add_argument("--threads", type=int, help="detector threads")
    p.add_argument("--jobs", type=int, help="jobs run at once by this process (jobs.workers)")
    p.add_argument("--data-dir", help="the shared results root (every worker and the API)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run_worker)


def _setup_logging(level: str) -> None:
    from .redact import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())  # access lines carry ?api_key=, streams carry URLs
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def run(args: argparse.Namespace) -> int:
    # The service logs every source failure itself, classified and redacted; FFmpeg's and
    # OpenCV's own stderr lines would repeat them unredacted (set these to see them again).
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    from xnoryolo.detector.errors import XnoryoloError

    from .app import check_exposure, check_streams, create_app, load_detector
    from .settings import ConfigError, load_settings

    keys = ("cfg", "weights", "names", "precision")
    model = {k: getattr(args, k) for k in keys if getattr(args, k)}
    try:
        settings = load_settings(
            args.config,
            host=args.host,
            port=args.port,
            threads=args.threads,
            workers=args.workers,
            data_dir=args.data_dir,
            model=model or None,
            access={"allow_keyless_public": True} if args.allow_keyless_public else None,
        )
        check_exposure(settings)
        if args.no_workers and not settings.jobs.store.startswith("postgres"):
            raise ConfigError(
                "--no-workers needs a shared job store (jobs.store: postgresql://...): with "
                "the embedded one nothing would run the jobs"
            )
        detector = load_detector(settings)
        check_streams(settings, detector.names)
    except (ConfigError, XnoryoloError) as exc:
        print(f"xnoryolo: error: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    _setup_logging(args.log_level)
    uvicorn.run(
        create_app(settings, detector, run_jobs=not args.no_workers),
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws="websockets-sansio",
        timeout_graceful_shutdown=3,
    )
    return 0


def run_worker(args: argparse.Namespace) -> int:
    """Run jobs from the shared store until SIGTERM or SIGINT; a job running then goes back
    to the queue for another worker."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import signal
    import threading

    from xnoryolo.detector.errors import XnoryoloError

    from .app import load_detector
    from .jobs.service import JobService
    from .jobs.store import StoreUnavailable
    from .jobs.stores import is_shared
    from .policy import NetworkPolicy
    from .settings import ConfigError, load_settings

    model = {k: getattr(args, k) for k in ("cfg", "weights", "names") if getattr(args, k)}
    _setup_logging(args.log_level)
    log = logging.getLogger("xnoryolo.worker")
    try:
        settings = load_settings(
            args.config,
            threads=args.threads,
            data_dir=args.data_dir,
            model=model or None,
            jobs={"workers": args.jobs} if args.jobs else None,
        )
        if not is_shared(settings.jobs.store):
            raise ConfigError(
                "xnoryolo worker needs a shared job store: set jobs.store: postgresql://... "
                "(XNORYOLO_JOBS__STORE); the embedded SQLite store belongs to one serve process"
            )
        detector = load_detector(settings)
        service = JobService(
            settings.jobs,
            settings.data_dir,
            detector,
            limits=settings.limits,
            network_policy=NetworkPolicy.from_config(settings.sources),
            fetch=False,
        )
        service.start()
    except (ConfigError, XnoryoloError, StoreUnavailable) as exc:
        print(f"xnoryolo: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "worker %s: running up to %d jobs at once from the job store",
        service.worker_name,
        settings.jobs.workers,
    )
    stop.wait()
    log.info("worker %s: stopping", service.worker_name)
    service.stop()
    return 0
