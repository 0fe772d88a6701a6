"""The per-frame cost of what runs around inference on a live stream: the motion gate on the
full frame, then tracking, two counting lines and two zones over `objects` moving boxes at
`fps`. Medians of per-frame times. `xnoryolo bench --tracking` runs one inference between
each frame's gate and its tracking, as a stream does (same load, and the caches the
inference leaves behind), and shares the analysis against that inference's median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from xnoryolo.detector import DetectionTable
from xnoryolo.tracking import AnalysisSpec, FrameAnalysis

LINES = [
    {"name": "across", "points": [[0.5, 0.05], [0.5, 0.95]]},
    {"name": "along", "points": [[0.05, 0.6], [0.95, 0.6]]},
]
ZONES = [
    {"name": "left", "points": [[0.05, 0.1], [0.4, 0.1], [0.4, 0.9], [0.05, 0.9]]},
    {"name": "door", "points": [[0.6, 0.2], [0.9, 0.25], [0.85, 0.7], [0.62, 0.65]]},
]


Rows = list[tuple[int, int, float]]


def _scene(objects: int, frames: int, size: tuple[int, int], seed: int) -> list[Rows]:
    """Per frame the objects' (left, top, score) rows, boxes 40 x 90 pixels."""
    rng = np.random.default_rng(seed)
    w, h = size
    pos = rng.uniform([0, 0], [w - 40, h - 90], (objects, 2))
    vel = rng.uniform(-12, 12, (objects, 2))
    out = []
    for _ in range(frames):
        pos = pos + vel
        bounce = (pos < 0) | (pos > [w - 40, h - 90])
        vel[bounce] *= -1
        pos = np.clip(pos, 0, [w - 40, h - 90])
        rows: Rows = []
        for (x, y), s in zip(pos, rng.uniform(0.3, 0.95, objects), strict=True):
            jx, jy = rng.normal(0, 1.5, 2)
            rows.append((int(x + jx), int(y + jy), float(s)))
        out.append(rows)
    return out


def _table(rows: Rows, size: tuple[int, int]) -> DetectionTable:
    """The frame's boxes as the detector's decode hands them over (rows of arrays)."""
    w, h = size
    a = np.array(rows, np.float64).reshape(-1, 3)
    n = len(a)
    corners = np.empty((n, 4))
    corners[:, :2] = a[:, :2]
    corners[:, 2:] = a[:, :2] + (40, 90)
    rel = np.empty((n, 4))
    rel[:, 0] = (a[:, 0] + 20) / w
    rel[:, 1] = (a[:, 1] + 45) / h
    rel[:, 2:] = (40 / w, 90 / h)
    return DetectionTable(
        ["person"],
        np.zeros(n, np.int64),
        a[:, 2].copy(),
        rel,
        corners,
        np.ones(n),
        np.ones(n, bool),
    )


def analysis_cost(
    objects: int = 30,
    fps: float = 10.0,
    frames: int = 300,
    size: tuple[int, int] = (768, 576),
    seed: int = 0,
    infer: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Median milliseconds per frame of the motion gate and of tracking + lines + zones, and
    with `infer` (one inference, returning its seconds), of that: in a stream's order, the
    gate on the frame the decoder just wrote, then the inference, then tracking, lines and
    zones on its boxes."""
    scene = _scene(objects, frames, size, seed)
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (size[1], size[0], 3), np.uint8) for _ in range(4)]
    for img in images:
        cv2.GaussianBlur(img, (9, 9), 0, dst=img)
    analysis = FrameAnalysis(
        AnalysisSpec.model_validate({"lines": LINES, "zones": ZONES, "motion": True})
    )
    gate_s: list[float] = []
    track_s: list[float] = []
    infer_s: list[float] = []
    frame = np.empty_like(images[0])
    for i, rows in enumerate(scene):
        t = i / fps
        np.copyto(frame, images[i % len(images)])  # the decoder writes the next frame
        t0 = time.perf_counter()
        analysis.wants_inference(frame, t)
        t1 = time.perf_counter()
        if infer is not None:
            infer_s.append(infer())
        # the detector's decode makes the frame's table after its inference (with or without
        # tracking), so it comes to the tracker freshly made, not from long ago
        table = _table(rows, size)
        t2 = time.perf_counter()
        ids, _ = analysis.update(size, table, t, i)
        t3 = time.perf_counter()
        # the boxes are made once from the table, with their ids: what the decoder does for
        # every frame, tracked or not, so not the tracking's cost
        table.detections(ids)
        gate_s.append(t1 - t0)
        track_s.append(t3 - t2)
    warm = frames // 10
    gate = statistics.median(gate_s[warm:]) * 1000
    track = statistics.median(track_s[warm:]) * 1000
    inference = statistics.median(infer_s[warm:]) * 1000 if infer_s else None
    return {
        "objects": objects,
        "fps": fps,
        "frames": frames,
        "frame_size": list(size),
        "motion_gate_ms": round(gate, 4),
        "tracking_lines_zones_ms": round(track, 4),
        "total_ms": round(gate + track, 4),
        "inference_ms": None if inference is None else round(inference, 3),
        "share_pct": None if inference is None else round(100 * (gate + track) / inference, 3),
        "tracks": analysis.summary()["tracks"],
    }


def format_cost(cost: dict[str, Any]) -> str:
    """One line; with the inference (`xnoryolo bench --tracking`) the shares of it, in a
    stream's order and, where timed, back to back."""

    def part(c: dict[str, Any]) -> str:
        text = (
            f"gate {c['motion_gate_ms']:.3f} ms + tracking/lines/zones "
            f"{c['tracking_lines_zones_ms']:.3f} ms = {c['total_ms']:.3f} ms"
        )
        if cost.get("inference_ms"):
            share = c.get("share_pct") or 100 * c["total_ms"] / cost["inference_ms"]
            text += f" = {share:.2f} %"
        return text

    head = (
        f"analysis per frame ({cost['objects']} objects at {cost['fps']:g} fps, 2 lines, "
        f"2 zones, motion gate on {cost['frame_size'][0]}x{cost['frame_size'][1]}; medians)"
    )
    if not cost.get("inference_ms"):
        return f"{head}: {part(cost)}"
    text = (
        f"{head}, against the frame's inference ({cost['inference_ms']:.2f} ms on 1 thread, "
        f"same run): in a stream's order (gate, inference, tracking): {part(cost)}"
    )
    if "back_to_back" in cost:
        text += f"; back to back (warm caches): {part(cost['back_to_back'])}"
    return text
