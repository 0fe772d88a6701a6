"""`xnoryolo detect`: an image (darknet's printed lines, JSON, annotated image) or a video file
(JSON lines, annotated MP4, progress bar)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import UsageError, add_model_args, load_detector, write_atomic

if TYPE_CHECKING:
    from xnoryolo.detector import Detector


def add_parser(sub: Any) -> None:
    p = sub.add_parser("detect", help="detect objects in an image or a video file")
    p.add_argument("source", help="image or video file")
    add_model_args(p, required=False)
    p.add_argument("--thresh", type=float, default=0.25, help="probability threshold")
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold (0 disables)")
    p.add_argument(
        "--json", dest="json_out", help="write detections as JSON (JSON lines for video)"
    )
    p.add_argument("--out", help="write the annotated image or video here")
    p.add_argument("--letter-box", action="store_true", help="letterbox (as darknet -letter_box)")
    p.add_argument("--max-frames", type=int, default=None, help="video: stop after N frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--track", action="store_true", help="video: give boxes track ids")
    p.add_argument(
        "--analysis",
        metavar="YAML",
        help="video: tracking, lines, zones and motion as a stream's settings (implies --track)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    src = Path(args.source)
    if not src.is_file():
        raise UsageError(f"{src}: no such file")
    letter = True if args.letter_box else None
    detector = load_detector(args, thresh=args.thresh, nms=args.nms, letter_box=letter)
    from xnoryolo.detector.video import IMAGE_SUFFIXES

    if src.suffix.lower() in IMAGE_SUFFIXES:
        return _detect_image(detector, src, args)
    return _detect_video(detector, src, args)


def _detect_image(detector: Detector, src: Path, args: argparse.Namespace) -> int:
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
        write_atomic(Path(args.json_out), json.dumps([d.to_json() for d in dets], indent=1))
    if args.out:
        from xnoryolo.detector.draw import draw_detections

        annotated = draw_detections(
            image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dets
        )
        ok, buf = cv2.imencode(Path(args.out).suffix or ".jpg", annotated)
        if not ok:
            raise UsageError(f"{args.out}: cannot encode an image with this file extension")
        write_atomic(Path(args.out), buf.tobytes())
    return 0


def _detect_video(detector: Detector, src: Path, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from xnoryolo.detector.video import (
        NotAVideoError,
        Outputs,
        ProcessOptions,
        Progress,
        VideoError,
        probe_video,
        process_video,
    )
    from xnoryolo.tracking.draw import draw_analysis

    analysis = _analysis(args)
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
                src,
                detector,
                ProcessOptions(max_frames=args.max_frames),
                outputs,
                progress,
                analyser=analysis,
                annotate=lambda image, dets: draw_analysis(image, dets, analysis),
            )
    except NotAVideoError:
        # detect tells an image from a video by the file name: a file OpenCV cannot open at all
        # is neither
        raise UsageError(f"{src}: not an image or a video OpenCV can open") from None
    except VideoError as exc:
        raise UsageError(f"{src}: {exc}") from None
    summary = ", ".join(f"{n}: {c}" for n, c in result.counts.most_common()) or "nothing"
    print(
        f"{src}: {result.frames} frames in {result.elapsed_s:.1f} s ({result.fps:.1f} fps); "
        f"detections: {summary}"
    )
    if analysis is not None:
        done = analysis.summary()

        def per_class(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {c}" for n, c in counts.items()) or "0"

        if analysis.tracking:
            print(f"tracks: {done['tracks']}")
        for name, c in done["lines"].items():
            print(f"line {name}: in {per_class(c['in'])}; out {per_class(c['out'])}")
        for name, z in done["zones"].items():
            dwell = z["dwell_s"]
            print(
                f"zone {name}: entered {per_class(z['entered'])}; dwell mean {dwell['mean']} s, "
                f"max {dwell['max']} s"
            )
    return 0


def _analysis(args: argparse.Namespace) -> Any:
    """The FrameAnalysis that --track / --analysis ask for, or None."""
    import yaml
    from pydantic import ValidationError

    from xnoryolo.tracking import AnalysisSpec, FrameAnalysis

    if not args.analysis:
        return FrameAnalysis() if args.track else None
    path = Path(args.analysis)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return FrameAnalysis(AnalysisSpec.model_validate(data))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise UsageError(f"{path}: not a YAML file") from None
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "analysis"
        raise UsageError(f"{path}: {where}: {e['msg']}") from None
