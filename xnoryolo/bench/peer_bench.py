"""`xnoryolo bench --peers`: the network forward of OpenCV DNN, ONNX Runtime and OpenVINO (f32
and int8, quantised on the same real frames) beside xnoryolo's, in one process, on 1 and 2
threads, in interleaved blocks (every engine and thread count sees the same machine load),
medians.

One run of `run_tier` is one ISA tier: `--isa` caps every engine that can be capped at once
(OpenVINO through `ONEDNN_MAX_CPU_ISA`, which oneDNN reads once when it starts, ours through
`XNORYOLO_SIMD`), so each tier runs in a child process of its own (`tier.py`) with that
environment. ONNX Runtime's kernels (MLAS) pick their ISA from cpuid and have no cap; OpenCV's
dispatched kernels honour `OPENCV_CPU_DISABLE`, which the AVX2 tiers set.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .engines import ENGINES, Engine, Forward, Inputs, Unavailable

# what --isa sets for each tier: oneDNN's cap (OpenVINO), our SIMD path, OpenCV's disabled
# dispatch targets
TIERS: dict[str, dict[str, str]] = {
    "amx": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX",
        "XNORYOLO_SIMD": "avx512",
        "XNORYOLO_INT8_SIMD": "amx",
    },
    "avx512_vnni": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI",
        "XNORYOLO_SIMD": "avx512",
        "XNORYOLO_INT8_SIMD": "avx512vnni",
    },
    "avx2_vnni": {
        "ONEDNN_MAX_CPU_ISA": "AVX2_VNNI",
        "XNORYOLO_SIMD": "avx2",
        "XNORYOLO_INT8_SIMD": "avxvnni",
        "OPENCV_CPU_DISABLE": "AVX512-SKX",
    },
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "XNORYOLO_SIMD": "avx2",
        "XNORYOLO_INT8_SIMD": "avx2",
        "OPENCV_CPU_DISABLE": "AVX512-SKX",
    },
}
BLOCK = 5  # timed runs of one engine before the next engine's block
THREADS = (1, 2)


def cpu_name() -> str:
    """The CPU's model name and the ISA extensions the tiers are about."""
    import platform

    name, flags = "", set[str]()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    wanted = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16", "asimddp")
    name = name or platform.processor() or platform.machine()
    have = [f for f in wanted if f in flags]
    return f"{name} ({', '.join(have)})" if have else name


def calibration_frames(source: str, count: int, network: Any) -> list[np.ndarray]:
    """`count` frames spread evenly over a video, image or directory of images, each
    preprocessed as `Detector.detect` preprocesses it: (1, C, H, W) float32."""
    from xnoryolo.detector import Detector
    from xnoryolo.detector.errors import XnoryoloError
    from xnoryolo.detector.video import FramesError, iter_frames, open_source

    try:
        src = open_source(source)
        n = min(count, src.count)
        indices = [round(i * (src.count - 1) / max(1, n - 1)) for i in range(n)]
        frames = [f for _, f in iter_frames(src, indices)]
    except FramesError as exc:
        raise XnoryoloError(f"--calibrate: {exc}") from None
    if not frames:
        raise XnoryoloError(f"--calibrate {source}: no frame could be read")
    detector = Detector(network)
    return [detector.preprocess(f)[None].astype(np.float32) for f in frames]


def onnx_check(inputs: Inputs, network: Any) -> dict[str, Any]:
    """ONNX Runtime's outputs of the exported graph against our f32 forward on the timed
    frame: the largest absolute difference and the largest output magnitude."""
    from .onnx_graph import output_layers

    try:
        import onnxruntime as ort
    except ImportError:
        return {"ok": None, "note": "onnxruntime is not installed"}
    from xnoryolo.detector.backends.fast import fast_backend
    from xnoryolo.kernels.backend import get_simd

    network.prepare(fast_backend(1, inputs.backend_simd or get_simd()))
    ours = network.forward(inputs.x[0])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    theirs = ort.InferenceSession(inputs.onnx_model, opts).run(None, {"input": inputs.x})
    diff = max(
        float(np.abs(ours[j] - t[0]).max())
        for j, t in zip(output_layers(network), theirs, strict=True)
    )
    scale = max(float(np.abs(ours[j]).max()) for j in output_layers(network))
    return {
        "ok": diff <= 1e-4 * max(1.0, scale),
        "max_abs_diff": diff,
        "max_abs_output": round(scale, 3),
    }


def make_inputs(
    cfg_text: str, weights: bytes, calibrate: str, frames: int, simd: str | None
) -> tuple[Inputs, dict[str, Any]]:
    """The shared inputs of every engine, and the ONNX check of the exported graph."""
    from xnoryolo.detector import Network
    from xnoryolo.detector.cfg import parse_cfg_text
    from xnoryolo.detector.errors import XnoryoloError

    from .cfg import float_twin
    from .onnx_graph import ExportError, to_onnx

    twin_text = float_twin(cfg_text)
    twin = Network.from_cfg(parse_cfg_text(twin_text, "<float twin>"))
    twin.load_weights(weights)
    try:
        model = to_onnx(twin)
    except ImportError:
        raise XnoryoloError("onnx is not installed (pip install 'xnoryolo[peers]')") from None
    except ExportError as exc:
        raise XnoryoloError(f"ONNX export of the float twin: {exc}") from None
    calib = calibration_frames(calibrate, frames, twin)
    inputs = Inputs(cfg_text, twin_text, weights, model, calib[0], calib, simd)
    return inputs, onnx_check(inputs, twin)


def _build(
    engine: Engine, inputs: Inputs, threads: int, warmup: int
) -> tuple[Forward | None, str | None]:
    try:
        forward = engine.build(inputs, threads)
        for _ in range(max(1, warmup)):
            forward()
    except Unavailable as exc:
        return None, str(exc)
    except Exception as exc:  # a peer failing is a line in the report, never a traceback
        return None, f"failed: {_one_line(exc)}"
    return forward, None


def _one_line(exc: BaseException) -> str:
    # the peers' messages nest their call sites; the last line says what went wrong
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:240]


def time_engines(
    engines: Sequence[Engine],
    inputs: Inputs,
    threads: Sequence[int],
    runs: int,
    warmup: int,
) -> tuple[dict[tuple[str, int], list[tuple[float, float]]], dict[tuple[str, int], str]]:
    """(wall, process CPU) seconds of every timed forward per (engine, thread count), and the
    notes of those that did not run. CPU time is what the forward cost with the machine to
    itself, on a shared one too: on one thread it is the wall time less the time others held
    the core (an engine whose idle threads spin pays for that spinning in it).
    Blocks of BLOCK runs go round the engines, and within an engine round its thread counts,
    until each has `runs`: an engine's 1- and 2-thread blocks run back to back, so its
    two-thread speed-up compares the machine with itself, not with the machine of minutes
    before. Each block starts with an untimed run (the previous block evicted the caches)."""
    live: dict[tuple[str, int], Forward] = {}
    notes: dict[tuple[str, int], str] = {}
    for engine in engines:
        for n in threads:
            forward, note = _build(engine, inputs, n, warmup)
            if forward is None:
                notes[engine.name, n] = note or "failed"
            else:
                live[engine.name, n] = forward
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {key: [] for key in live}
    done = 0
    while done < runs and live:
        block = min(BLOCK, runs - done)
        for key, forward in list(live.items()):
            try:
                forward()
                for _ in range(block):
                    t0, c0 = time.perf_counter(), time.process_time()
                    forward()
                    samples[key].append((time.perf_counter() - t0, time.process_time() - c0))
            except Exception as exc:
                notes[key] = f"failed while timed: {_one_line(exc)}"
                del live[key], samples[key]
        done += block
    return samples, notes


def engine_list(cfg_text: str, twin_text: str, only: str | None) -> list[Engine]:
    """ENGINES less those `--engines` leaves out, less the cfg-as-given ones where the cfg is
    its own float twin."""
    binary = twin_text.strip() != cfg_text.strip()
    chosen = [e for e in ENGINES if binary or not e.name.startswith("xnoryolo cfg")]
    if only:
        wanted = [w.strip() for w in only.split(",") if w.strip()]
        chosen = [e for e in chosen if any(w in e.name for w in wanted)]
    return chosen


def run_tier(config: dict[str, Any]) -> dict[str, Any]:
    """One tier's result (JSON-ready): config is what `bench --peers` was asked (cfg_text,
    weights_path, calibrate, frames, runs, warmup, engines, isa)."""
    # the quantisers print progress and advice; stdout carries only the result
    with contextlib.redirect_stdout(sys.stderr), _quiet_peers():
        return _run_tier(config)


@contextlib.contextmanager
def _quiet_peers() -> Iterator[None]:
    """The peers' own logging (ORT's quantiser advice, NNCF's progress) at errors only."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    nncf_logger = logging.getLogger("nncf")
    nncf_level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        nncf_logger.setLevel(nncf_level)


def _run_tier(config: dict[str, Any]) -> dict[str, Any]:
    weights = Path(config["weights_path"]).read_bytes()
    isa = config.get("isa")
    simd = TIERS[isa]["XNORYOLO_SIMD"] if isa else None
    if simd is not None:
        from xnoryolo.kernels.backend import available_simd

        if simd not in available_simd():
            return {"isa": isa, "note": f"this CPU cannot run our {simd} path", "engines": []}
    inputs, check = make_inputs(
        config["cfg_text"], weights, config["calibrate"], config["frames"], simd
    )
    inputs.isa = isa
    engines = engine_list(config["cfg_text"], inputs.twin_text, config.get("engines"))
    # progress on stderr (stdout carries the result; a tier takes a minute or more)
    print(
        f"bench --peers [{isa or 'uncapped'}]: {len(engines)} engines on "
        f"{' and '.join(map(str, THREADS))} thread(s)...",
        file=sys.stderr,
        flush=True,
    )
    samples, notes = time_engines(engines, inputs, THREADS, config["runs"], config["warmup"])
    rows = []
    for engine in engines:
        ms: dict[str, float | None] = {}
        cpu_ms: dict[str, float | None] = {}
        note = None
        for threads in THREADS:
            got = samples.get((engine.name, threads))
            ms[str(threads)] = _median_ms([s[0] for s in got]) if got else None
            cpu_ms[str(threads)] = _median_ms([s[1] for s in got]) if got else None
            note = note or notes.get((engine.name, threads))
        rows.append(
            {"name": engine.name, "capped": engine.capped, "ms": ms, "cpu_ms": cpu_ms,
             "note": note}
        )  # fmt: skip
    _ratios(rows)
    return {
        "isa": isa,
        "env": TIERS.get(isa or "", {}),
        "calibration_frames": len(inputs.calibration),
        "onnx_check": check,
        "engines": rows,
    }


def _median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1e3, 3)


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Per engine and thread count: OpenCV's time over its time (speed-up over OpenCV DNN) and
    its time over xnoryolo f32's (below 1: faster than ours); and its 1-thread time over its
    2-thread time."""
    by_name = {r["name"]: r["ms"] for r in rows}
    by_cpu = {r["name"]: r["cpu_ms"] for r in rows}
    for r in rows:
        refs = (("speedup_vs_opencv", "opencv dnn f32"), ("vs_xnoryolo_f32", "xnoryolo f32"))
        for key, ref in refs:
            base = by_name.get(ref, {})
            out: dict[str, float | None] = {}
            for t, ms in r["ms"].items():
                b = base.get(t)
                if ms is None or b is None:
                    out[t] = None
                elif key == "speedup_vs_opencv":
                    out[t] = round(b / ms, 2)
                else:
                    out[t] = round(ms / b, 2)
            r[key] = out
        ours_cpu = by_cpu.get("xnoryolo f32", {}).get("1")
        cpu = r["cpu_ms"].get("1")
        r["cpu_vs_xnoryolo_f32_1_thread"] = (
            None if cpu is None or not ours_cpu else round(cpu / ours_cpu, 2)
        )
        one, two = r["ms"].get("1"), r["ms"].get("2")
        r["speedup_2_threads"] = None if one is None or two is None else round(one / two, 2)


def format_tables(result: dict[str, Any]) -> str:
    lines = [
        f"xnoryolo bench --peers: {result['cfg']} {result['size']}x{result['size']}, network "
        f"forward, median of {result['runs']} runs per engine and thread count in interleaved "
        f"blocks of {BLOCK}",
        f"CPU: {result['cpu']}",
    ]
    for tier in result["tiers"]:
        lines += ["", f"tier: {tier['isa'] or 'uncapped (best of each engine)'}"]
        if tier.get("note"):
            lines.append(f"  {tier['note']}")
            continue
        check = tier["onnx_check"]
        if check.get("ok") is None:
            lines.append(f"ONNX graph check: {check.get('note')}")
        else:
            lines.append(
                f"ONNX graph vs xnoryolo f32: max |diff| {check['max_abs_diff']:.2e} "
                f"(outputs up to {check['max_abs_output']}) -> "
                + ("ok" if check["ok"] else "MISMATCH")
            )
        lines += [
            f"calibration: {tier['calibration_frames']} frames of {result['calibrate']}",
            "",
            "| engine | 1 thread ms | 2 threads ms | 2 vs 1 | vs OpenCV (1 t) "
            "| time / xnoryolo f32 (1 t) | 1 thread CPU ms | CPU / xnoryolo f32 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in tier["engines"]:
            if r["ms"]["1"] is None and r["ms"]["2"] is None:
                lines.append(f"| {r['name']} | {r['note']} | | | | | | |")
                continue

            def f(v: float | None, suffix: str = "") -> str:
                return "" if v is None else f"{v:.2f}{suffix}"

            name = r["name"] + ("" if r["capped"] or not tier["isa"] else " (not capped)")
            lines.append(
                f"| {name} | {f(r['ms']['1'])} | {f(r['ms']['2'])} "
                f"| {f(r['speedup_2_threads'], 'x')} "
                f"| {f(r['speedup_vs_opencv']['1'], 'x')} | {f(r['vs_xnoryolo_f32']['1'])} "
                f"| {f(r['cpu_ms']['1'])} | {f(r['cpu_vs_xnoryolo_f32_1_thread'])} |"
            )
    return "\n".join(lines)
