"""Layers and preprocessing against direct (loop) re-statements of darknet's C code, on shapes
the shared cases do not cover: asymmetric strides, dilation, groups, odd sizes, weighted
shortcuts, 4-channel inputs, letterbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from netgen import write_model
from refdata import CONFIGS
from xnoryolo.detector import DarknetDivergenceWarning, Detector, Network
from xnoryolo.detector.decode import Candidates, box_iou, correct_boxes, nms
from xnoryolo.detector.ops import ConvSpec, binary_conv, float_conv, maxpool
from xnoryolo.detector.preprocess import letterbox_image, resize_image, to_planar

F32 = np.float32
rng = np.random.default_rng(7)


def direct_conv(x, w, b, s: ConvSpec, binary: bool):  # type: ignore[no-untyped-def]
    """One output at a time, like a textbook; -1 padding and no dilation when binary."""
    dil = 1 if binary else s.dilation
    pad = s.padding * dil
    cg, fg = s.c // s.groups, s.filters // s.groups
    out = np.zeros((s.filters, s.out_h, s.out_w), np.float64)
    for f in range(s.filters):
        g = f // fg
        for oy in range(s.out_h):
            for ox in range(s.out_w):
                acc = 0.0
                for c in range(cg):
                    for ky in range(s.size):
                        for kx in range(s.size):
                            iy = oy * s.stride_y - pad + ky * dil
                            ix = ox * s.stride_x - pad + kx * dil
                            inside = 0 <= iy < s.h and 0 <= ix < s.w
                            v = x[g * cg + c, iy, ix] if inside else (-1.0 if binary else 0.0)
                            if binary:
                                v = 1.0 if v > 0 else -1.0
                            acc += v * w[f, c, ky, kx]
                out[f, oy, ox] = acc + b[f]
    return out


SPECS = [
    ConvSpec(3, 7, 9, 4, 3, stride_y=2, stride_x=1, padding=1),
    ConvSpec(4, 9, 8, 6, 3, padding=2, dilation=2),
    ConvSpec(6, 5, 7, 4, 3, padding=1, groups=2),
    ConvSpec(5, 6, 7, 3, 1, stride_y=2, stride_x=2),
    ConvSpec(2, 5, 5, 2, 5, padding=0),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_float_conv_matches_direct(spec: ConvSpec) -> None:
    x = rng.normal(size=(spec.c, spec.h, spec.w)).astype(F32)
    w = rng.normal(size=(spec.filters, spec.c // spec.groups, spec.size, spec.size)).astype(F32)
    b = rng.normal(size=spec.filters).astype(F32)
    ours = float_conv(x, w, b, spec, "linear")
    np.testing.assert_allclose(ours, direct_conv(x, w, b, spec, False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.groups == 1], ids=str)
def test_binary_conv_matches_direct(spec: ConvSpec) -> None:
    x = rng.normal(size=(spec.c, spec.h, spec.w)).astype(F32)
    x[0, 0, 0] = 0.0  # 0 is -1
    signs = rng.choice(
        np.array([-1, 1], np.int8), size=(spec.filters, spec.c, spec.size, spec.size)
    )
    scale = np.ones(spec.filters, F32)
    b = np.zeros(spec.filters, F32)
    ours = binary_conv(x, signs, scale, b, spec, "linear")
    np.testing.assert_array_equal(ours, direct_conv(x, signs.astype(F32), b, spec, True))


def test_maxpool_offsets_and_ignored_taps() -> None:
    x = rng.normal(size=(2, 5, 7)).astype(F32)
    for size, sy, sx, pad in [(2, 2, 2, 1), (2, 1, 1, 1), (3, 1, 1, 2), (3, 2, 3, 2), (5, 1, 1, 4)]:
        oh, ow = (5 + pad - size) // sy + 1, (7 + pad - size) // sx + 1
        ours = maxpool(x, size, sy, sx, pad, oh, ow)
        ref = np.full((2, oh, ow), -np.finfo(F32).max, F32)
        for oy in range(oh):
            for ox in range(ow):
                for ky in range(size):
                    for kx in range(size):
                        iy, ix = oy * sy - pad // 2 + ky, ox * sx - pad // 2 + kx
                        if 0 <= iy < 5 and 0 <= ix < 7:
                            ref[:, oy, ox] = np.maximum(ref[:, oy, ox], x[:, iy, ix])
        np.testing.assert_array_equal(ours, ref)


NET = """[net]
width=20
height=12
channels={channels}
{net_extra}
[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=mish

[shortcut]
from=-2
weights_type={wtype}
weights_normalization={wnorm}
activation=linear

[maxpool]
size=2
stride=2

[route]
layers=-1
groups=2
group_id=1

[upsample]
stride=2

[maxpool]
maxpool_depth=1
out_channels=2

[route]
layers=-1,-6

[convolutional]
filters=27
size=1
activation=linear

[yolo]
mask=0,1,2
anchors=3,4, 6,8, 10,9
classes=4
num=3
nms_kind=diounms
beta_nms=0.6
"""


@pytest.mark.parametrize(
    ("wtype", "wnorm"), [("per_feature", "relu"), ("per_channel", "softmax"), ("none", "none")]
)
def test_weighted_shortcut_route_groups_depth_maxpool(
    tmp_path: Path, wtype: str, wnorm: str
) -> None:
    cfg, weights = write_model(
        tmp_path, NET.format(channels=3, net_extra="", wtype=wtype, wnorm=wnorm)
    )
    raw = Network.from_cfg(cfg)
    raw.load_weights(weights)
    sc_w = raw.layers[2].weights  # type: ignore[attr-defined]
    net = Network.load(cfg, weights, "numpy")
    x = rng.random(net.input_shape, dtype=F32)
    out = net.forward(x)
    a, b = out[1], out[0]
    if wtype == "none":
        expect = a + b
    else:
        w = sc_w.reshape(2, -1).astype(np.float64)
        if wnorm == "relu":
            lr = np.maximum(w, 0.001)
            w = lr / (0.0001 + lr.sum(axis=0))
        else:
            e = np.exp(w - w.max(axis=0))
            w = e / (0.0001 + e.sum(axis=0))
        w0, w1 = (w[k][:, None, None] if w.shape[1] > 1 else w[k, 0] for k in (0, 1))
        expect = a * w0 + b * w1
    np.testing.assert_allclose(out[2], expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[4], out[3][4:8])  # second half of the channels
    np.testing.assert_array_equal(out[5], out[4].repeat(2, axis=1).repeat(2, axis=2))
    np.testing.assert_array_equal(out[6], np.maximum(out[5][0:2], out[5][2:4]))  # g, g+oc
    np.testing.assert_array_equal(out[7], np.concatenate([out[6], out[1]]))


def test_four_channel_input_and_letterbox(tmp_path: Path) -> None:
    cfg, weights = write_model(
        tmp_path, NET.format(channels=4, net_extra="letter_box=1", wtype="none", wnorm="none")
    )
    det = Detector(Network.load(cfg, weights, "numpy"), None, thresh=0.05)
    assert det.letter_box
    bgr = rng.integers(0, 256, size=(30, 80, 3), dtype=np.uint8)
    t = det.preprocess(bgr)
    assert t.shape == (4, 12, 20)
    np.testing.assert_array_equal(t[3, 2:9], 1.0)  # alpha 255 -> 1 inside the pasted image
    np.testing.assert_array_equal(t[:, :2], 0.5)  # letterbox bars: new_h = 30*20//80 = 7
    np.testing.assert_array_equal(t[:, 9:], 0.5)
    bgra = np.dstack([bgr, np.full((30, 80), 128, np.uint8)])
    t2 = det.preprocess(bgra)
    np.testing.assert_array_equal(t2[:3], t[:3])
    np.testing.assert_allclose(t2[3, 2:9], 128 / 255, rtol=1e-6)
    dets = det.detect(bgra)  # runs end to end with diounms from the last [yolo]
    assert all(d.prob > 0.05 for d in dets)


def test_letterbox_correction_inverts_the_letterbox() -> None:
    im_w, im_h, net_w, net_h = 80, 30, 20, 12
    # a box centred in the image occupies the pasted band of the network input
    new_h = (im_h * net_w) // im_w
    y_net = ((net_h - new_h) / 2 + new_h / 2) / net_h
    boxes = np.array([[0.5, y_net, 0.5, new_h / net_h / 2]], F32)
    out = correct_boxes(boxes, im_w, im_h, net_w, net_h, letter=True)
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0.5, 0.5], rtol=1e-6)


def darknet_resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet image.c resize_image, scalar float32, line by line."""
    c, ih, iw = im.shape
    part = np.zeros((c, ih, w), F32)
    ws = F32(iw - 1) / F32(w - 1)
    hs = F32(ih - 1) / F32(h - 1)
    for k in range(c):
        for r in range(ih):
            for col in range(w):
                if col == w - 1 or iw == 1:
                    val = im[k, r, iw - 1]
                else:
                    sx = F32(col) * ws
                    ix = int(sx)
                    dx = sx - F32(ix)
                    val = (F32(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
                part[k, r, col] = val
    out = np.zeros((c, h, w), F32)
    for k in range(c):
        for r in range(h):
            sy = F32(r) * hs
            iy = int(sy)
            dy = sy - F32(iy)
            for col in range(w):
                out[k, r, col] = (F32(1) - dy) * part[k, iy, col]
            if r == h - 1 or ih == 1:
                continue
            for col in range(w):
                out[k, r, col] += dy * part[k, iy + 1, col]
    return out


@pytest.mark.parametrize(("w", "h"), [(13, 7), (5, 11), (31, 17)])
def test_resize_is_bit_exact_with_darknets_loops(w: int, h: int) -> None:
    im = to_planar(rng.integers(0, 256, size=(9, 14, 3), dtype=np.uint8), 3)
    np.testing.assert_array_equal(resize_image(im, w, h), darknet_resize(im, w, h))
    assert letterbox_image(im, w, h).shape == (3, h, w)


def test_grey_conversion_like_stb() -> None:
    bgr = np.array([[[10, 200, 30]]], np.uint8)
    assert to_planar(bgr, 1)[0, 0, 0] == F32((77 * 30 + 150 * 200 + 29 * 10) >> 8) / F32(255)


def test_nms_is_per_class_and_strict() -> None:
    boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.8, 0.8, 0.1, 0.1]], F32)
    probs = np.array([[0.6, 0.0], [0.9, 0.7], [0.5, 0.0]], F32)
    out = nms(Candidates(boxes, np.ones(3, F32), probs), 0.45)
    # box 0 loses class 0 to the stronger overlapping box 1; class 1 untouched
    kept = {
        (round(float(b[0]), 2), k)
        for b, p in zip(out.boxes, out.probs, strict=True)
        for k in range(2)
        if p[k] > 0
    }
    assert kept == {(0.51, 0), (0.8, 0), (0.51, 1)}
    assert box_iou(boxes[0], boxes[1:2])[0] > 0.45


def test_darknet_cpu_defects_warn_and_compute_consistently(tmp_path: Path) -> None:
    text = """[net]
width=9
height=9
channels=3

[convolutional]
filters=4
size=3
stride_x=1
stride_y=2
pad=1
xnor=1
activation=relu6
"""
    with pytest.warns(DarknetDivergenceWarning) as rec:
        cfg, weights = write_model(tmp_path, text)
        net = Network.load(cfg, weights, "numpy")
    messages = " ".join(str(r.message) for r in rec)
    assert "relu6" in messages and "stride_x != stride_y" in messages
    x = rng.normal(size=net.input_shape).astype(F32)
    conv = net.layers[0]
    expect = binary_conv(x, conv.signs, conv.scale, conv.folded_bias, conv.spec, "linear")  # type: ignore[attr-defined]
    np.testing.assert_allclose(net.forward(x)[0], np.clip(expect, 0, 6), rtol=1e-6)


def test_yolo_and_upsample_match_their_plain_definitions() -> None:
    """The yolo layer's in-place logistic and the one-pass upsample give, bit for bit, the
    slice-wise activations.py logistic and np.repeat (extreme inputs included)."""
    from xnoryolo.detector.activations import activate

    net = Network.from_cfg(CONFIGS / "yolov3-tiny_xnor.cfg")
    yolo, up = net.layers[23], net.layers[19]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(yolo.in_shape) * 30).astype(np.float32)
    x.flat[:10] = [0, -0.0, 100, -100, 88.8, -88.8, 1e-30, np.inf, -np.inf, 17]
    ref = x.reshape(3, 85, 26, 26).copy()
    with np.errstate(over="ignore"):
        ref[:, 0:2] = activate(ref[:, 0:2], "logistic")
        ref[:, 4:] = activate(ref[:, 4:], "logistic")
    np.testing.assert_array_equal(yolo.forward(x, []), ref.reshape(yolo.out_shape))
    xu = rng.standard_normal(up.in_shape).astype(np.float32)
    np.testing.assert_array_equal(up.forward(xu, []), np.repeat(np.repeat(xu, 2, 1), 2, 2))


HEAD_CFG = """[net]
width=24
height=16
channels=3

[convolutional]
filters={filters}
size=1
activation=linear

[yolo]
mask=0,1,2
anchors=3,4, 6,8, 10,9
classes={classes}
num=3
scale_x_y={scale}
"""


@pytest.mark.parametrize(("classes", "scale"), [(4, 1.0), (80, 1.0), (3, 1.05), (7, 2.0)])
def test_deferred_logistic_decodes_exactly_like_the_full_output(
    tmp_path: Path, classes: int, scale: float
) -> None:
    """A lean forward leaves the [yolo] logistic to the decoder: the same candidates, bit for
    bit, as the full output, at thresholds that cut through the objectness values."""
    from xnoryolo.detector.layers import Logits, YoloLayer

    cfg, weights = write_model(
        tmp_path, HEAD_CFG.format(filters=3 * (classes + 5), classes=classes, scale=scale)
    )
    det = Detector(Network.load(cfg, weights, "numpy"), None)
    net = det.network
    head = net.layers[-1]
    assert isinstance(head, YoloLayer) and head.defers_logistic
    rng_h = np.random.default_rng(classes)
    for k in range(4):
        x = rng_h.random(net.input_shape, dtype=F32)
        full = net.forward(x, keep=True)
        lean = net.forward(x, keep=False)
        assert isinstance(lean[-1], Logits) and not isinstance(full[-1], Logits)
        np.testing.assert_array_equal(net.head_outputs(lean)[head.index], full[-1])
        # raw logits spread wide, some far past exp's float32 range
        raw = (rng_h.standard_normal(head.out_shape) * (4 + 30 * k)).astype(F32)
        wh = raw.reshape(3, classes + 5, -1)[:, 2:4]
        np.clip(wh, -8, 8, out=wh)  # box sizes stay finite
        lazy, eager = [x, raw.view(Logits)], [x, head.forward(raw, [])]
        assert np.array_equal(head.activated(lazy[1]), eager[1])
        assert head.activated(eager[1]) is eager[1]
        obj = np.sort(eager[1].reshape(3, classes + 5, -1)[:, 4].ravel())
        for thresh in (0.005, float(obj[len(obj) // 2]), float(obj[-3]), 0.999):
            a = det.candidates(lazy, 24, 16, thresh)
            b = det.candidates(eager, 24, 16, thresh)
            assert len(a) == len(b)
            for got, want in ((a.boxes, b.boxes), (a.objectness, b.objectness),
                              (a.probs, b.probs)):  # fmt: skip
                np.testing.assert_array_equal(got, want)
            if thresh >= obj[-3]:  # (NMS over hundreds of random boxes is slow)
                assert det.postprocess(lazy, 24, 16, thresh).detections() == (
                    det.postprocess(eager, 24, 16, thresh).detections()
                )
