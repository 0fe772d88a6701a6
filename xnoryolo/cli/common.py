"""What every command shares: the usage error, the atomic result writer, the model arguments,
and the one table from error kinds to the line and exit status a user sees.

Imports none of the commands (they import this).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xnoryolo.detector import Detector

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a result file whole or not at all (a reader never sees half of it); text gets a
    final newline. Creates the parent directories."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        tmp.write_text(data + ("\n" if not data.endswith("\n") else ""), encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ model arguments
def add_model_args(p: argparse.ArgumentParser, names: bool = True, required: bool = True) -> None:
    """--cfg, --weights (optional: the shipped default model), --names, --backend, --threads."""
    default = (
        "" if required else " (default: the shipped default model, see xnoryolo/configs/default)"
    )
    p.add_argument("--cfg", required=required, help="darknet .cfg file" + default)
    p.add_argument(
        "--weights", required=required, help="darknet .weights or packed .xnor file" + default
    )
    if names:
        p.add_argument("--names", help="class names, one per line (default: class numbers)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "fast", "numpy"],
        help="convolution kernels: fast (Cython), numpy (reference), auto",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="worker threads (default: XNORYOLO_THREADS or all cores)",
    )
    add_precision_arg(p)


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=["f32", "int8"],
        default=None,
        help="f32: darknet parity; int8: the non-binary convolutions in int8, for a model "
        "calibrated with `xnoryolo pack --calibrate` (default: int8 for such a model, else f32)",
    )


def say_precision(detector: Detector) -> None:
    """One stderr line when a model runs int8 (its results then differ a little from f32)."""
    info = detector.info()
    if info.get("precision") == "int8":
        print(
            f"xnoryolo: running int8 ({info['int8_kernels']}); --precision f32 for darknet parity",
            file=sys.stderr,
        )


def load_detector(args: argparse.Namespace, **kwargs: Any) -> Detector:
    """The Detector of the model arguments; without --cfg/--weights the shipped default model."""
    from xnoryolo.detector import Detector

    if args.weights is None:
        if args.cfg is not None:
            raise UsageError("--cfg needs --weights")
        from xnoryolo.configs import default_model

        args.weights = default_model()
        print(
            f"xnoryolo: using the default model {args.weights.name} (distilled for the demo "
            "scene only, see xnoryolo/configs/default/MODEL.md); pass --cfg/--weights for your own",
            file=sys.stderr,
        )
    detector = Detector.from_files(
        args.cfg,
        args.weights,
        args.names,
        backend=args.backend,
        threads=args.threads,
        precision=getattr(args, "precision", None),
        **kwargs,
    )
    say_precision(detector)
    return detector


# --------------------------------------------------------------------------- what a user sees
def format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """Warnings as one `xnoryolo: warning:` line, without the source line that raised them."""
    return f"xnoryolo: warning: {message}\n"


def check_threads(args: argparse.Namespace) -> None:
    """Every command's --threads (None where a command has none) must be >= 1."""
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be >= 1")


def error_line(exc: Exception) -> str:
    """The one line printed for an error a user can fix."""
    if isinstance(exc, OSError):  # unwritable output, full disk, ...: the file and the reason
        where = f"{exc.filename}: " if exc.filename else ""
        return f"xnoryolo: error: {where}{exc.strerror or exc}"
    return f"xnoryolo: error: {exc}"


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; an error a user can fix is one line on stderr and exit status 2, an
    interrupt exit status 130. Any other exception is a bug and keeps its traceback."""
    # imported here, not at module level: `xnoryolo --help` and argument errors answer
    # without loading NumPy and OpenCV
    from xnoryolo.detector.errors import XnoryoloError
    from xnoryolo.detector.video import FramesError, VideoError
    from xnoryolo.models import FetchError

    user_errors = (UsageError, XnoryoloError, FramesError, VideoError, FetchError, OSError)
    try:
        check_threads(args)
        return int(command(args))
    except user_errors as exc:
        print(error_line(exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("xnoryolo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
