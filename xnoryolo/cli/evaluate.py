"""`xnoryolo evaluate`: mAP of a model against a teacher's detections or YOLO txt labels (the
metric itself is xnoryolo.evaluate)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from xnoryolo import evaluate as metric

from .common import UsageError, add_precision_arg, say_precision, write_atomic


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="mAP@0.5 of a model against a teacher's detections or YOLO txt labels",
        description=metric.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cfg", help="model .cfg (a packed .xnor --weights embeds its own)")
    p.add_argument("--weights", required=True, help="model .weights or packed .xnor")
    p.add_argument("--names", help="class names (default: class numbers)")
    p.add_argument("--data", nargs="+", required=True, help="videos, images or image dirs")
    p.add_argument("--teacher-cfg", help="reference model cfg (ground truth = its detections)")
    p.add_argument("--teacher-weights", help="reference model weights")
    p.add_argument(
        "--labels",
        help="directory of YOLO txt labels instead of a teacher: <stem>.txt for images, "
        "<video stem>/<frame index>.txt for video frames",
    )
    p.add_argument("--frames", help="frame range A:B of every source (default: all)")
    p.add_argument("--gt-thresh", type=float, default=0.5, help="teacher detection threshold")
    p.add_argument("--thresh", type=float, default=0.005, help="model detection threshold")
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold for both models")
    p.add_argument("--iou", type=float, default=0.5, help="IoU for a true positive")
    p.add_argument("--json", dest="json_out", help="write the result as JSON")
    p.add_argument("--backend", default="auto", choices=["auto", "fast", "numpy"])
    p.add_argument("--threads", type=int, default=None)
    add_precision_arg(p)  # the model's; a teacher always runs f32
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from xnoryolo.detector import Detector, read_names
    from xnoryolo.detector.video import iter_frames, open_sources, parse_range

    if bool(args.teacher_cfg) != bool(args.teacher_weights):
        raise UsageError("--teacher-cfg and --teacher-weights go together")
    if bool(args.teacher_cfg) == bool(args.labels):
        raise UsageError("give either --teacher-cfg/--teacher-weights or --labels")
    names = read_names(args.names) if args.names else None
    sources = open_sources(args.data)
    start, stop = parse_range(args.frames)
    model = Detector.from_files(
        args.cfg,
        args.weights,
        args.names,
        args.backend,
        args.threads,
        precision=args.precision,
        thresh=args.thresh,
    )
    say_precision(model)
    model.nms = args.nms
    teacher = None
    if args.teacher_cfg:
        teacher = Detector.from_files(
            args.teacher_cfg, args.teacher_weights, None, args.backend, args.threads, "f32"
        )
        teacher.thresh, teacher.nms = args.gt_thresh, args.nms
    preds: list[list[metric.Box]] = []
    truths: list[list[metric.Box]] = []
    for src in sources:
        end = src.count if stop is None else min(stop, src.count)
        for i, frame in iter_frames(src, range(start, end)):
            preds.append(metric.detections_to_boxes(model.detect(frame)))
            if teacher is not None:
                truths.append(metric.detections_to_boxes(teacher.detect(frame)))
            else:
                rel = f"{src.path.stem}/{i}.txt" if src.is_video else f"{src.images[i].stem}.txt"
                truths.append(metric.read_yolo_labels(Path(args.labels) / rel))
    if not truths:
        raise UsageError("no frames in the given range")
    result = metric.evaluate(preds, truths, args.iou)
    print(metric.format_result(result, names or model.names))
    if not result.defined:
        what = "the teacher detects nothing above --gt-thresh" if teacher else "no label boxes"
        print(
            f"agreement undefined: {what} in frames {args.frames or 'all'}; evaluate frames "
            "that show objects (--frames A:B; for a distilled student, the frames it held out "
            "with --heldout-from)"
        )
    if args.json_out:
        write_atomic(
            Path(args.json_out), json.dumps(result.to_json(names or model.names), indent=1)
        )
    sys.stdout.flush()
    return 0
