"""`xnoryolo models fetch`: the reference yolov3-tiny, checksum-verified (xnoryolo.models)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="fetch the reference yolov3-tiny (checksum-verified)")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("--dest", help="directory (default: ~/.cache/xnoryolo/models/yolov3-tiny)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xnoryolo.models import fetch_yolov3_tiny

    files = fetch_yolov3_tiny(Path(args.dest) if args.dest else None)
    print(f"--cfg {files.cfg} --weights {files.weights} --names {files.names}")
    return 0
