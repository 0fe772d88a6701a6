"""`xnoryolo bench`: per-layer and whole-frame timings, against OpenCV DNN in the same process.

Whole frame = preprocess + network + decode + NMS on one synthetic 768x576 BGR frame, timed on
the path `Detector.detect` takes; per-layer times come from separate runs of that same path
with a timestamp after every layer (binary layers there take and hand on packed sign bits,
kernels/README.md), so they add up to the frame's network time.
Weights are random unless --weights is given (timings do not depend on their values; the
threshold is raised to 0.5 by default so random heads do not make NMS quadratic). Binary layers
report Gbit-MAC/s (filters x taps x output pixels per second) and their share of a popcount
peak measured here with the same SIMD path and thread count, sampled between the timed runs
(its median: both sides of the share see the same machine load). OpenCV runs the float twin of the
cfg (xnor=1 removed: what OpenCV does with an XNOR cfg anyway) with the same weights.
All times are medians over --runs runs after --warmup runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import report
from .cfg import read_cfg
from .frame import synthetic_frame
from .network import build, parse_network, resolve_threads
from .peer_bench import TIERS
from .peers import PeerTimes, opencv_frame
from .timing import PeakSampler, time_frame, time_frames, time_layers

__all__ = ["add_parser", "run", "synthetic_frame"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench", help="time every layer and the whole frame, and OpenCV DNN on the same frame"
    )
    p.add_argument("--cfg", required=True, help="darknet .cfg file")
    p.add_argument("--weights", help="darknet .weights file (default: random weights)")
    p.add_argument("--size", type=int, default=416, help="network width and height (default 416)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="worker threads for xnoryolo and OpenCV (default: XNORYOLO_THREADS or all cores)",
    )
    p.add_argument(
        "--backend", default="fast", choices=["fast", "numpy"], help="convolution kernels"
    )
    p.add_argument(
        "--simd", help="force a SIMD path: portable, popcnt, avx2, avx512, neon (default: best)"
    )
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--thresh", type=float, default=0.5, help="detection threshold (default 0.5)")
    p.add_argument("--no-opencv", action="store_true", help="skip the OpenCV DNN comparison")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--precision",
        choices=("f32", "int8"),
        default="f32",
        help="f32 (darknet parity) or int8 non-binary convolutions, calibrated on --frames "
        "frames of --calibrate (default f32)",
    )
    p.add_argument(
        "--act-bits",
        type=int,
        choices=(8, 7),
        default=8,
        help="--precision int8: activation bits of the int8 inputs but the first (default 8)",
    )
    p.add_argument(
        "--tracking",
        action="store_true",
        help="also time motion gating, tracking, lines and zones per frame (30 objects, 10 fps)",
    )
    peers = p.add_argument_group(
        "peers",
        "--peers: network forward of OpenCV DNN, ONNX Runtime, OpenVINO and xnoryolo, "
        "f32 and int8 (needs the .[peers] extra)",
    )
    peers.add_argument(
        "--peers", action="store_true", help="time the peer engines instead of the layers"
    )
    peers.add_argument(
        "--isa",
        help="cap every engine to ISA tiers, each in a process of its own: "
        f"{', '.join(TIERS)}, a comma-separated list, or all (default: uncapped)",
    )
    peers.add_argument(
        "--calibrate",
        help="video, image or directory of images the int8 peers calibrate on and the timed "
        "frame comes from (default: the demo clip)",
    )
    peers.add_argument("--frames", type=int, default=64, help="calibration frames (default 64)")
    peers.add_argument(
        "--engines", help="only the engines whose names contain one of these (comma-separated)"
    )
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    import cv2

    from xnoryolo.detector.errors import XnoryoloError
    from xnoryolo.kernels.blas import blas_threads

    if args.peers:
        from .peer_main import run_peers

        return run_peers(args)
    threads = resolve_threads(args.threads)
    cfg_src = Path(args.cfg)
    cfg_text = read_cfg(str(cfg_src), args.size)
    if args.runs < 1 or args.warmup < 0:
        raise XnoryoloError("--runs must be >= 1 and --warmup >= 0")
    cv2.setNumThreads(threads)
    calibration: list[np.ndarray] = []  # int8's activation ranges
    if args.precision == "int8":
        from xnoryolo.configs import DEMO_CLIP, configs_dir

        from .peer_bench import calibration_frames

        shape_of = parse_network(cfg_text, str(cfg_src))
        source = args.calibrate or str(configs_dir() / DEMO_CLIP)
        calibration = [x[0] for x in calibration_frames(source, args.frames, shape_of)]
    subjects = build(
        cfg_text,
        str(cfg_src),
        args.weights,
        args.backend,
        args.simd,
        threads,
        args.thresh,
        args.precision,
        calibration,
        args.act_bits,
    )
    frame = synthetic_frame()

    sampler = PeakSampler(subjects.simd, threads) if subjects.simd else None
    try:
        per_layer = time_layers(subjects.detector, frame, args.warmup, args.runs, sampler)
    finally:
        if sampler is not None:
            sampler.close()
    frames = time_frames(
        subjects.detector, subjects.detector_1_thread, frame, args.warmup, args.runs
    )
    peak = None if sampler is None else sampler.peak()
    layers = report.layer_rows(subjects.detector.network, per_layer, peak)
    peer = (
        PeerTimes.skipped("skipped (--no-opencv)")
        if args.no_opencv
        else opencv_frame(
            cfg_text, subjects.weights, frame, args.size, args.thresh, args.warmup, args.runs
        )
    )
    result: dict[str, Any] = report.result(
        cfg=str(cfg_src),
        size=args.size,
        threads=threads,
        precision=subjects.detector.network.precision,
        backend=args.backend,
        simd=subjects.simd,
        runs=args.runs,
        frames=frames,
        peer=peer,
        opencv_version=cv2.__version__,
        peak=peak,
        peak_best=None if sampler is None else max(sampler.samples),
        blas_threads_controlled=blas_threads(threads),
        layers=layers,
    )
    if args.tracking:  # see bench/tracking.py
        from .tracking import analysis_cost

        # shared against one thread's inference (the twin, or the detector on --threads 1),
        # as a stream runs them (gate, inference, tracking) and back to back
        one = subjects.detector_1_thread or subjects.detector
        result["analysis"] = analysis_cost(infer=lambda: sum(time_frame(one, frame)))
        warm = analysis_cost()
        result["analysis"]["back_to_back"] = {
            k: warm[k] for k in ("motion_gate_ms", "tracking_lines_zones_ms", "total_ms")
        }
    print(json.dumps(result) if args.json else report.format_table(result))
    if args.tracking and not args.json:
        from .tracking import format_cost

        print(format_cost(result["analysis"]))
    return 0
