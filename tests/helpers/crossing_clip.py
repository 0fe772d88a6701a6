"""A rendered clip with known line crossings: people (red and green figures, both class
"person") and a car (blue) walking and driving across a vertical counting line in both
directions, hiding each other on the way; and a detector that finds them by colour, as a
detector would: a figure hidden behind another is not seen, a half-hidden one is seen
smaller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from xnoryolo.detector import Detection, DetectionTable

W, H, FPS, FRAMES = 640, 360, 10.0, 90
COLORS = {"red": (40, 40, 220), "green": (40, 200, 40), "blue": (220, 90, 30)}
NAMES = ["person", "bicycle", "car"]
CLASS_OF = {"red": 0, "green": 0, "blue": 2}


@dataclass(frozen=True)
class Mover:
    color: str
    x0: float
    y: float
    vx: float  # pixels per frame
    w: int
    h: int
    start: int = 0  # first frame it is in the picture
    z: int = 0  # drawing order: higher hides lower

    def box(self, f: int) -> tuple[int, int, int, int] | None:
        if f < self.start:
            return None
        x = self.x0 + self.vx * (f - self.start)
        if x + self.w < 0 or x > W:
            return None
        return int(x), int(self.y), int(x) + self.w, int(self.y) + self.h


# The counting line runs from (0.5, 0.02) down to (0.5, 0.98): moving to the picture's left
# crosses to the right of A→B (y down), "in"; moving right is "out".
MOVERS = (
    Mover("red", 20, 40, 8, 30, 70),  # out
    Mover("green", 610, 60, -7, 30, 70, start=5, z=1),  # in; passes in front of the first red
    Mover("red", 600, 170, -6, 30, 70, start=10),  # in; hidden behind the car at the line
    Mover("blue", 40, 150, 9, 120, 100, start=12, z=2),  # the car: out
    Mover("green", 30, 270, 6, 30, 70, start=3),  # out
    Mover("red", 620, 280, -9, 30, 70, start=20),  # in, past the green one (lower, in front)
)
EXPECTED = {"in": {"person": 3}, "out": {"car": 1, "person": 2}}


def render(f: int) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    cv2.rectangle(img, (0, 0), (W, H // 3), (110, 110, 110), -1)  # some background texture
    for m in sorted(MOVERS, key=lambda m: m.z):
        b = m.box(f)
        if b is not None:
            cv2.rectangle(img, b[:2], (b[2] - 1, b[3] - 1), COLORS[m.color], -1)
    return img


def write_clip(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (W, H))
    for f in range(FRAMES):
        writer.write(render(f))
    writer.release()
    return path


class ColourDetector:
    """Boxes of the figures that show at least a little of their colour."""

    names = NAMES

    def __init__(self) -> None:
        self.calls = 0

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable:
        self.calls += 1
        h, w = image.shape[:2]
        out = []
        for color, bgr in COLORS.items():
            diff = np.abs(image.astype(np.int16) - np.array(bgr, np.int16)).max(axis=2)
            mask = (diff < 40).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            for x, y, bw, bh, area in stats[1:n]:
                if area < 150:
                    continue
                c = CLASS_OF[color]
                out.append(
                    Detection(
                        c,
                        NAMES[c],
                        0.9,
                        (x + bw / 2) / w,
                        (y + bh / 2) / h,
                        bw / w,
                        bh / h,
                        int(x),
                        int(y),
                        int(bw),
                        int(bh),
                    )
                )
        return DetectionTable.from_detections(out)
