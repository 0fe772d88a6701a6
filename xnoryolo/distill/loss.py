"""YOLO loss (darknet yolov3 style) on teacher pseudo-labels.

Each label box is assigned to the anchor (over all heads) whose size fits it best (IoU of
centred boxes) and to the grid cell holding its centre: there the head learns x/y (BCE on the
cell offset), w/h (squared error on log-scale, weighted 2 - relative area, as darknet does),
objectness 1 and the class (BCE, one-hot). Every other prediction learns objectness 0 unless
its decoded box overlaps a label box by more than `ignore_thresh`, or overlaps a teacher
detection below the label threshold (an uncertain object: neither taught present nor absent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from xnoryolo.detector.layers import YoloLayer


@dataclass(frozen=True)
class LossConfig:
    label_thresh: float = 0.5
    ignore_thresh: float = 0.7
    uncertain_iou: float = 0.3
    obj_weight: float = 1.0
    noobj_weight: float = 1.0
    cls_weight: float = 1.0
    box_weight: float = 1.0
    # per-class factors on every term a label of that class adds (empty: all 1); a class the
    # student finds harder than the others (small, distant people) can be given more weight
    class_weights: tuple[float, ...] = ()

    def label_weight(self, cls: int) -> float:
        return self.class_weights[cls] if cls < len(self.class_weights) else 1.0


def _wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(
        wh[:, None, 1], anchors[None, :, 1]
    )
    union = (wh[:, 0] * wh[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None] - inter
    return inter / np.maximum(union, 1e-12)


def _box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Centre-form (…, 4) x (M, 4) -> (…, M)."""
    a1, a2 = a[..., None, :2] - a[..., None, 2:] / 2, a[..., None, :2] + a[..., None, 2:] / 2
    b1, b2 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    wh = (torch.minimum(a2, b2) - torch.maximum(a1, b1)).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = a[..., None, 2] * a[..., None, 3] + b[:, 2] * b[:, 3] - inter
    return inter / union.clamp(min=1e-12)


def yolo_loss(
    raw: Sequence[Tensor],
    heads: Sequence[YoloLayer],
    targets: Sequence[np.ndarray],
    in_w: int,
    in_h: int,
    cfg: LossConfig = LossConfig(),
) -> tuple[Tensor, dict[str, float]]:
    """raw[k]: the input of yolo head k, (B, n*(classes+5), h, w). targets[b]: (m, 6) boxes in
    input pixels (class, prob, cx, cy, w, h). Returns the loss (summed, / batch) and parts."""
    batch = raw[0].shape[0]
    all_anchors = heads[0].anchors.astype(np.float64)
    parts = {"xy": raw[0].new_zeros(()), "wh": raw[0].new_zeros(()), "obj": raw[0].new_zeros(())}
    parts["noobj"] = raw[0].new_zeros(())
    parts["cls"] = raw[0].new_zeros(())
    sure = [t[t[:, 1] > cfg.label_thresh] for t in targets]
    unsure = [t[t[:, 1] <= cfg.label_thresh] for t in targets]
    best = [
        np.argmax(_wh_iou(t[:, 4:6].astype(np.float64), all_anchors), axis=1)
        if len(t)
        else np.zeros(0, np.int64)
        for t in sure
    ]
    for head, x in zip(heads, raw, strict=True):
        n, nc = len(head.mask), head.classes
        _, _, gh, gw = x.shape
        p = x.view(batch, n, nc + 5, gh, gw)
        anchors = torch.as_tensor(head.anchors[head.mask], dtype=x.dtype)  # (n, 2) pixels
        with torch.no_grad():
            gy, gx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
            bx = (torch.sigmoid(p[:, :, 0]) + gx) * (in_w / gw)
            by = (torch.sigmoid(p[:, :, 1]) + gy) * (in_h / gh)
            bw = torch.exp(p[:, :, 2].clamp(max=8)) * anchors[:, 0].view(1, n, 1, 1)
            bh = torch.exp(p[:, :, 3].clamp(max=8)) * anchors[:, 1].view(1, n, 1, 1)
            pred = torch.stack([bx, by, bw, bh], dim=-1)  # (B, n, gh, gw, 4)
            noobj = torch.ones(batch, n, gh, gw, dtype=torch.bool)
            for b in range(batch):
                for boxes, thr in ((sure[b], cfg.ignore_thresh), (unsure[b], cfg.uncertain_iou)):
                    if len(boxes):
                        ious = _box_iou(pred[b], torch.as_tensor(boxes[:, 2:6], dtype=x.dtype))
                        noobj[b] &= ious.amax(dim=-1) <= thr
        obj_idx: list[tuple[int, int, int, int]] = []
        txy: list[tuple[float, float]] = []
        twh: list[tuple[float, float]] = []
        wscale: list[float] = []
        lw: list[float] = []
        tcls: list[np.ndarray] = []
        seen: set[tuple[int, int, int, int]] = set()
        for b in range(batch):
            for box, a_all in zip(sure[b], best[b], strict=True):
                if int(a_all) not in head.mask:
                    continue
                a = head.mask.index(int(a_all))
                cx, cy, w, h = (float(v) for v in box[2:6])
                col = min(gw - 1, max(0, int(cx / in_w * gw)))
                row = min(gh - 1, max(0, int(cy / in_h * gh)))
                key = (b, a, row, col)
                cls_t = np.zeros(nc, np.float32)
                cls_t[int(box[0])] = 1.0
                if key in seen:  # two labels in one slot: keep the first box, add the class
                    tcls[obj_idx.index(key)][int(box[0])] = 1.0
                    continue
                seen.add(key)
                obj_idx.append(key)
                txy.append((cx / in_w * gw - col, cy / in_h * gh - row))
                aw, ah = head.anchors[head.mask[a]]
                twh.append((np.log(max(w, 1e-3) / aw), np.log(max(h, 1e-3) / ah)))
                wscale.append(2.0 - (w / in_w) * (h / in_h))
                lw.append(cfg.label_weight(int(box[0])))
                tcls.append(cls_t)
        objmap = p[:, :, 4]
        if obj_idx:
            bi, ai, ri, ci = (torch.as_tensor(v) for v in zip(*obj_idx, strict=True))
            noobj[bi, ai, ri, ci] = False
            sel = p[bi, ai, :, ri, ci]  # (m, nc+5)
            ws = torch.as_tensor(wscale, dtype=x.dtype)
            lws = torch.as_tensor(lw, dtype=x.dtype)
            ws = ws * lws
            t_xy = torch.as_tensor(np.array(txy), dtype=x.dtype)
            t_wh = torch.as_tensor(np.array(twh), dtype=x.dtype)
            xy = F.binary_cross_entropy_with_logits(sel[:, :2], t_xy, reduction="none").sum(1)
            parts["xy"] = parts["xy"] + cfg.box_weight * (xy * ws).sum()
            wh = ((sel[:, 2:4] - t_wh) ** 2).sum(1) * 0.5
            parts["wh"] = parts["wh"] + cfg.box_weight * (wh * ws).sum()
            obj = F.binary_cross_entropy_with_logits(
                sel[:, 4], torch.ones_like(sel[:, 4]), reduction="none"
            )
            parts["obj"] = parts["obj"] + cfg.obj_weight * (obj * lws).sum()
            t_cls = torch.as_tensor(np.array(tcls), dtype=x.dtype)
            cls = F.binary_cross_entropy_with_logits(sel[:, 5:], t_cls, reduction="none")
            parts["cls"] = parts["cls"] + cfg.cls_weight * (cls.sum(1) * lws).sum()
        neg = objmap[noobj]
        parts["noobj"] = parts["noobj"] + cfg.noobj_weight * F.binary_cross_entropy_with_logits(
            neg, torch.zeros_like(neg), reduction="sum"
        )
    total = sum(parts.values(), raw[0].new_zeros(())) / batch
    return total, {k: float(v.detach()) / batch for k, v in parts.items()}


def _soft_bce(logits: Tensor, target: Tensor) -> Tensor:
    """BCE against soft targets minus the targets' own entropy: 0 when the student matches."""
    t = target.clamp(1e-6, 1 - 1e-6)
    entropy = -(t * torch.log(t) + (1 - t) * torch.log1p(-t))
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") - entropy


def output_distill_loss(
    student: Sequence[Tensor],
    teacher: Sequence[Tensor],
    heads: Sequence[YoloLayer],
    class_weights: Sequence[float] = (),
) -> tuple[Tensor, dict[str, float]]:
    """Match the teacher's raw head outputs: objectness everywhere (soft BCE), and - weighted
    by the teacher's objectness - class probabilities, x/y offsets and log w/h. This keeps the
    teacher's own calibration, borderline objects included. With `class_weights`, each anchor
    counts 1 + sum over classes of (weight - 1) x the teacher's probability of that class
    there, so only where the teacher sees a weighted class does the weight apply."""
    batch = student[0].shape[0]
    obj = student[0].new_zeros(())
    rest = student[0].new_zeros(())
    for s, t, head in zip(student, teacher, heads, strict=True):
        n, nc = len(head.mask), head.classes
        ps = s.view(batch, n, nc + 5, *s.shape[2:])
        pt = t.view(batch, n, nc + 5, *t.shape[2:])
        t_obj = torch.sigmoid(pt[:, :, 4])
        t_cls = torch.sigmoid(pt[:, :, 5:])
        anchor_w = _anchor_weights(t_obj, t_cls, class_weights)
        obj = obj + (_soft_bce(ps[:, :, 4], t_obj) * anchor_w).sum()
        per = _soft_bce(ps[:, :, 5:], t_cls).sum(2)
        per = per + _soft_bce(ps[:, :, :2], torch.sigmoid(pt[:, :, :2])).sum(2)
        per = per + 0.5 * ((ps[:, :, 2:4] - pt[:, :, 2:4]) ** 2).sum(2)
        rest = rest + (per * t_obj * anchor_w).sum()
    return (obj + rest) / batch, {
        "d_obj": float(obj.detach()) / batch,
        "d_rest": float(rest.detach()) / batch,
    }


def _anchor_weights(t_obj: Tensor, t_cls: Tensor, class_weights: Sequence[float]) -> Tensor:
    """(B, n, h, w) factors: 1 + sum_c (w_c - 1) * P(class c) under the teacher; 1 without
    class weights."""
    if not class_weights:
        return torch.ones_like(t_obj)
    nc = t_cls.shape[2]
    extra = torch.zeros(nc, dtype=t_obj.dtype)
    for c, w in enumerate(class_weights[:nc]):
        extra[c] = w - 1.0
    return (1.0 + t_obj * (t_cls * extra.view(1, 1, nc, 1, 1)).sum(2)).clamp(min=0.0)


def _nms(boxes: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy NMS of (k, 6) rows (class, prob, cx, cy, w, h) sorted by prob, per class."""
    keep: list[int] = []
    order = np.argsort(-boxes[:, 1], kind="stable")
    l_ = boxes[:, 2] - boxes[:, 4] / 2
    t_ = boxes[:, 3] - boxes[:, 5] / 2
    r_ = boxes[:, 2] + boxes[:, 4] / 2
    b_ = boxes[:, 3] + boxes[:, 5] / 2
    area = boxes[:, 4] * boxes[:, 5]
    dead = np.zeros(len(boxes), bool)
    for a in order:
        if dead[a]:
            continue
        keep.append(int(a))
        iw = np.clip(np.minimum(r_[a], r_) - np.maximum(l_[a], l_), 0, None)
        ih = np.clip(np.minimum(b_[a], b_) - np.maximum(t_[a], t_), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(area[a] + area - inter, 1e-12)
        dead |= (iou > thresh) & (boxes[:, 0] == boxes[a, 0])
    return boxes[np.array(keep, np.int64)]


@torch.no_grad()
def teacher_boxes(
    teacher: Sequence[Tensor],
    heads: Sequence[YoloLayer],
    in_w: int,
    in_h: int,
    thresh: float,
    nms: float = 0.45,
) -> list[np.ndarray]:
    """The teacher's detections on the very crops the student sees (after augmentation), from
    its raw head inputs: per image (k, 6) rows (class, prob, cx, cy, w, h) in input pixels, every
    class whose objectness x class probability exceeds `thresh`, per-class NMS (darknet's
    decoding, in the crop's own coordinates)."""
    batch = teacher[0].shape[0]
    per: list[list[np.ndarray]] = [[] for _ in range(batch)]
    for t, head in zip(teacher, heads, strict=True):
        n, nc = len(head.mask), head.classes
        _, _, gh, gw = t.shape
        p = t.view(batch, n, nc + 5, gh, gw)
        prob = torch.sigmoid(p[:, :, 4:5]) * torch.sigmoid(p[:, :, 5:])  # (B, n, nc, gh, gw)
        hit = prob > thresh
        if not bool(hit.any()):
            continue
        b, a, c, r, col = hit.nonzero(as_tuple=True)
        anchors = torch.as_tensor(head.anchors[head.mask], dtype=t.dtype)
        cx = (torch.sigmoid(p[b, a, 0, r, col]) + col) * (in_w / gw)
        cy = (torch.sigmoid(p[b, a, 1, r, col]) + r) * (in_h / gh)
        w = torch.exp(p[b, a, 2, r, col].clamp(max=8)) * anchors[a, 0]
        h = torch.exp(p[b, a, 3, r, col].clamp(max=8)) * anchors[a, 1]
        rows = torch.stack([c.to(t.dtype), prob[b, a, c, r, col], cx, cy, w, h], 1).numpy()
        bn = b.numpy()
        for k in range(batch):
            sel = rows[bn == k]
            if len(sel):
                per[k].append(sel)
    return [
        _nms(np.concatenate(p), nms).astype(np.float32) if p else np.zeros((0, 6), np.float32)
        for p in per
    ]
