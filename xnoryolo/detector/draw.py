"""Annotate frames with detections (boxes and labels), the way darknet's predictions.jpg does."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .detector import Detection


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class (golden-ratio hue walk)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """Return a copy of `image` with one box per object and its labels."""
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    scale = max(0.4, min(h, w) / 900)
    labels: dict[tuple[int, int, int, int], list[Detection]] = {}
    for d in detections:
        labels.setdefault((d.left, d.top, d.width, d.height), []).append(d)
    for (left, top, width, height), group in labels.items():
        color = class_color(group[0].class_id)
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(w - 1, left + width), min(h - 1, top + height)
        cv2.rectangle(out, (x0, y0), (x1, y1), color, thick)
        text = ", ".join(f"{d.name} {d.prob * 100:.0f}%" for d in group)
        if group[0].track_id is not None:  # a tracker's id leads the label
            text = f"#{group[0].track_id} {text}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y0 - 2 if y0 - th - base - 2 >= 0 else y0 + th + base + 2
        tx = max(0, min(x0, w - tw - 3))  # keep the label inside the frame
        cv2.rectangle(out, (tx, ty - th - base), (tx + tw + 2, ty + base // 2), color, -1)
        cv2.putText(
            out,
            text,
            (tx + 1, ty - base // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return out
