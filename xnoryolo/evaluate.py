"""`xnoryolo evaluate`: mAP@0.5 of a model against a teacher's detections or YOLO txt labels.

AP is VOC-style with all-point interpolation: per class, every prediction over all frames is
sorted by probability; each is a true positive if its best-IoU ground-truth box of the same
class in the same frame has IoU >= 0.5 and was not matched before (else a false positive).
AP = area under the precision envelope (precision made monotone from the right). mAP is the
mean over classes that have ground truth; classes with predictions only are listed apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# (class_id, prob, x, y, w, h): box centre and size relative to the frame
Box = tuple[int, float, float, float, float, float]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of centre-form boxes a (N, 4) x b (M, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    al, at = a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2
    bl, bt = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
    iw = np.minimum(al[:, None] + a[:, None, 2], bl[None] + b[None, :, 2]) - np.maximum(
        al[:, None], bl[None]
    )
    ih = np.minimum(at[:, None] + a[:, None, 3], bt[None] + b[None, :, 3]) - np.maximum(
        at[:, None], bt[None]
    )
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def average_precision(tp: Sequence[bool] | np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP from the TP flags of predictions sorted by descending score."""
    if n_gt <= 0:
        raise ValueError("AP needs at least one ground-truth box")
    flags = np.asarray(tp, dtype=bool)
    if flags.size == 0:
        return 0.0
    ctp = np.cumsum(flags)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, flags.size + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


@dataclass
class ClassResult:
    ap: float | None  # None: no ground truth for this class
    n_gt: int
    n_pred: int
    tp: int


@dataclass
class EvalResult:
    classes: dict[int, ClassResult] = field(default_factory=dict)
    frames: int = 0
    iou: float = 0.5

    @property
    def defined(self) -> bool:
        """False when the ground truth holds no box at all: there is nothing to agree on."""
        return any(c.ap is not None for c in self.classes.values())

    @property
    def map(self) -> float:
        """Mean AP over classes with ground truth (0.0 when undefined: check `defined`)."""
        aps = [c.ap for c in self.classes.values() if c.ap is not None]
        return float(np.mean(aps)) if aps else 0.0

    def to_json(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        def name(k: int) -> str:
            return names[k] if names is not None and k < len(names) else str(k)

        return {
            "frames": self.frames,
            "iou": self.iou,
            "mAP": round(self.map, 4) if self.defined else None,
            "classes": {
                name(k): {
                    "AP": None if c.ap is None else round(c.ap, 4),
                    "gt": c.n_gt,
                    "pred": c.n_pred,
                    "tp": c.tp,
                }
                for k, c in sorted(self.classes.items())
            },
        }


def evaluate(
    predictions: Sequence[Sequence[Box]], truths: Sequence[Sequence[Box]], iou: float = 0.5
) -> EvalResult:
    """Per-class AP over frames; predictions[i] and truths[i] belong to the same frame."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction frames but {len(truths)} truth frames")
    classes = {int(b[0]) for f in truths for b in f} | {int(b[0]) for f in predictions for b in f}
    result = EvalResult(frames=len(truths), iou=iou)
    for k in sorted(classes):
        gts = [np.array([b[2:6] for b in f if b[0] == k], np.float64) for f in truths]
        n_gt = sum(len(g) for g in gts)
        preds = [
            (float(b[1]), i, np.array(b[2:6], np.float64))
            for i, f in enumerate(predictions)
            for b in f
            if b[0] == k
        ]
        preds.sort(key=lambda p: -p[0])  # stable: ties keep frame order
        used = [np.zeros(len(g), bool) for g in gts]
        flags = []
        for _, i, box in preds:
            hit = False
            if len(gts[i]):
                ious = iou_matrix(box[None], gts[i])[0]
                j = int(np.argmax(ious))
                if ious[j] >= iou and not used[i][j]:
                    used[i][j] = True
                    hit = True
            flags.append(hit)
        ap = average_precision(flags, n_gt) if n_gt else None
        result.classes[k] = ClassResult(ap, n_gt, len(preds), int(sum(flags)))
    return result


def format_result(result: EvalResult, names: Sequence[str] | None = None) -> str:
    if not result.defined:
        lines = [
            f"mAP@{result.iou:g} undefined over {result.frames} frames: the ground truth holds "
            "no boxes there, so there is nothing to agree on"
        ]
    else:
        lines = [f"mAP@{result.iou:g} = {result.map:.4f} over {result.frames} frames"]
    for k, c in sorted(result.classes.items()):
        name = names[k] if names is not None and k < len(names) else str(k)
        ap = "  n/a " if c.ap is None else f"{c.ap:.4f}"
        lines.append(f"  {name:<16s} AP {ap}  gt {c.n_gt:5d}  pred {c.n_pred:6d}  tp {c.tp:5d}")
    return "\n".join(lines)


def detections_to_boxes(dets: Sequence[Any]) -> list[Box]:
    """Engine Detection objects (every class above thresh) -> Box tuples."""
    return [(d.class_id, d.prob, d.x, d.y, d.w, d.h) for d in dets]


def read_yolo_labels(path: Path) -> list[Box]:
    """YOLO txt: `class x y w h` (relative, centre) per line; a 6th column is a score."""
    boxes: list[Box] = []
    if not path.is_file():
        return boxes
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (5, 6):
            raise ValueError(f"{path}:{n}: expected `class x y w h`, got {line!r}")
        vals = [float(v) for v in parts[1:5]]
        prob = float(parts[5]) if len(parts) == 6 else 1.0
        boxes.append((int(parts[0]), prob, vals[0], vals[1], vals[2], vals[3]))
    return boxes
