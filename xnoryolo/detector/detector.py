"""`Detector`: cfg + weights + names -> detections on OpenCV frames, exactly like darknet's
`detector test` (same preprocessing, decoding, NMS and print order)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend
from .decode import Candidates, correct_boxes, nms, print_order, region_candidates, yolo_candidates
from .detections import Detection, DetectionTable, printed_corners
from .errors import NamesError
from .files import UnreadableFile, read_small_file
from .layers import RegionLayer, YoloLayer
from .network import Network
from .packed import is_packed, packed_names
from .preprocess import preprocess, preprocess_bytes

F32 = np.float32
MAX_NAMES_BYTES = 1 << 20
log = logging.getLogger("xnoryolo.detector")


def _int8_kernels(network: Network) -> str:
    """ "<path>, n of m convolutions" for a network prepared int8."""
    from .layers import ConvolutionalLayer

    convs = [ly for ly in network.layers if isinstance(ly, ConvolutionalLayer) and not ly.xnor]
    path = getattr(network.backend, "int8", None) or "reference"
    return f"{path}, {sum(ly.int8 for ly in convs)} of {len(convs)} non-binary convolutions"


def read_names(path: str | Path) -> list[str]:
    p = Path(path)
    try:
        data = read_small_file(p, MAX_NAMES_BYTES)
    except UnreadableFile as exc:
        raise NamesError(f"{p}: {exc}: not a class-names file") from None
    except OSError as exc:
        raise NamesError(f"{p}: cannot read names: {exc.strerror or exc}") from None
    text = data.decode("utf-8", errors="replace")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise NamesError(f"{p}: no class names in the file")
    return names


class Detector:
    def __init__(
        self,
        network: Network,
        names: list[str] | None = None,
        thresh: float = 0.25,
        nms: float = 0.45,
        letter_box: bool | None = None,
        max_detections: int | None = None,
    ) -> None:
        heads = network.detection_layers
        if not heads:
            raise NamesError(f"{network.path}: the network has no [yolo] or [region] layer")
        self.network = network
        self.model_name: str | None = None  # the weights file's name, where loaded from one
        self.classes = heads[0].classes
        if any(h.classes != self.classes for h in heads):
            raise NamesError(f"{network.path}: detection layers disagree on classes=")
        if names is None:
            names = [str(i) for i in range(self.classes)]
        if len(names) < self.classes:
            raise NamesError(
                f"names file has {len(names)} names but the model has classes={self.classes}"
            )
        self.names = names[: self.classes]
        # classes darknet never prints (names starting with dont_show)
        self.dont_show = {i for i, n in enumerate(self.names) if n.startswith("dont_show")}
        self.thresh = thresh
        self.nms = nms
        # At most this many detections per image (the most probable), and as many boxes into
        # NMS (the most confident): a threshold of 0 would otherwise make every box of every
        # class a detection (200,000 with COCO at 416x416) and NMS quadratic in them.
        self.max_detections = max_detections
        self.letter_box = network.net.letter_box if letter_box is None else letter_box
        last = heads[-1]
        self.nms_kind = last.nms_kind
        self.beta_nms = last.beta_nms

    @classmethod
    def from_files(
        cls,
        cfg: str | Path | None,
        weights: str | Path,
        names: str | Path | None = None,
        backend: Backend | str = "auto",
        threads: int | None = None,
        precision: str | None = None,
        **kwargs: Any,
    ) -> Detector:
        """cfg may be None for a packed `.xnor` file, which embeds its cfg (and names).
        precision: "f32", "int8" or None (int8 when the file carries int8 calibration)."""
        network = Network.load(cfg, weights, backend, threads, precision)
        if names is not None:
            name_list: list[str] | None = read_names(names)
        else:
            name_list = packed_names(weights) if is_packed(weights) else None
        detector = cls(network, name_list, **kwargs)
        detector.model_name = Path(weights).name
        if network.precision == "int8":
            log.info("%s runs int8 (%s)", detector.model_name, _int8_kernels(network))
        return detector

    def info(self) -> dict[str, Any]:
        """What runs: input size, classes, layers (and how many binary), kernels, threads."""
        from .layers import ConvolutionalLayer

        net = self.network
        c, h, w = net.input_shape
        convs = [ly for ly in net.layers if isinstance(ly, ConvolutionalLayer)]
        backend = net.backend
        return {
            "model": self.model_name,
            "input": f"{w}x{h}x{c}",
            "classes": self.classes,
            "layers": len(net.layers),
            "binary_convolutions": f"{sum(ly.xnor for ly in convs)} of {len(convs)}",
            "backend": backend.name if backend is not None else None,
            "kernels": backend.path if backend is not None else None,
            "precision": net.precision,
            "int8_kernels": _int8_kernels(net) if net.precision == "int8" else None,
            "threads": backend.threads if backend is not None else None,
        }

    # ----------------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> np.ndarray:
        c, h, w = self.network.input_shape
        backend = self.network.backend
        threads = backend.threads if backend is not None else 1
        return preprocess(image, w, h, c, self.letter_box, threads=threads)

    def network_input(self, image: np.ndarray) -> np.ndarray:
        """What detect feeds the network: the input bytes where the first layer runs int8 on
        them (Network.takes_bytes: the same bytes it would make of preprocess's floats, with
        no float tensor in between), else preprocess's float tensor."""
        if not self.network.takes_bytes:
            return self.preprocess(image)
        c, h, w = self.network.input_shape
        threads = self.network.backend.threads if self.network.backend is not None else 1
        return preprocess_bytes(image, w, h, c, self.letter_box, threads=threads)

    def forward(self, tensor: np.ndarray, keep: bool = True) -> list[np.ndarray]:
        """Every layer's output for a ready (c, h, w) float32 input tensor."""
        return self.network.forward(tensor, keep=keep)

    def candidates(
        self, outputs: list[np.ndarray], im_w: int, im_h: int, thresh: float
    ) -> Candidates:
        """Pre-NMS boxes of all detection layers (darknet get_network_boxes, relative=1)."""
        net = self.network.net
        parts = []
        for layer in self.network.detection_layers:
            out = outputs[layer.index]
            if isinstance(layer, YoloLayer):
                parts.append(yolo_candidates(layer, out, net.width, net.height, thresh))
            elif isinstance(layer, RegionLayer):
                parts.append(region_candidates(layer, out, thresh))
        c = Candidates(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.objectness for p in parts]),
            np.concatenate([p.probs for p in parts]),
        )
        c.boxes = correct_boxes(c.boxes, im_w, im_h, net.width, net.height, self.letter_box)
        return c

    def postprocess(
        self,
        outputs: list[np.ndarray],
        im_w: int,
        im_h: int,
        thresh: float | None = None,
        nms_thresh: float | None = None,
    ) -> DetectionTable:
        """The detections of a forward's outputs for an im_w x im_h image, as arrays
        (`.detections()`: as `Detection`s)."""
        thresh = self.thresh if thresh is None else thresh
        nms_thresh = self.nms if nms_thresh is None else nms_thresh
        cands = self.candidates(outputs, im_w, im_h, thresh)
        cap = self.max_detections
        if cap is not None and len(cands) > cap:
            keep = np.sort(np.argsort(-cands.objectness, kind="stable")[:cap])
            cands = Candidates(cands.boxes[keep], cands.objectness[keep], cands.probs[keep])
        if nms_thresh:
            cands = nms(cands, nms_thresh, self.nms_kind, self.beta_nms)
        printed = print_order(cands, thresh, self.dont_show)
        if cap is not None and len(printed) > cap:
            top = sorted(range(len(printed)), key=lambda k: -printed[k].prob)[:cap]
            printed = [printed[k] for k in sorted(top)]
        n = len(printed)
        if not n:
            return DetectionTable.empty(self.names)
        index = np.fromiter((p.index for p in printed), np.intp, n)
        bx = cands.boxes[index]  # float32, as darknet computes the printed pixels
        return DetectionTable(
            self.names,
            np.fromiter((p.class_id for p in printed), np.int64, n),
            np.fromiter((p.prob for p in printed), np.float64, n),
            bx.astype(np.float64),
            printed_corners(bx, im_w, im_h),
            cands.objectness[index].astype(np.float64),
            np.fromiter((p.best for p in printed), bool, n),
        )

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable:
        """Detections on an OpenCV image (BGR, BGRA or grey uint8) as arrays, rows in
        darknet's print order."""
        h, w = image.shape[:2]
        outputs = self.forward(self.network_input(image), keep=False)
        return self.postprocess(outputs, w, h, thresh, nms)

    def detect(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> list[Detection]:
        """Detections on an OpenCV image (BGR, BGRA or grey uint8), in darknet's print order."""
        return self.detect_table(image, thresh, nms).detections()
