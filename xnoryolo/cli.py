"""`xnoryolo` command line: detect, dump (and the commands later issues add)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xnoryolo import bench
from xnoryolo.service import cli as service_cli


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


def _format_warning(message, category, filename, lineno, line=None):
    return f"xnoryolo: warning: {message}\n"


def _add_model_args(p: argparse.ArgumentParser, names: bool = True, required: bool = True) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xnoryolo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detect", help="detect objects in an image or a video file")
    p.add_argument("source", help="image or video file")
    _add_model_args(p, required=False)
    p.add_argument("--thresh", type=float, default=0.25, help="probability threshold")
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold (0 disables)")
    p.add_argument(
        "--json", dest="json_out", help="write detections as JSON (JSON lines for video)"
    )
    p.add_argument("--out", help="write the annotated image or video here")
    p.add_argument("--letter-box", action="store_true", help="letterbox (as darknet -letter_box)")
    p.add_argument("--max-frames", type=int, default=None, help="video: stop after N frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("models", help="fetch the reference yolov3-tiny (checksum-verified)")
    p.add_argument("action", choices=["fetch"])
    p.add_argument("--dest", help="directory (default: ~/.cache/xnoryolo/models/yolov3-tiny)")

    p = sub.add_parser("dump", help="write every layer's output for an input tensor (.npy)")
    _add_model_args(p, names=False)
    p.add_argument("--input", required=True, help="(c, h, w) float32 .npy input tensor")
    p.add_argument("--out", required=True, help="output directory for NNN_<type>.npy files")
    service_cli.add_parser(sub)
    bench.add_parser(sub)

    # commands with their own modules: each adds its parser and sets `run`
    from xnoryolo import evaluate, pack
    from xnoryolo.distill import command as distill

    for module in (distill, evaluate, pack):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None) is not None and args.threads < 1:
        print("xnoryolo: error: --threads must be >= 1", file=sys.stderr)
        return 2
    from xnoryolo.detector.errors import XnoryoloError

    try:
        if args.command == "detect":
            return cmd_detect(args)
        if args.command == "dump":
            return cmd_dump(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "serve":
            return service_cli.run(args)
        if args.command == "bench":
            return bench.run(args)
        if hasattr(args, "run"):
            return int(args.run(args))
    except (XnoryoloError, UsageError) as exc:
        print(f"xnoryolo: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable output, full disk, ...: one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"xnoryolo: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xnoryolo: interrupted", file=sys.stderr)
        return 130
    return 2


def _load_detector(args: argparse.Namespace, **kwargs: Any):
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
    return Detector.from_files(
        args.cfg, args.weights, args.names, backend=args.backend, threads=args.threads, **kwargs
    )


def cmd_detect(args: argparse.Namespace) -> int:
    src = Path(args.source)
    if not src.is_file():
        raise UsageError(f"{src}: no such file")
    letter = True if args.letter_box else None
    detector = _load_detector(args, thresh=args.thresh, nms=args.nms, letter_box=letter)
    from xnoryolo.detector.video import IMAGE_SUFFIXES

    if src.suffix.lower() in IMAGE_SUFFIXES:
        return _detect_image(detector, src, args)
    return _detect_video(detector, src, args)


def _detect_image(detector, src: Path, args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from xnoryolo.detector.video import read_image

    image = read_image(src, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UsageError(f"{src}: not a decodable image")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    t0 = time.perf_counter()
    dets = detector.detect(image)
    ms = (time.perf_counter() - t0) * 1000
    print(f"{src}: Predicted in {ms:.1f} milli-seconds.", file=sys.stderr)
    for d in dets:
        print(d.darknet_line())
    if args.json_out:
        _write_atomic(Path(args.json_out), json.dumps([d.to_json() for d in dets], indent=1))
    if args.out:
        from xnoryolo.detector.draw import draw_detections

        annotated = draw_detections(
            image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dets
        )
        ok, buf = cv2.imencode(Path(args.out).suffix or ".jpg", annotated)
        if not ok:
            raise UsageError(f"{args.out}: cannot encode an image with this file extension")
        _write_atomic(Path(args.out), buf.tobytes())
    return 0


def _write_atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        tmp.write_text(data + ("\n" if not data.endswith("\n") else ""), encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def _detect_video(detector, src: Path, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from xnoryolo.detector.video import (
        Outputs,
        ProcessOptions,
        Progress,
        VideoError,
        probe_video,
        process_video,
    )

    outputs = Outputs(
        jsonl=Path(args.json_out) if args.json_out else None,
        video=Path(args.out) if args.out else None,
        codecs=("mp4v",),  # what this command has always written
    )
    try:
        total = probe_video(src).frames
        if args.max_frames is not None and total is not None:
            total = min(total, args.max_frames)
        with tqdm(
            total=total, unit="frame", disable=args.quiet, file=sys.stderr, desc=src.name
        ) as bar:

            def progress(p: Progress) -> None:
                if p.frames_total is not None and bar.total != p.frames_total:
                    bar.total = p.frames_total
                bar.update(p.frames_read - bar.n)

            result = process_video(
                src, detector, ProcessOptions(max_frames=args.max_frames), outputs, progress
            )
    except VideoError as exc:
        if str(exc).startswith("not a video"):
            raise UsageError(f"{src}: not an image or a video OpenCV can open") from None
        raise UsageError(f"{src}: {exc}") from None
    summary = ", ".join(f"{n}: {c}" for n, c in result.counts.most_common()) or "nothing"
    print(
        f"{src}: {result.frames} frames in {result.elapsed_s:.1f} s ({result.fps:.1f} fps); "
        f"detections: {summary}"
    )
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    import numpy as np

    from xnoryolo.detector import Network

    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.input}: cannot read a .npy tensor ({exc})") from None
    net = Network.load(args.cfg, args.weights, args.backend, args.threads)
    if x.shape != net.input_shape:
        raise UsageError(
            f"{args.input}: tensor shape {x.shape} does not match the network input "
            f"{net.input_shape} (c, h, w)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for layer, y in zip(net.layers, net.forward(x.astype(np.float32)), strict=True):
        np.save(out / f"{layer.index:03d}_{layer.type}.npy", y)
    print(f"wrote {len(net.layers)} layer outputs to {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from xnoryolo.models import FetchError, fetch_yolov3_tiny

    try:
        files = fetch_yolov3_tiny(Path(args.dest) if args.dest else None)
    except FetchError as exc:
        raise UsageError(str(exc)) from None
    print(f"--cfg {files.cfg} --weights {files.weights} --names {files.names}")
    return 0
