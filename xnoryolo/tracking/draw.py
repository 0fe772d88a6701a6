"""Annotated frames with the analysis on them: counting lines with their direction and
counts, zones with who is inside, and the boxes labelled with their track ids."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from xnoryolo.detector import Detection
from xnoryolo.detector.draw import draw_detections

from .analysis import FrameAnalysis

LINE_COLOR = (0, 215, 255)  # BGR amber
ZONE_COLOR = (255, 160, 0)  # BGR azure


def _label(out: np.ndarray, text: str, org: tuple[int, int], scale: float, color: tuple) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    h, w = out.shape[:2]
    x = max(0, min(org[0], w - tw - 4))
    y = max(th + base + 2, min(org[1], h - 2))
    cv2.rectangle(out, (x, y - th - base - 2), (x + tw + 4, y + 1), color, -1)
    cv2.putText(
        out, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
    )


def draw_analysis(
    image: np.ndarray, detections: Sequence[Detection], analysis: FrameAnalysis | None
) -> np.ndarray:
    """A copy of `image` with the boxes, and the lines and zones of `analysis` with their
    counts so far."""
    out = draw_detections(image, detections)
    if analysis is None or not (analysis.lines or analysis.zones):
        return out
    h, w = out.shape[:2]
    size = np.array([w, h], dtype=np.float64)
    thick = max(2, round(min(h, w) / 250))
    scale = max(0.4, min(h, w) / 900)
    summary = analysis.summary()
    if analysis.zones:
        shade = out.copy()
        for zone in analysis.zones:
            poly = np.round(np.array(zone.spec.points) * size).astype(np.int32)
            cv2.fillPoly(shade, [poly], ZONE_COLOR)
        cv2.addWeighted(shade, 0.2, out, 0.8, 0, dst=out)
        for zone in analysis.zones:
            poly = np.round(np.array(zone.spec.points) * size).astype(np.int32)
            cv2.polylines(out, [poly], True, ZONE_COLOR, thick, cv2.LINE_AA)
            s = summary["zones"][zone.spec.name]
            inside = sum(s["inside"].values())
            entered = sum(s["entered"].values())
            top = poly[np.argmin(poly[:, 1])]
            _label(
                out,
                f"{zone.spec.name}: {inside} in, {entered} entered",
                (int(top[0]), int(top[1]) - 4),
                scale,
                ZONE_COLOR,
            )
    for line in analysis.lines:
        ends = np.round(np.array(line.spec.points) * size).astype(int)
        (ax, ay), (bx, by) = (int(v) for v in ends[0]), (int(v) for v in ends[1])
        cv2.line(out, (ax, ay), (bx, by), LINE_COLOR, thick, cv2.LINE_AA)
        # an arrow across the middle, pointing to the side a crossing counts "in"
        mx, my = (ax + bx) / 2, (ay + by) / 2
        dx, dy = bx - ax, by - ay
        norm = max(1e-6, float(np.hypot(dx, dy)))
        nx, ny = -dy / norm, dx / norm  # the right of A→B with y down
        tip = (int(mx + nx * 8 * thick * 2), int(my + ny * 8 * thick * 2))
        cv2.arrowedLine(out, (int(mx), int(my)), tip, LINE_COLOR, thick, cv2.LINE_AA, 0, 0.35)
        s = summary["lines"][line.spec.name]
        _label(
            out,
            f"{line.spec.name}: in {s['total_in']}  out {s['total_out']}",
            (min(ax, bx), min(ay, by) - 6),
            scale,
            LINE_COLOR,
        )
    return out
