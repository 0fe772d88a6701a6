"""What `xnoryolo bench` prints: one JSON object (its keys are documented output), or the table
built from that same object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .peers import PeerTimes
from .timing import FrameTimes, median_ms

if TYPE_CHECKING:
    from xnoryolo.detector import Network


def layer_rows(
    network: Network, per_layer: Sequence[Sequence[float]], peak: float | None
) -> list[dict[str, Any]]:
    """Per layer: median ms, whether it is binary and hands on sign bits; convolutions add their
    shape and Gbit-MAC/s (binary, with the share of the peak) or GFLOP/s (float)."""
    from xnoryolo.detector.layers import ConvolutionalLayer

    bits_plan = network.bits_plan
    rows = []
    for layer, samples in zip(network.layers, per_layer, strict=True):
        ms = median_ms(samples)
        conv = layer if isinstance(layer, ConvolutionalLayer) else None
        row: dict[str, Any] = {
            "index": layer.index,
            "type": layer.type,
            "binary": conv is not None and conv.xnor,
            "bits_out": layer.index in bits_plan,
            "ms": round(ms, 4),
            "gbit_macs": None,
            "share_of_peak": None,
        }
        if conv is not None:
            s = conv.spec
            macs = s.filters * s.k * s.out_h * s.out_w
            row["shape"] = f"{s.c}x{s.h}x{s.w} -> {s.filters}x{s.out_h}x{s.out_w} k{s.size}"
            row["c_mod_64"] = s.c % 64
            if conv.xnor:
                row["gbit_macs"] = round(macs / (ms / 1000.0) / 1e9, 1)
                if peak:
                    row["share_of_peak"] = round(row["gbit_macs"] / peak, 3)
            else:
                row["gflops"] = round(2 * macs / (ms / 1000.0) / 1e9, 1)
        rows.append(row)
    return rows


def result(
    *,
    cfg: str,
    size: int,
    threads: int,
    precision: str,
    backend: str,
    simd: str | None,
    runs: int,
    frames: FrameTimes,
    peer: PeerTimes,
    opencv_version: str,
    peak: float | None,
    peak_best: float | None,
    blas_threads_controlled: bool,
    layers: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON object of a bench run (medians, rounded as documented)."""
    frame_ms = median_ms(frames.frame)
    frame1_ms = median_ms(frames.frame_1_thread) if frames.frame_1_thread else None
    return {
        "cfg": cfg,
        "size": size,
        "threads": threads,
        "precision": precision,
        "backend": backend,
        "simd": simd,
        "runs": runs,
        "frame_ms": round(frame_ms, 3),
        "preprocess_ms": round(median_ms(frames.preprocess), 3),
        "network_ms": round(median_ms(frames.network), 3),
        "decode_nms_ms": round(median_ms(frames.decode_nms), 3),
        "opencv_version": opencv_version,
        "opencv_frame_ms": None if peer.frame_ms is None else round(peer.frame_ms, 3),
        "opencv_network_ms": None if peer.network_ms is None else round(peer.network_ms, 3),
        "opencv_note": peer.note,
        "speedup_vs_opencv": None if peer.frame_ms is None else round(peer.frame_ms / frame_ms, 2),
        "frame_ms_1_thread": None if frame1_ms is None else round(frame1_ms, 3),
        "speedup_vs_1_thread": None if frame1_ms is None else round(frame1_ms / frame_ms, 2),
        "popcount_peak_gbit_macs": None if peak is None else round(peak, 1),
        "popcount_peak_best_gbit_macs": None if peak_best is None else round(peak_best, 1),
        "blas_threads_controlled": blas_threads_controlled,
        "layers": layers,
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"xnoryolo bench: {r['cfg']} {r['size']}x{r['size']}, {r['threads']} thread(s), "
        f"{r['precision']}, backend {r['backend']} ({r['simd']}), median of {r['runs']} runs",
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
