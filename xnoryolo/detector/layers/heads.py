"""The detection heads: [yolo] and [region] (their outputs are what decode.py reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..activations import activate
from ..cfg import Section
from .base import F32, BuildContext, Layer, positive


def logistic32(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in float32, activations.py's order of operations, as a new array:
    the [yolo] layer's forward and the decoder's deferred logistic share it, so both give
    the same floats for the same entry."""
    with np.errstate(over="ignore", under="ignore"):
        out = np.negative(x, dtype=F32)
        np.exp(out, out=out)
        out += F32(1)
        np.divide(F32(1), out, out=out)
    return out


class Logits(np.ndarray):
    """What a lean forward (`Network.forward(keep=False)`) leaves as a [yolo] layer's output:
    its input, the logistic not yet applied. The decoder applies it only to the entries it
    reads (objectness everywhere, the rest of the cells above the threshold) with
    `logistic32`, so the boxes are those of the full output; `YoloLayer.activated` gives that
    output itself."""


@dataclass
class YoloLayer(Layer):
    type: ClassVar[str] = "yolo"
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "jitter",
            "ignore_thresh",
            "truth_thresh",
            "random",
            "resize",
            "iou_normalizer",
            "obj_normalizer",
            "cls_normalizer",
            "delta_normalizer",
            "iou_loss",
            "iou_thresh_kind",
            "iou_thresh",
            "max_delta",
            "counters_per_class",
            "label_smooth_eps",
            "focal_loss",
            "max",
            "map",
            "objectness_smooth",
            "track_history_size",
            "sim_thresh",
            "dets_for_track",
            "dets_for_show",
            "track_ciou_norm",
            "embedding_layer",
            "random_anchors",
        }
    )
    classes: int = 20
    mask: list[int] = field(default_factory=list)
    anchors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), F32))
    scale_x_y: float = 1.0
    new_coords: bool = False
    nms_kind: str = "default"
    beta_nms: float = 0.6

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> YoloLayer:
        c = ctx.in_shape[0]
        classes = positive(section, "classes", section.get_int("classes", 20))
        num = positive(section, "num", section.get_int("num", 1))
        mask = section.get_ints("mask") or list(range(num))
        for m in mask:
            if not 0 <= m < num:
                raise section.error(
                    f"mask entry {m} is not an anchor index 0..{num - 1} (num={num})", "mask"
                )
        anchors = section.get_floats("anchors")
        if anchors is None:
            raise section.error("[yolo] needs anchors=")
        if len(anchors) != 2 * num:
            raise section.error(
                f"anchors= has {len(anchors)} values but num={num} needs {2 * num}", "anchors"
            )
        n = len(mask)
        if c != n * (classes + 5):
            raise section.error(
                f"the layer before [yolo] outputs {c} channels but {n} masked anchors x "
                f"(classes={classes} + 5) = {n * (classes + 5)} are needed"
            )
        kind = section.get_str("nms_kind", "default")
        if kind not in ("default", "greedynms", "diounms", "cornersnms"):
            kind = "default"  # darknet's fallback for any other name
        return cls(
            ctx.index,
            section,
            ctx.in_shape,
            ctx.in_shape,
            classes,
            mask,
            np.asarray(anchors, F32).reshape(num, 2),
            section.get_float("scale_x_y", 1.0),
            bool(section.get_int("new_coords", 0)),
            kind,
            section.get_float("beta_nms", 0.6),
        )

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        n = len(self.mask)
        _, h, w = self.in_shape
        if self.new_coords:
            out = x.reshape(n, self.classes + 5, h, w).copy()
        else:
            # the logistic over the whole tensor, then the raw w, h entries put back: a few
            # contiguous passes instead of strided slices and temporaries
            out = logistic32(x).reshape(n, self.classes + 5, h, w)
            out[:, 2:4] = x.reshape(n, self.classes + 5, h, w)[:, 2:4]
        if self.scale_x_y != 1.0:
            out[:, 0:2] = self.scale_xy(out[:, 0:2])
        return out.reshape(self.out_shape)

    def scale_xy(self, xy: np.ndarray) -> np.ndarray:
        """scale_x_y applied to logistic x, y entries (darknet's float32 order)."""
        s = F32(self.scale_x_y)
        return xy * s - F32(0.5) * (s - F32(1))

    @property
    def defers_logistic(self) -> bool:
        """Whether a lean forward hands on `Logits` (new_coords layers apply no logistic)."""
        return not self.new_coords

    def forward_lean(self, x: np.ndarray) -> np.ndarray:
        """The lean forward's output: the input as `Logits` (no copy), or the full output
        where there is no logistic to defer."""
        if not self.defers_logistic:
            return self.forward(x, [])
        return np.ascontiguousarray(x, F32).reshape(self.out_shape).view(Logits)

    def activated(self, out: np.ndarray) -> np.ndarray:
        """The layer's full output from either forward's output."""
        if isinstance(out, Logits):
            return self.forward(out.view(np.ndarray), [])
        return out


@dataclass
class RegionLayer(Layer):
    type: ClassVar[str] = "region"
    IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "jitter",
            "rescore",
            "object_scale",
            "noobject_scale",
            "class_scale",
            "coord_scale",
            "thresh",
            "random",
            "bias_match",
            "absolute",
            "log",
            "sqrt",
            "focal_loss",
        }
    )
    classes: int = 20
    coords: int = 4
    num: int = 1
    softmax: bool = False
    anchors: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), F32))
    nms_kind: str = "default"
    beta_nms: float = 0.6

    @classmethod
    def build(cls, section: Section, ctx: BuildContext) -> RegionLayer:
        c = ctx.in_shape[0]
        classes = positive(section, "classes", section.get_int("classes", 20))
        coords = section.get_int("coords", 4)
        if coords != 4:
            raise section.error(f"coords={coords}: only 4 is supported", "coords")
        num = positive(section, "num", section.get_int("num", 1))
        for key in ("tree", "map"):
            if section.has(key):
                raise section.error(f"{key}= (YOLO9000) is not supported by xnoryolo", key)
        anchors = section.get_floats("anchors")
        if anchors is None:
            anchors = [0.5] * (2 * num)  # darknet's biases default
        if len(anchors) != 2 * num:
            raise section.error(
                f"anchors= has {len(anchors)} values but num={num} needs {2 * num}", "anchors"
            )
        if c != num * (coords + 1 + classes):
            raise section.error(
                f"the layer before [region] outputs {c} channels but num={num} x (coords={coords}"
                f" + 1 + classes={classes}) = {num * (coords + 1 + classes)} are needed"
            )
        return cls(
            ctx.index,
            section,
            ctx.in_shape,
            ctx.in_shape,
            classes,
            coords,
            num,
            bool(section.get_int("softmax", 0)),
            np.asarray(anchors, F32).reshape(num, 2),
        )

    def forward(self, x: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        _, h, w = self.in_shape
        size = self.coords + 1 + self.classes
        # darknet flattens CHW to HWC: (h, w, anchor, entry)
        out = x.reshape(self.num, size, h, w).transpose(2, 3, 0, 1).copy()
        out[..., 4] = activate(out[..., 4], "logistic")
        if self.softmax:
            cls_ = out[..., 5:].astype(np.float64)
            e = np.exp(cls_ - cls_.max(axis=-1, keepdims=True))
            out[..., 5:] = (e / e.sum(axis=-1, keepdims=True)).astype(F32)
        return out
