"""A frame's detections: `DetectionTable`, the arrays the decoder makes and a tracker reads,
and `Detection`, one (box, class) pair as the outputs write it. The decoder makes a table;
its `Detection`s are made from it once, with their track ids where a tracker gave them, so a
tracked frame's boxes are neither read back out of objects nor copied to add an id."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected (box, class) pair, as one line of darknet's output.

    x, y, w, h: box centre and size relative to the image (darknet's `detections.json` `final`
    entries; not clipped). left, top, width, height: the same box in pixels, rounded like the
    numbers darknet prints."""

    class_id: int
    name: str
    prob: float
    x: float
    y: float
    w: float
    h: float
    left: int
    top: int
    width: int
    height: int
    objectness: float = 1.0
    best_class: bool = True
    track_id: int | None = None  # set by a tracker (xnoryolo.tracking); absent from JSON if None

    def darknet_line(self) -> str:
        return (
            f"{self.name}: {self.prob * 100:.0f}%\t(left_x: {self.left:4d}   top_y: {self.top:4d}"
            f"   width: {self.width:4d}   height: {self.height:4d})"
        )

    def to_json(self) -> dict[str, Any]:
        """The one JSON form of a detection (CLI, job results, events, /v1/detect; see
        docs/detection-json.md): every field, floats rounded to 6 decimals; `track_id` only
        where a tracker gave the box one."""
        return {
            k: round(v, 6) if isinstance(v, float) else v
            for k, v in asdict(self).items()
            if v is not None or k != "track_id"
        }


_new = object.__new__
_set = object.__setattr__

Names = Sequence[str] | Mapping[int, str]


def printed_corners(boxes: np.ndarray, im_w: int, im_h: int) -> np.ndarray:
    """The pixel corners (N, 4: left, top, left + width, top + height, as float64) of boxes
    (N, 4: x, y, w, h relative, float32) in an im_w x im_h image, rounded as darknet prints
    them: left = round((x - w / 2) * im_w) etc. in float32, C's round() (halves away from
    zero)."""
    f32 = np.float32
    out = np.empty((len(boxes), 4))
    out[:, 0] = (boxes[:, 0] - boxes[:, 2] / f32(2)) * f32(im_w)
    out[:, 1] = (boxes[:, 1] - boxes[:, 3] / f32(2)) * f32(im_h)
    out[:, 2] = boxes[:, 2] * f32(im_w)
    out[:, 3] = boxes[:, 3] * f32(im_h)
    # round() of the float32 values widened to double: exact in double (+ 0.0: no -0.0)
    out = np.copysign(np.floor(np.abs(out) + 0.5), out) + 0.0
    out[:, 2:] += out[:, :2]
    return out


@dataclass(frozen=True, eq=False)
class DetectionTable:
    """Row i is the i-th detection in darknet's print order: class class_ids[i] (name
    names[class_ids[i]]) with probability probs[i]; rel[i] its box's centre and size relative
    to the image (x, y, w, h), corners[i] the same box in whole pixels as darknet prints it
    (left, top, left + width, top + height, as floats: what a tracker matches);
    objectness[i]; best[i] whether the class is the box's best (the rows of a box's other
    classes follow its best one)."""

    names: Names
    class_ids: np.ndarray  # (N,) int64
    probs: np.ndarray  # (N,) float64
    rel: np.ndarray  # (N, 4) float64
    corners: np.ndarray  # (N, 4) float64, C order
    objectness: np.ndarray  # (N,) float64
    best: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.class_ids)

    @classmethod
    def empty(cls, names: Names) -> DetectionTable:
        return cls(
            names,
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros((0, 4)),
            np.zeros((0, 4)),
            np.zeros(0),
            np.zeros(0, bool),
        )

    @classmethod
    def from_detections(cls, dets: Sequence[Detection]) -> DetectionTable:
        """The table of detections made elsewhere (recorded, or a test's)."""
        if not dets:
            return cls.empty({})
        cols = np.array(
            [
                (d.class_id, d.prob, d.x, d.y, d.w, d.h, d.left, d.top, d.width, d.height)
                for d in dets
            ],
            np.float64,
        )
        corners = np.ascontiguousarray(cols[:, 6:10])
        corners[:, 2:] += corners[:, :2]
        return cls(
            {d.class_id: d.name for d in dets},
            cols[:, 0].astype(np.int64),
            cols[:, 1].copy(),
            np.ascontiguousarray(cols[:, 2:6]),
            corners,
            np.array([d.objectness for d in dets], np.float64),
            np.array([d.best_class for d in dets], bool),
        )

    def only(self, classes: Collection[str]) -> DetectionTable:
        """The rows whose class name is one of `classes`."""
        keep = np.fromiter(
            (self.names[c] in classes for c in self.class_ids.tolist()), bool, len(self)
        )
        if keep.all():
            return self
        return DetectionTable(
            self.names,
            self.class_ids[keep],
            self.probs[keep],
            self.rel[keep],
            self.corners[keep],
            self.objectness[keep],
            self.best[keep],
        )

    def detections(self, track_ids: np.ndarray | None = None) -> list[Detection]:
        """The rows as `Detection`s, row i with track id track_ids[i] where that is >= 0."""
        pixels = self.corners.astype(np.int64)
        pixels[:, 2:] -= pixels[:, :2]
        names = self.names
        ids: list[int] | list[None]
        ids = [None] * len(self) if track_ids is None else track_ids.tolist()
        out = []
        # a frozen dataclass (no __slots__) given its instance dict whole: through the
        # generated __init__ (one object.__setattr__ per field) it costs ~5x as much, per
        # box per frame
        for c, p, (x, y, w, h), (left, top, width, height), o, b, tid in zip(
            self.class_ids.tolist(),
            self.probs.tolist(),
            self.rel.tolist(),
            pixels.tolist(),
            self.objectness.tolist(),
            self.best.tolist(),
            ids,
            strict=True,
        ):
            d = _new(Detection)
            _set(
                d,
                "__dict__",
                {
                    "class_id": c,
                    "name": names[c],
                    "prob": p,
                    "x": x,
                    "y": y,
                    "w": w,
                    "h": h,
                    "left": left,
                    "top": top,
                    "width": width,
                    "height": height,
                    "objectness": o,
                    "best_class": b,
                    "track_id": tid if tid is None or tid >= 0 else None,
                },
            )
            out.append(d)
        return out
