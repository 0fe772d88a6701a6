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
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


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
        detector = load_detector(settings)
        check_streams(settings, detector.names)
    except (ConfigError, XnoryoloError) as exc:
        print(f"xnoryolo: error: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    _setup_logging(args.log_level)
    uvicorn.run(
        create_app(settings, detector),
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws="websockets-sansio",
        timeout_graceful_shutdown=3,
    )
    return 0
