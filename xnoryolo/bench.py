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
import os
import re
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


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
    p.set_defaults(run=run)
    return p


def _resize_cfg(text: str, size: int) -> str:
    """Set width= and height= of the [net] section (the first section) to size."""
    out: list[str] = []
    in_net = False
    seen_section = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_net = not seen_section
            seen_section = True
        elif in_net and re.match(r"^\s*(width|height)\s*=", line):
            key = line.split("=", 1)[0].strip()
            line = f"{key}={size}"
        out.append(line)
    return "\n".join(out) + "\n"


def float_twin(text: str) -> str:
    """The cfg with every xnor=1 / bin_output=1 removed: the float network of the same shape."""
    return "\n".join(
        line for line in text.splitlines() if not re.match(r"^\s*(xnor|bin_output)\s*=", line)
    )


def random_weights(network: Any, seed: int = 0) -> bytes:
    """A darknet .weights file for the network: He-scaled conv weights, sane BN statistics."""
    import numpy as np

    from xnoryolo.detector.layers import ConvolutionalLayer

    rng = np.random.default_rng(seed)
    parts = [np.array([0, 2, 5], "<i4").tobytes(), np.zeros(1, "<u8").tobytes()]
    heads = {d.index - 1 for d in network.detection_layers}
    for layer in network.layers:
        count = layer.weight_floats()
        if not count:
            continue
        if isinstance(layer, ConvolutionalLayer) and not layer.dontload:
            n, k = layer.spec.filters, layer.spec.k
            head = layer.index in heads
            # heads: small logits and a negative bias, so few boxes pass (as with real weights)
            chunks = [np.full(n, -6.0) if head else rng.normal(0, 0.1, n)]
            if layer.batch_normalize and not layer.dontloadscales:
                chunks += [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)]
                chunks.append(rng.uniform(0.5, 1.5, n))
            std = 0.25 / k**0.5 if head else (2.0 / k) ** 0.5
            chunks.append(rng.normal(0, std, n * k))
            values = np.concatenate(chunks)
        else:
            values = rng.uniform(0.5, 1.5, count)
        assert values.size == count
        parts.append(values.astype("<f4").tobytes())
    return b"".join(parts)


def synthetic_frame() -> Any:
    """A 768x576 BGR frame with smooth structure (so activations are not pure noise)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (18, 24, 3), dtype=np.uint8)
    frame = cv2.resize(small, (768, 576), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(0, 16, frame.shape, dtype=np.uint8)
    return np.minimum(frame.astype(np.int16) + noise, 255).astype(np.uint8)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


class PeakSampler:
    """Gbit-MAC/s of xor+popcount+add on L1-resident data (the kernels' formulation, same SIMD
    path), `threads` threads at once, sampled for ~1 ms between the timed runs: the median of
    the samples is the peak the layers' medians are shared against, so both are taken under
    the same machine load (a best-of peak, measured apart, made every share look worse
    whenever the shared machine was busy)."""

    def __init__(self, isa: str, threads: int) -> None:
        from xnoryolo.kernels import xconv

        self._run = xconv.popcount_peak
        self._isa = isa
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
        self.samples: list[float] = []
        # calibrate on one thread: reps for ~1 ms per sample
        self._reps = 20_000
        seconds = min(self._timed_run()[1] for _ in range(3))
        self._reps = max(1_000, int(self._reps * 1e-3 / seconds))

    def _timed_run(self, _: int = 0) -> tuple[int, float]:
        # the loop times itself: a pool hand-off or the buffer's set-up would otherwise be a
        # tenth of a sample
        bits, seconds, _checksum = self._run(self._isa, 64, self._reps)
        return bits, seconds

    def _measure(self) -> float:
        if self._pool is None:
            runs = [self._timed_run()]
        else:
            runs = list(self._pool.map(self._timed_run, range(self._threads)))
        return sum(bits / dt for bits, dt in runs) / 1e9

    def sample(self) -> None:
        self.samples.append(self._measure())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _opencv_frame(cfg_text: str, weights: bytes, frame: Any, args: argparse.Namespace) -> Any:
    """Median whole-frame and forward-only ms of OpenCV DNN on the float twin, or None."""
    import cv2
    import numpy as np

    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
        return None, None, "this OpenCV has no darknet importer"
    with tempfile.TemporaryDirectory(prefix="xnoryolo-bench-") as tmp:
        cfg_path = Path(tmp) / "twin.cfg"
        w_path = Path(tmp) / "twin.weights"
        cfg_path.write_text(float_twin(cfg_text), encoding="utf-8")
        w_path.write_bytes(weights)
        try:
            net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(w_path))
        except cv2.error as exc:
            return None, None, f"OpenCV could not load the float twin: {exc}"
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    names = net.getUnconnectedOutLayersNames()
    h, w = frame.shape[:2]

    def once() -> tuple[float, float]:
        t0 = time.perf_counter()
        blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (args.size, args.size), swapRB=True)
        net.setInput(blob)
        t1 = time.perf_counter()
        outs = net.forward(names)
        t2 = time.perf_counter()
        rows = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outs])
        scores = rows[:, 5:] * rows[:, 4:5]
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(rows)), cls]
        keep = best > args.thresh
        boxes = [
            [float((r[0] - r[2] / 2) * w), float((r[1] - r[3] / 2) * h), float(r[2] * w),
             float(r[3] * h)]
            for r in rows[keep]
        ]  # fmt: skip
        cv2.dnn.NMSBoxes(boxes, best[keep].tolist(), args.thresh, 0.45)
        t3 = time.perf_counter()
        return t3 - t0, t2 - t1

    for _ in range(args.warmup):
        once()
    samples = [once() for _ in range(args.runs)]
    return _median_ms([s[0] for s in samples]), _median_ms([s[1] for s in samples]), None


_BLOCK = 10  # frames per block when the 1-thread twin is timed in turn


def _time_frame(detector: Any, frame: Any) -> tuple[float, float, float]:
    """Seconds of preprocess, network and decode + NMS for one frame, as detect runs them."""
    t0 = time.perf_counter()
    x = detector.preprocess(frame)
    t1 = time.perf_counter()
    outputs = detector.network.forward(x, keep=False)
    t2 = time.perf_counter()
    detector.postprocess(outputs, frame.shape[1], frame.shape[0])
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def run(args: argparse.Namespace) -> int:
    import cv2

    from xnoryolo.detector import Detector, Network
    from xnoryolo.detector.errors import XnoryoloError
    from xnoryolo.detector.layers import ConvolutionalLayer

    threads = args.threads
    if threads is None:
        env = os.environ.get("XNORYOLO_THREADS", "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else os.cpu_count() or 1
    if args.size < 32 or args.size % 32:
        raise XnoryoloError(f"--size {args.size}: must be a positive multiple of 32")
    if args.runs < 1 or args.warmup < 0:
        raise XnoryoloError("--runs must be >= 1 and --warmup >= 0")
    cfg_src = Path(args.cfg)
    try:
        cfg_text = _resize_cfg(cfg_src.read_text(encoding="utf-8", errors="replace"), args.size)
    except OSError as exc:
        raise XnoryoloError(f"{cfg_src}: cannot read: {exc.strerror or exc}") from None
    cv2.setNumThreads(threads)

    with tempfile.TemporaryDirectory(prefix="xnoryolo-bench-") as tmp:
        cfg_path = Path(tmp) / cfg_src.name
        cfg_path.write_text(cfg_text, encoding="utf-8")
        network = Network.from_cfg(cfg_path)
        # the same network on one thread, timed in turn with the first: a same-run ratio
        single = Network.from_cfg(cfg_path) if threads > 1 else None
    weights = Path(args.weights).read_bytes() if args.weights else random_weights(network)
    simd = None
    for net, n in ((network, threads), (single, 1)):
        if net is None:
            continue
        net.load_weights(weights)
        if args.backend == "fast":
            try:
                from xnoryolo.kernels.backend import FastBackend, get_simd
            except ImportError as exc:
                raise XnoryoloError(
                    f"the fast kernels are not built ({exc}); use --backend numpy"
                ) from None
            try:
                simd = args.simd or get_simd()
                net.prepare(FastBackend(threads=n, simd=simd))
            except ValueError as exc:
                raise XnoryoloError(str(exc)) from None
        else:
            net.prepare("numpy", n)
    detector = Detector(network, thresh=args.thresh)
    detector1 = None if single is None else Detector(single, thresh=args.thresh)
    frame = synthetic_frame()

    layers = network.layers
    per_layer: list[list[float]] = [[] for _ in layers]
    pre_s: list[float] = []
    net_s: list[float] = []
    post_s: list[float] = []
    frame_s: list[float] = []
    # per-layer times: the Detector.detect path, a timestamp after every layer
    marks = [0.0] * len(layers)

    def mark(i: int) -> None:
        marks[i] = time.perf_counter()

    sampler = PeakSampler(simd, threads) if simd else None
    for r in range(args.warmup + args.runs):
        x = detector.preprocess(frame)
        start = time.perf_counter()
        network.forward(x, keep=False, on_layer=mark)
        if r >= args.warmup:
            for i in range(len(layers)):
                per_layer[i].append(marks[i] - (marks[i - 1] if i else start))
            if sampler is not None:
                sampler.sample()
    if sampler is not None:
        sampler.close()
    # whole frame: the path Detector.detect takes (outputs dropped once nothing reads them);
    # with threads > 1, blocks of frames alternate with blocks on the 1-thread twin (both
    # see the same machine load; a block's first frame re-warms the caches, untimed)
    frame1_s: list[float] = []
    for _ in range(args.warmup):
        _time_frame(detector, frame)
    done = 0
    while done < args.runs:
        block = min(_BLOCK, args.runs - done)
        if detector1 is not None:
            _time_frame(detector, frame)
        for _ in range(block):
            pre, net_t, post = _time_frame(detector, frame)
            pre_s.append(pre)
            net_s.append(net_t)
            post_s.append(post)
            frame_s.append(pre + net_t + post)
        if detector1 is not None:
            _time_frame(detector1, frame)
            frame1_s.extend(sum(_time_frame(detector1, frame)) for _ in range(block))
        done += block

    peak = statistics.median(sampler.samples) if sampler is not None else None
    bits_plan = network._bits_plan
    rows = []
    for layer, samples in zip(layers, per_layer, strict=True):
        ms = _median_ms(samples)
        row: dict[str, Any] = {
            "index": layer.index,
            "type": layer.type,
            "binary": bool(getattr(layer, "xnor", False)),
            "bits_out": layer.index in bits_plan,
            "ms": round(ms, 4),
            "gbit_macs": None,
            "share_of_peak": None,
        }
        if isinstance(layer, ConvolutionalLayer):
            s = layer.spec
            macs = s.filters * s.k * s.out_h * s.out_w
            row["shape"] = f"{s.c}x{s.h}x{s.w} -> {s.filters}x{s.out_h}x{s.out_w} k{s.size}"
            row["c_mod_64"] = s.c % 64
            if layer.xnor:
                row["gbit_macs"] = round(macs / (ms / 1000.0) / 1e9, 1)
                if peak:
                    row["share_of_peak"] = round(row["gbit_macs"] / peak, 3)
            else:
                row["gflops"] = round(2 * macs / (ms / 1000.0) / 1e9, 1)
        rows.append(row)

    cv_frame = cv_net = None
    cv_note = "skipped (--no-opencv)"
    if not args.no_opencv:
        cv_frame, cv_net, cv_note = _opencv_frame(cfg_text, weights, frame, args)
    frame_ms = _median_ms(frame_s)
    from xnoryolo.kernels.blas import blas_threads

    result: dict[str, Any] = {
        "cfg": str(cfg_src),
        "size": args.size,
        "threads": threads,
        "backend": args.backend,
        "simd": simd,
        "runs": args.runs,
        "frame_ms": round(frame_ms, 3),
        "preprocess_ms": round(_median_ms(pre_s), 3),
        "network_ms": round(_median_ms(net_s), 3),
        "decode_nms_ms": round(_median_ms(post_s), 3),
        "opencv_version": cv2.__version__,
        "opencv_frame_ms": None if cv_frame is None else round(cv_frame, 3),
        "opencv_network_ms": None if cv_net is None else round(cv_net, 3),
        "opencv_note": cv_note,
        "speedup_vs_opencv": None if cv_frame is None else round(cv_frame / frame_ms, 2),
        "frame_ms_1_thread": None if not frame1_s else round(_median_ms(frame1_s), 3),
        "speedup_vs_1_thread": (
            None if not frame1_s else round(_median_ms(frame1_s) / frame_ms, 2)
        ),
        "popcount_peak_gbit_macs": None if peak is None else round(peak, 1),
        "popcount_peak_best_gbit_macs": None if sampler is None else round(max(sampler.samples), 1),
        "blas_threads_controlled": blas_threads(threads),
        "layers": rows,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
    return 0


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"xnoryolo bench: {r['cfg']} {r['size']}x{r['size']}, {r['threads']} thread(s), "
        f"backend {r['backend']} ({r['simd']}), median of {r['runs']} runs",
        "(all on the Detector.detect path; bits out: hands the next layer packed sign bits)",
        "",
        "| layer | type | binary | bits out | ms | Gbit-MAC/s | share of peak |",
        "|---:|---|:-:|:-:|---:|---:|---:|",
    ]
    for row in r["layers"]:
        gb = "" if row["gbit_macs"] is None else f"{row['gbit_macs']:.0f}"
        share = "" if row["share_of_peak"] is None else f"{100 * row['share_of_peak']:.0f}%"
        kind = row["type"] + (f" {row['shape']}" if "shape" in row else "")
        lines.append(
            f"| {row['index']} | {kind} | {'x' if row['binary'] else ''} "
            f"| {'x' if row.get('bits_out') else ''} | {row['ms']:.3f} | {gb} | {share} |"
        )
    cv = r["opencv_frame_ms"]
    lines += [
        "",
        f"popcount peak: {r['popcount_peak_gbit_macs']} Gbit-MAC/s (median of samples between "
        f"the runs; best {r['popcount_peak_best_gbit_macs']})",
        f"frame: {r['frame_ms']:.2f} ms (preprocess {r['preprocess_ms']:.2f}, network "
        f"{r['network_ms']:.2f}, decode+NMS {r['decode_nms_ms']:.2f})",
        (
            f"OpenCV {r['opencv_version']} DNN float twin: frame {cv:.2f} ms "
            f"(network {r['opencv_network_ms']:.2f}) -> xnoryolo is "
            f"{r['speedup_vs_opencv']:.2f}x faster"
            if cv is not None
            else f"OpenCV DNN: {r['opencv_note']}"
        ),
    ]
    if r["frame_ms_1_thread"] is not None:
        lines.append(
            f"same frame on 1 thread (timed in turn): {r['frame_ms_1_thread']:.2f} ms -> "
            f"{r['threads']} threads are {r['speedup_vs_1_thread']:.2f}x faster"
        )
    if not r["blas_threads_controlled"]:
        lines.append("note: numpy's BLAS thread count could not be set (float layers)")
    return "\n".join(lines)
