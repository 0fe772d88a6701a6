"""Darknet's box decoding, letterbox correction, NMS and print order (SEMANTICS.md §6).

Boxes are kept as float32 arrays (centre x, y, w, h relative to the original image) with a
(N, classes) probability matrix, in darknet's emission order: layer by layer, cell-major,
anchor-minor. NMS sorts stably by each class in turn, exactly like glibc's merge-sort qsort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import Logits, RegionLayer, YoloLayer
from .layers.heads import logistic32
from .preprocess import letterbox_geometry

F32 = np.float32


@dataclass
class Candidates:
    boxes: np.ndarray  # (N, 4) f32 x, y, w, h
    objectness: np.ndarray  # (N,) f32
    probs: np.ndarray  # (N, classes) f32, zero where <= thresh

    @classmethod
    def empty(cls, classes: int) -> Candidates:
        return cls(np.zeros((0, 4), F32), np.zeros(0, F32), np.zeros((0, classes), F32))

    def __len__(self) -> int:
        return len(self.objectness)


def yolo_candidates(
    layer: YoloLayer, out: np.ndarray, net_w: int, net_h: int, thresh: float
) -> Candidates:
    n = len(layer.mask)
    _, lh, lw = layer.out_shape
    lazy = isinstance(out, Logits)
    p = out.view(np.ndarray).reshape(n, layer.classes + 5, lh, lw)
    p = p.transpose(2, 3, 0, 1)  # (row, col, anchor, entry)
    obj = logistic32(np.ascontiguousarray(p[..., 4])) if lazy else p[..., 4]
    keep = obj > F32(thresh)
    rows, cols, anchors = np.nonzero(keep)  # row-major over cells, then anchors: darknet order
    sel = p[rows, cols, anchors]
    if lazy:  # the layer's logistic, on the kept cells only (w, h stay raw)
        raw = sel
        sel = logistic32(raw)
        sel[:, 2:4] = raw[:, 2:4]
        if layer.scale_x_y != 1.0:
            sel[:, 0:2] = layer.scale_xy(sel[:, 0:2])
    o = sel[:, 4]
    x = (cols.astype(F32) + sel[:, 0]) / F32(lw)
    y = (rows.astype(F32) + sel[:, 1]) / F32(lh)
    aw = layer.anchors[np.asarray(layer.mask)[anchors]]
    if layer.new_coords:
        w = (sel[:, 2].astype(np.float64) ** 2 * 4 * aw[:, 0] / net_w).astype(F32)
        h = (sel[:, 3].astype(np.float64) ** 2 * 4 * aw[:, 1] / net_h).astype(F32)
    else:
        w = (np.exp(sel[:, 2].astype(np.float64)) * aw[:, 0] / net_w).astype(F32)
        h = (np.exp(sel[:, 3].astype(np.float64)) * aw[:, 1] / net_h).astype(F32)
    probs = o[:, None] * sel[:, 5:]
    probs = np.where(probs > F32(thresh), probs, F32(0)).astype(F32)
    return Candidates(np.stack([x, y, w, h], axis=1).astype(F32), o.astype(F32), probs)


def region_candidates(layer: RegionLayer, out: np.ndarray, thresh: float) -> Candidates:
    lh, lw, num, _ = out.shape
    p = out.reshape(lh * lw * num, -1)
    idx = np.arange(lh * lw * num)
    cell, a = idx // num, idx % num
    row, col = cell // lw, cell % lw
    logistic = F32(1) / (F32(1) + np.exp(-p[:, 0:2]))
    x = (col.astype(F32) + logistic[:, 0]) / F32(lw)
    y = (row.astype(F32) + logistic[:, 1]) / F32(lh)
    w = (np.exp(p[:, 2].astype(np.float64)) * layer.anchors[a, 0] / lw).astype(F32)
    h = (np.exp(p[:, 3].astype(np.float64)) * layer.anchors[a, 1] / lh).astype(F32)
    probs = p[:, 4:5] * p[:, 5:]
    probs = np.where(probs > F32(thresh), probs, F32(0)).astype(F32)
    return Candidates(np.stack([x, y, w, h], axis=1).astype(F32), np.ones(len(p), F32), probs)


def correct_boxes(
    boxes: np.ndarray, im_w: int, im_h: int, net_w: int, net_h: int, letter: bool
) -> np.ndarray:
    """correct_yolo_boxes with relative=1: undo the letterbox, keep boxes relative, unclipped."""
    if not letter:
        return boxes
    new_w, new_h = letterbox_geometry(im_w, im_h, net_w, net_h)
    deltaw, deltah = F32(net_w - new_w), F32(net_h - new_h)
    ratiow, ratioh = F32(new_w) / F32(net_w), F32(new_h) / F32(net_h)
    out = boxes.copy()
    out[:, 0] = (boxes[:, 0].astype(np.float64) - float(deltaw) / 2.0 / net_w) / float(ratiow)
    out[:, 1] = (boxes[:, 1].astype(np.float64) - float(deltah) / 2.0 / net_h) / float(ratioh)
    out[:, 2] = boxes[:, 2] * (F32(1) / ratiow)
    out[:, 3] = boxes[:, 3] * (F32(1) / ratioh)
    return out


def _overlap(a1: np.ndarray, aw: np.ndarray, b1: np.ndarray, bw: np.ndarray) -> np.ndarray:
    two = F32(2)
    left = np.maximum(a1 - aw / two, b1 - bw / two)
    right = np.minimum(a1 + aw / two, b1 + bw / two)
    return right - left


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (4,) with boxes b (N, 4), darknet's float32 formula (0 when I or U is 0)."""
    ow = _overlap(a[0], a[2], b[:, 0], b[:, 2])
    oh = _overlap(a[1], a[3], b[:, 1], b[:, 3])
    inter = np.where((ow < 0) | (oh < 0), F32(0), ow * oh).astype(F32)
    union = (a[2] * a[3] + b[:, 2] * b[:, 3] - inter).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((inter == 0) | (union == 0), F32(0), inter / union)
    return iou.astype(F32)


def box_diou(a: np.ndarray, b: np.ndarray, beta: float) -> np.ndarray:
    """iou - (d/c)^beta; d: squared centre distance, c: squared diagonal of the enclosing box."""
    two = F32(2)
    top = np.minimum(a[1] - a[3] / two, b[:, 1] - b[:, 3] / two)
    bot = np.maximum(a[1] + a[3] / two, b[:, 1] + b[:, 3] / two)
    left = np.minimum(a[0] - a[2] / two, b[:, 0] - b[:, 2] / two)
    right = np.maximum(a[0] + a[2] / two, b[:, 0] + b[:, 2] / two)
    w, h = right - left, bot - top
    c = (w * w + h * h).astype(F32)
    iou = box_iou(a, b)
    d = ((a[0] - b[:, 0]) ** 2 + (a[1] - b[:, 1]) ** 2).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.power((d / c).astype(np.float64), beta).astype(F32)
    return np.where(c == 0, iou, iou - term).astype(F32)


def nms(cands: Candidates, thresh: float, kind: str = "default", beta: float = 0.6) -> Candidates:
    """darknet do_nms_sort / diounms_sort; returns the candidates in darknet's final order."""
    boxes, obj, probs = cands.boxes, cands.objectness, cands.probs.copy()
    # objectness == 0 entries are swapped to the end and dropped, exactly like darknet does
    order = list(range(len(obj)))
    k = len(order) - 1
    i = 0
    while i <= k:
        if obj[order[i]] == 0:
            order[i], order[k] = order[k], order[i]
            k -= 1
        else:
            i += 1
    idx = np.asarray(order[: k + 1], dtype=np.int64)
    t = F32(thresh)
    # a stable sort by an all-zero column leaves the order as it is and suppresses nothing:
    # only classes with a candidate above the threshold can change anything
    active = np.nonzero(probs[idx].any(axis=0))[0].tolist() if len(idx) else []
    for cls in active:
        col = probs[idx, cls]
        idx = idx[np.argsort(-col, kind="stable")]
        col = probs[idx, cls]
        for i in np.nonzero(col)[0].tolist():
            if probs[idx[i], cls] == 0:
                continue
            rest = idx[i + 1 :]
            if not len(rest):
                break
            a = boxes[idx[i]]
            if kind == "greedynms":
                score = box_diou(a, boxes[rest], 0.6)
            elif kind == "diounms":
                score = box_diou(a, boxes[rest], beta)
            else:
                score = box_iou(a, boxes[rest])
            probs[rest[score > t], cls] = 0
    return Candidates(boxes[idx], obj[idx], probs[idx])


@dataclass(frozen=True)
class Printed:
    """One darknet output line: candidate index, class, probability, is it the best class."""

    index: int
    class_id: int
    prob: float
    best: bool


def print_order(cands: Candidates, thresh: float, skip: set[int] | None = None) -> list[Printed]:
    """darknet draw_detections_v3: best class per box, boxes by left edge, extra classes after."""
    skip = skip or set()
    t = F32(thresh)
    chosen = []
    for i in range(len(cands)):
        p = cands.probs[i]
        best, best_p = -1, F32(0)
        for j in np.nonzero(p > t)[0].tolist():
            if j in skip:
                continue
            if best < 0 or p[j] > best_p:
                best, best_p = int(j), p[j]
        if best >= 0:
            chosen.append((i, best))
    left = cands.boxes[:, 0] - cands.boxes[:, 2] / F32(2)
    chosen.sort(key=lambda ib: float(left[ib[0]]))
    out: list[Printed] = []
    for i, best in chosen:
        p = cands.probs[i]
        out.append(Printed(i, best, float(p[best]), True))
        for j in np.nonzero(p > t)[0].tolist():
            if j != best and j not in skip:
                out.append(Printed(i, int(j), float(p[j]), False))
    return out
