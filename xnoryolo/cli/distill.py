"""`xnoryolo distill`: train a binary student from a teacher on the user's footage
(xnoryolo.distill does the training).

Imports xnoryolo.distill, and with it torch, only when run, so registering the subcommand costs
nothing without torch.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import UsageError

TORCH_HINT = "torch is not installed: pip install 'xnoryolo[train]' (e.g. torch==2.13.0, CPU)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "distill",
        help="distill a teacher into a (partly) XNOR student on your own footage",
        description=(
            "Label frames with the teacher (cached), train the student with darknet's exact "
            "inference arithmetic (XNOR layers included) on a YOLO loss on the teacher's "
            "detections in each crop and the teacher's outputs on every anchor (optionally "
            "also its binary layers' pre-activations, with the XNOR layers binarized one by "
            "one, each recalibrated and warm-started: --feature-weight, --progressive, "
            "--warm-steps, --recalibrate), and write OUT/student.weights, OUT/student.xnor, "
            "OUT/student.cfg, OUT/names and OUT/report.json. The last "
            "--holdout fraction of every video/image sequence is held out (by time) and the "
            "student's agreement with the teacher there (mAP@0.5) is reported."
        ),
    )
    p.add_argument("--teacher-cfg", required=True)
    p.add_argument("--teacher-weights", required=True)
    p.add_argument("--student-cfg", required=True, help="student layout (width/height reset)")
    p.add_argument("--names", required=True, help="class names of the teacher")
    p.add_argument("--data", nargs="+", required=True, help="videos, images or image dirs")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--size", type=int, default=416, help="network input width and height")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float, help="training time budget")
    budget.add_argument("--steps", type=int, help="number of optimisation steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256, help="training crop of the network input")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--holdout", type=float, default=0.25, help="held-out fraction (the end)")
    p.add_argument(
        "--heldout-from", type=int, default=None, help="first held-out frame of every sequence"
    )
    p.add_argument("--every", type=int, default=1, help="use every k-th training frame")
    p.add_argument("--label-thresh", type=float, default=0.5, help="teacher score of a label")
    p.add_argument("--eval-minutes", type=float, default=2.0, help="held-out check interval")
    p.add_argument("--checkpoint-minutes", type=float, default=3.0)
    p.add_argument(
        "--float32",
        action="store_true",
        help="train float layers in full float32 (default: float16-exact weights, which "
        "`xnoryolo pack` stores losslessly in half the bytes)",
    )
    p.add_argument("--yolo-weight", type=float, default=1.0, help="YOLO loss on pseudo-labels")
    p.add_argument(
        "--distill-weight", type=float, default=1.0, help="loss matching the teacher's outputs"
    )
    p.add_argument(
        "--feature-weight",
        type=float,
        default=0.0,
        help="matching binary layers' pre-activations to the teacher's (annealed to 0)",
    )
    p.add_argument(
        "--progressive",
        type=float,
        default=0.0,
        help="fraction of the budget over which XNOR layers leave float one by one "
        "(default 0: all binary from the start; 0.3 tried)",
    )
    p.add_argument(
        "--warm-steps",
        type=int,
        default=0,
        help="steps training each layer alone as it binarizes (20 tried)",
    )
    p.add_argument(
        "--recalibrate",
        action="store_true",
        help="re-estimate BN statistics under the binary forward as each layer binarizes, "
        "and before export when that lowers the output distillation loss",
    )
    p.add_argument(
        "--ste-width",
        type=float,
        default=None,
        metavar="K",
        help="straight-through gradient of the binary layers' input signs where |x| <= K "
        "standard deviations of x's channel (default: where |x| <= 1)",
    )
    p.add_argument(
        "--crop-labels",
        choices=["teacher", "cached"],
        default="cached",
        help="YOLO-loss labels: the frame's cached teacher labels moved through the crop "
        "(default) or the teacher run on each augmented crop",
    )
    p.add_argument(
        "--target-agreement",
        type=float,
        default=None,
        metavar="A",
        help="search layouts instead: the fastest (by `xnoryolo bench` frame time) whose "
        "held-out agreement reaches A, binarizing only layers that are XNOR in --student-cfg, "
        "within --minutes; writes OUT/search.md and OUT/search.json",
    )
    p.add_argument(
        "--scan-minutes",
        type=float,
        default=1.0,
        help="layout search: fine-tune minutes of each layer's sensitivity scan",
    )
    p.add_argument(
        "--init-cfg",
        default=None,
        help="start the student from this model instead of the teacher (with --init-weights): "
        "e.g. a student of a less binary layout, to binarize further",
    )
    p.add_argument("--init-weights", default=None, help="weights of --init-cfg (.weights)")
    p.add_argument(
        "--validation",
        type=float,
        default=0.0,
        metavar="FRAC",
        help="keep the last FRAC of every sequence's training frames out of training and end "
        "with the weights of the check that agrees best with the teacher there (default 0: "
        "the last step's weights)",
    )
    p.add_argument(
        "--average",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="evaluate and export an exponential moving average of the weights with this "
        "decay per step (e.g. 0.998; default 0: off)",
    )
    p.add_argument(
        "--class-weight",
        action="append",
        default=[],
        type=_class_weight,
        metavar="NAME=W",
        help="weight the losses' terms for one class (repeatable), e.g. person=2 where the "
        "student misses people the teacher finds (default: all 1)",
    )
    p.add_argument("--backend", default="auto", choices=["auto", "fast", "numpy"])
    p.set_defaults(run=run)


def _class_weight(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = -1.0
    if not sep or not name or not weight >= 0:
        raise argparse.ArgumentTypeError(f"expected NAME=W with W >= 0, not {text!r}")
    return name, weight


def run(args: argparse.Namespace) -> int:
    if args.size % 32 or args.size < 64:
        raise UsageError("--size must be a multiple of 32, at least 64")
    if not 0 <= args.holdout < 1:
        raise UsageError("--holdout must be in [0, 1)")
    if not 0 <= args.validation < 1:
        raise UsageError("--validation must be in [0, 1)")
    if not 0 <= args.average < 1:
        raise UsageError("--average must be in [0, 1)")
    if (args.init_cfg is None) != (args.init_weights is None):
        raise UsageError("--init-cfg and --init-weights go together")
    try:
        from xnoryolo.distill.data import Augment
        from xnoryolo.distill.model import DistillError
        from xnoryolo.distill.train import TrainConfig, distill
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise UsageError(TORCH_HINT) from None

    cfg = TrainConfig(
        size=args.size,
        crop=min(args.crop, args.size),
        batch=args.batch,
        lr=args.lr,
        minutes=args.minutes,
        steps=args.steps,
        seed=args.seed,
        threads=args.threads,
        holdout=args.holdout,
        heldout_from=args.heldout_from,
        every=max(1, args.every),
        label_thresh=args.label_thresh,
        eval_minutes=args.eval_minutes,
        checkpoint_minutes=args.checkpoint_minutes,
        augment=Augment(crop=min(args.crop, args.size)),
        backend=args.backend,
        float16=not args.float32,
        yolo_weight=args.yolo_weight,
        distill_weight=args.distill_weight,
        feature_weight=args.feature_weight,
        progressive=args.progressive,
        warm_steps=args.warm_steps,
        recalibrate=args.recalibrate,
        crop_labels=args.crop_labels,
        ste_width=args.ste_width,
        init_cfg=args.init_cfg,
        init_weights=args.init_weights,
        validation=args.validation,
        average=args.average,
        class_weights=tuple(args.class_weight),
    )

    def log(line: str) -> None:
        print(line, flush=True)

    if args.ste_width is not None and not args.ste_width > 0:
        raise UsageError("--ste-width must be above 0")
    if args.target_agreement is not None:
        if not 0 < args.target_agreement <= 1:
            raise UsageError("--target-agreement must be in (0, 1]")
        if args.minutes is None:
            raise UsageError("--target-agreement needs --minutes (the search's time budget)")
        from xnoryolo.distill.search import search

        try:
            result = search(
                args.teacher_cfg, args.teacher_weights, args.student_cfg, args.names,
                args.data, args.out, cfg, args.target_agreement, args.scan_minutes, log=log,
            )  # fmt: skip
        except DistillError as exc:
            raise UsageError(str(exc)) from None
        best = result["best"]
        print(
            f"explored {len(result['explored'])} layouts in {result['minutes']:.1f} min "
            f"(table: {args.out}/search.md); "
            + (
                f"fastest at agreement >= {args.target_agreement}: {best['cfg']} "
                f"({best['frame_ms']:.1f} ms, agreement {best['agreement']:.3f})"
                if best
                else f"none reached {args.target_agreement} within the budget"
            )
        )
        return 0

    try:
        report = distill(
            args.teacher_cfg,
            args.teacher_weights,
            args.student_cfg,
            args.names,
            args.data,
            args.out,
            cfg,
            resume=args.resume,
            log=log,
        )
    except DistillError as exc:
        raise UsageError(str(exc)) from None
    agree = report["heldout_agreement"]
    undefined = report.get("heldout_agreement_undefined")
    if undefined:
        tail = f"; held-out {undefined}"
    else:
        tail = f"; held-out mAP@0.5 {agree['mAP']:.3f}" if agree else ""
    print(f"wrote {report['out']['weights']} after {report['steps']} steps{tail}")
    return 0
