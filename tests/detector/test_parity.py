"""Parity with darknet's own outputs (../shared/darknet-ref, darknet AlexeyAB 59596d78 CPU).

Tolerances are those of SEMANTICS.md §7: float layers ~1e-6 relative per layer (BLAS order),
XNOR layers exact in the integer part and within the rounding of mean|w'| (<= 1.5e-5)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from refdata import REF, case_dirs, case_files, need_ref
from xnoryolo.detector import Detector, Network, read_names
from xnoryolo.detector.layers import ConvolutionalLayer

CASES = [p.name for p in case_dirs()] or ["(no ../shared)"]


@cache
def network(case: str, backend: str = "numpy") -> Network:
    cfg, weights = case_files(REF / case)
    net = Network.from_cfg(cfg)
    net.load_weights(weights)
    return net.prepare(backend)


def full_image(case: str) -> Path:
    """The image folder of a case that has every layer's output."""
    for d in sorted((REF / case).iterdir()):
        if (d / "layers.json").is_file() and (d / "input.npy").is_file():
            meta = json.loads((d / "layers.json").read_text())
            if all((d / layer["file"]).is_file() for layer in meta["layers"]):
                return d
    pytest.skip(f"{case} has no image with all layer outputs")


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / max(float(np.abs(ref).max()), 1e-6))


@pytest.mark.parametrize("case", CASES)
def test_shapes_and_metadata_before_weights(case: str) -> None:
    need_ref()
    cfg, _ = case_files(REF / case)
    net = Network.from_cfg(cfg)  # no weights read yet: every shape is known
    meta = json.loads((full_image(case) / "layers.json").read_text())
    assert sum(n for _, n in net.weight_floats()) == meta["expected_weight_floats_after_header"]
    assert len(net.layers) == len(meta["layers"])
    for layer, m in zip(net.layers, meta["layers"], strict=True):
        assert layer.type == m["type"], m
        if m["type"] != "route":  # darknet's route keeps no real input shape
            assert list(layer.in_shape) == m["in"], m
        if m["type"] == "route":
            assert (layer.sources, layer.groups, layer.group_id) == (  # type: ignore[attr-defined]
                m["layers"],
                m["groups"],
                m["group_id"],
            )
        if m["type"] == "yolo":
            assert layer.mask == m["mask"]  # type: ignore[attr-defined]
            assert layer.nms_kind == m["nms_kind"]  # type: ignore[attr-defined]
        if m["type"] != "region":
            assert list(layer.out_shape) == m["out"], m
        if isinstance(layer, ConvolutionalLayer):
            assert layer.effective_activation == m["effective_activation"], m
            assert layer.xnor == bool(m["xnor"])


@pytest.mark.parametrize("case", CASES)
def test_every_layer_from_darknets_own_inputs(case: str) -> None:
    """Each layer fed darknet's own outputs of the layers it reads."""
    need_ref()
    net = network(case)
    d = full_image(case)
    meta = json.loads((d / "layers.json").read_text())
    refs = [np.load(d / m["file"]) for m in meta["layers"]]
    x = np.load(d / "input.npy")
    for i, layer in enumerate(net.layers):
        ours = layer.forward(x if i == 0 else refs[i - 1], refs)
        assert ours.shape == refs[i].shape, (i, layer.type)
        if isinstance(layer, ConvolutionalLayer) and layer.xnor:
            assert rel_err(ours, refs[i]) <= 2e-5, (i, layer.type, rel_err(ours, refs[i]))
            # integer part exact: (y - bias) / scale is darknet's dot product
            assert layer.scale is not None and layer.folded_bias is not None
            if layer.effective_activation == "linear":
                dot_ours = (ours - layer.folded_bias[:, None, None]) / layer.scale[:, None, None]
                dot_ref = (refs[i] - layer.folded_bias[:, None, None]) / layer.scale[:, None, None]
                assert np.array_equal(np.rint(dot_ours), np.rint(dot_ref)), i
        else:
            assert rel_err(ours, refs[i]) <= 1e-5, (i, layer.type, rel_err(ours, refs[i]))


@pytest.mark.parametrize("case", CASES)
def test_end_to_end_layers_from_input(case: str) -> None:
    need_ref()
    net = network(case)
    d = full_image(case)
    meta = json.loads((d / "layers.json").read_text())
    outputs = net.forward(np.load(d / "input.npy"))
    worst = 0.0
    for m, ours in zip(meta["layers"], outputs, strict=True):
        ref = np.load(d / m["file"])
        worst = max(worst, rel_err(ours, ref))
    assert worst <= 3e-5, worst


def _images_with_input(case: str) -> list[Path]:
    return sorted(p for p in (REF / case).iterdir() if (p / "input.npy").is_file())


@pytest.mark.parametrize("case", CASES)
def test_detections_from_input_tensor_match_darknet_exactly(case: str) -> None:
    need_ref()
    det = Detector(network(case), read_names(REF / case / "coco.names"))
    images = _images_with_input(case)
    assert images
    for img in images:
        info = json.loads((img / "detections.json").read_text())
        x = np.load(img / "input.npy")
        outputs = det.forward(x)
        dets = det.postprocess(outputs, info["image_w"], info["image_h"]).detections()
        printed = (img / "printed.txt").read_text().splitlines()
        assert [d.darknet_line() for d in dets] == printed, img.name
        # the detection path (the [yolo] logistic left to the decoder): the same detections
        lean = det.postprocess(det.forward(x, keep=False), info["image_w"], info["image_h"])
        assert lean.detections() == dets, img.name
        for ours, ref in zip(dets, info["detections"], strict=True):
            assert ours.class_id == ref["class_id"]
            np.testing.assert_allclose(
                [ours.x, ours.y, ours.w, ours.h, ours.prob],
                [ref["x"], ref["y"], ref["w"], ref["h"], ref["prob"]],
                rtol=1e-4,
                atol=1e-6,
            )


@pytest.mark.parametrize("case", CASES)
def test_pre_nms_candidates_match(case: str) -> None:
    need_ref()
    det = Detector(network(case), read_names(REF / case / "coco.names"))
    img = _images_with_input(case)[0]
    info = json.loads((img / "detections.json").read_text())
    cands = det.candidates(
        det.forward(np.load(img / "input.npy")), info["image_w"], info["image_h"], info["thresh"]
    )
    assert len(cands) == info["num_boxes_before_nms"]
    ref = info["candidates_before_nms"]
    for r in ref:
        i = r["i"]
        np.testing.assert_allclose(cands.boxes[i], r["bbox"], rtol=1e-4, atol=1e-6)
        assert cands.objectness[i] == pytest.approx(r["objectness"], rel=1e-4)
        nz = {int(k): v for k, v in r["probs"].items()}
        ours = {int(k): float(v) for k, v in enumerate(cands.probs[i]) if v}
        assert set(ours) == set(nz)
        for k, v in nz.items():
            assert ours[k] == pytest.approx(v, rel=1e-4)


def test_real_yolov3_tiny_on_jpegs_close_to_darknet() -> None:
    """From the JPEG (OpenCV decoding, not stb_image): same objects, boxes within 2 px,
    probabilities within 2 points; boxes near the threshold may appear or vanish."""
    need_ref()
    case = "a_yolov3-tiny_coco"
    det = Detector(network(case), read_names(REF / case / "coco.names"))
    for img in sorted(p for p in (REF / case).iterdir() if p.is_dir()):
        info = json.loads((img / "detections.json").read_text())
        image = cv2.imread(str(REF / "images" / f"{img.name}.jpg"))
        ours = det.detect(image)
        ref = info["detections"]
        unmatched = list(ours)
        for r in ref:
            match = [
                d
                for d in unmatched
                if d.class_id == r["class_id"]
                and abs(d.left - r["left_x"]) <= 2
                and abs(d.top - r["top_y"]) <= 2
                and abs(d.width - r["width"]) <= 2
                and abs(d.height - r["height"]) <= 2
            ]
            if not match:
                assert abs(r["prob"] - info["thresh"]) < 0.02, (img.name, r)
                continue
            assert abs(match[0].prob - r["prob"]) < 0.02, (img.name, r)
            unmatched.remove(match[0])
        for d in unmatched:
            assert abs(d.prob - info["thresh"]) < 0.02, (img.name, d)


@pytest.mark.parametrize("case", CASES)
def test_detection_layer_outputs_of_other_images(case: str) -> None:
    need_ref()
    net = network(case)
    for img in _images_with_input(case):
        outputs = net.forward(np.load(img / "input.npy"))
        for f in sorted((img / "layers").glob("*.npy")):
            i = int(f.name[:3])
            assert rel_err(outputs[i], np.load(f)) <= 3e-5, (img.name, f.name)
