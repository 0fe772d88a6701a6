"""Training data for distillation: frames, cached teacher pseudo-labels, augmentation.

No torch here. Frames are kept as the network-input image (darknet's resize or letterbox of
the frame, the tensor the engine would feed), quantised to uint8 HWC to fit in memory.
Labels are the teacher's detections relative to the network input, (class, prob, x, y, w, h).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xnoryolo.detector import Detector
from xnoryolo.detector.preprocess import letterbox_geometry, preprocess
from xnoryolo.detector.video import Source, iter_frames

LABEL_CACHE_VERSION = 1


@dataclass
class Split:
    """Per source: training frame indices and held-out indices (the end of the sequence)."""

    train: dict[str, list[int]]
    heldout: dict[str, list[int]]


def time_split(sources: Sequence[Source], holdout: float, train_stop: int | None = None) -> Split:
    """Held-out = the last `holdout` fraction of each sequence (or frames >= train_stop)."""
    train: dict[str, list[int]] = {}
    held: dict[str, list[int]] = {}
    for src in sources:
        n = src.count
        if train_stop is not None:
            cut = min(train_stop, n)
        else:
            cut = n - math.floor(n * holdout + 0.5) if n > 1 else n
        train[str(src.path)] = list(range(cut))
        held[str(src.path)] = list(range(cut, n))
    return Split(train, held)


def validation_split(
    train: dict[str, list[int]], fraction: float
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(train, validation): the last `fraction` of each sequence's training frames, by time,
    become validation frames (for choosing weights; the held-out frames stay unseen)."""
    kept: dict[str, list[int]] = {}
    val: dict[str, list[int]] = {}
    for key, idx in train.items():
        n = math.floor(len(idx) * fraction + 0.5) if len(idx) > 1 else 0
        kept[key], val[key] = idx[: len(idx) - n], idx[len(idx) - n :]
    return kept, val


def to_network_box(
    d: tuple[float, float, float, float], im_w: int, im_h: int, net_w: int, net_h: int, lb: bool
) -> tuple[float, float, float, float]:
    """A box relative to the frame -> relative to the network input (undo correct_yolo_boxes)."""
    x, y, w, h = d
    if not lb:
        return x, y, w, h
    new_w, new_h = letterbox_geometry(im_w, im_h, net_w, net_h)
    sx, sy = new_w / net_w, new_h / net_h
    return (
        x * sx + (net_w - new_w) / 2 / net_w,
        y * sy + (net_h - new_h) / 2 / net_h,
        w * sx,
        h * sy,
    )


def cache_key(
    teacher_cfg: Path, teacher_weights: Path, sources: Sequence[Source], **kw: Any
) -> str:
    h = hashlib.sha256()
    for p in (teacher_cfg, teacher_weights):
        h.update(Path(p).read_bytes())
    for s in sources:
        h.update(f"{s.path.resolve()}|{s.count}|{s.path.stat().st_size}".encode())
    h.update(json.dumps(kw, sort_keys=True).encode())
    h.update(str(LABEL_CACHE_VERSION).encode())
    return h.hexdigest()[:16]


@dataclass
class FrameSet:
    """Network-input images (N, H, W, 3) uint8 RGB and labels per image (network-relative)."""

    images: np.ndarray
    labels: list[np.ndarray]  # each (k, 6): class, prob, x, y, w, h
    keys: list[tuple[str, int]]


def load_frames(
    sources: Sequence[Source],
    wanted: dict[str, list[int]],
    teacher: Detector,
    net_w: int,
    net_h: int,
    letter_box: bool,
    cache: dict[str, Any],
    progress: Any = None,
) -> FrameSet:
    """Decode the wanted frames, preprocess them for the student, label them with the teacher
    (once: labels are looked up in / added to `cache`, keyed by source and frame)."""
    images, labels, keys = [], [], []
    for src in sources:
        idx = wanted.get(str(src.path), [])
        for i, frame in iter_frames(src, idx):
            key = f"{src.path.resolve()}#{i}"
            im_h, im_w = frame.shape[:2]
            if key not in cache:
                dets = teacher.detect(frame)
                cache[key] = [
                    [d.class_id, round(d.prob, 5), d.x, d.y, d.w, d.h, im_w, im_h] for d in dets
                ]
            rows = []
            for c, p, x, y, w, h, iw, ih in cache[key]:
                rows.append([c, p, *to_network_box((x, y, w, h), iw, ih, net_w, net_h, letter_box)])
            labels.append(np.array(rows, np.float32).reshape(-1, 6))
            tensor = preprocess(frame, net_w, net_h, 3, letter_box)
            images.append(np.clip(tensor.transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8))
            keys.append((str(src.path), i))
            if progress is not None:
                progress(len(images))
    arr = np.stack(images) if images else np.zeros((0, net_h, net_w, 3), np.uint8)
    return FrameSet(arr, labels, keys)


@dataclass(frozen=True)
class Augment:
    """Fixed-camera augmentation: crops, small scale jitter/translation, flip, photometric."""

    crop: int = 256
    scale: float = 0.15
    flip: bool = True
    brightness: float = 0.12
    contrast: float = 0.25
    min_visible: float = 0.4


def augment(
    image: np.ndarray, labels: np.ndarray, aug: Augment, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: (3, crop, crop) float32 in [0, 1] and boxes (k, 6) in crop pixels
    (class, prob, cx, cy, w, h). Boxes mostly cut off by the crop are dropped."""
    import cv2

    h, w = image.shape[:2]
    s = float(rng.uniform(1 - aug.scale, 1 + aug.scale)) if aug.scale else 1.0
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    im = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_LINEAR) if s != 1.0 else image
    cw, ch = min(aug.crop, w), min(aug.crop, h)
    # the crop may hang over the edge by a little: small translations of the whole frame
    mx, my = int(0.1 * cw), int(0.1 * ch)
    ox = int(rng.integers(-mx, max(-mx, sw - cw + mx) + 1))
    oy = int(rng.integers(-my, max(-my, sh - ch + my) + 1))
    out = np.full((ch, cw, 3), 127, np.uint8)
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(sw, ox + cw), min(sh, oy + ch)
    if x1 > x0 and y1 > y0:
        out[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = im[y0:y1, x0:x1]
    boxes = labels.copy()
    if len(boxes):
        l_ = boxes[:, 2] - boxes[:, 4] / 2
        t_ = boxes[:, 3] - boxes[:, 5] / 2
        r_ = boxes[:, 2] + boxes[:, 4] / 2
        b_ = boxes[:, 3] + boxes[:, 5] / 2
        l_, r_ = l_ * sw - ox, r_ * sw - ox
        t_, b_ = t_ * sh - oy, b_ * sh - oy
        area = (r_ - l_) * (b_ - t_)
        lc, rc = np.clip(l_, 0, cw), np.clip(r_, 0, cw)
        tc, bc = np.clip(t_, 0, ch), np.clip(b_, 0, ch)
        vis = np.clip(rc - lc, 0, None) * np.clip(bc - tc, 0, None)
        keep = (vis >= aug.min_visible * np.maximum(area, 1e-9)) & (rc - lc >= 2) & (bc - tc >= 2)
        boxes = np.stack(
            [boxes[:, 0], boxes[:, 1], (lc + rc) / 2, (tc + bc) / 2, rc - lc, bc - tc], 1
        )[keep]
    x = out.astype(np.float32) * np.float32(1 / 255)
    if aug.flip and rng.random() < 0.5:
        x = x[:, ::-1]
        if len(boxes):
            boxes[:, 2] = cw - boxes[:, 2]
    if aug.contrast or aug.brightness:
        a = float(rng.uniform(1 - aug.contrast, 1 + aug.contrast))
        b = float(rng.uniform(-aug.brightness, aug.brightness))
        mean = float(x.mean())
        x = np.clip((x - mean) * a + mean + b, 0, 1)
    return np.ascontiguousarray(x.transpose(2, 0, 1), np.float32), boxes.astype(np.float32)
