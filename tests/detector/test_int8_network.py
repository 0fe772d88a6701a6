"""precision="int8" through Network / Detector / packed files: the fast kernels and the NumPy
reference give identical outputs, calibration travels in .xnor files, f32 stays as it was."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from netgen import TINY, write_model
from xnoryolo.detector import Detector, Network, WeightsError, calibrate, packed, quantize
from xnoryolo.detector.layers import ConvolutionalLayer
from xnoryolo.detector.preprocess import preprocess, preprocess_bytes

# first conv -> maxpool -> binary convs -> float head: the XNOR layout in small
XNOR = """[net]
width=64
height=48
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
xnor=1
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=18
size=1
activation=linear

[yolo]
mask=0,1
anchors=4,5, 8,9, 12,14
classes=4
num=3
"""


# the default model's layout in small: an int8 conv (2) whose signs alone are read, by a
# maxpool before a binary conv and through a route with an upsampled binary layer
PARTIAL = """[net]
width=64
height=48
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=80
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
xnor=1
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[convolutional]
xnor=1
batch_normalize=1
filters=64
size=1
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers=-1,-5

[convolutional]
xnor=1
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[convolutional]
filters=18
size=1
activation=linear

[yolo]
mask=0,1
anchors=4,5, 8,9, 12,14
classes=4
num=3
"""


def _frames(n: int, h: int = 40, w: int = 57) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    out = []
    for _ in range(n):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img[: h // 2] = img[: h // 2] // 4 + 100  # some structure, not only noise
        out.append(img)
    return out


def _tensors(net: Network, letter_box: bool = True) -> list[np.ndarray]:
    c, h, w = net.input_shape
    return [preprocess(f, w, h, c, letter_box) for f in _frames(4)]


@pytest.fixture(params=["tiny", "xnor", "partial"])
def model(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    cfg = {"tiny": TINY, "xnor": XNOR, "partial": PARTIAL}[request.param]
    return write_model(tmp_path, cfg, seed=4)


def test_an_int8_conv_read_only_for_its_signs_writes_bits(tmp_path: Path) -> None:
    """The int8 conv 2 writes its sign bits for the pool and the route (no floats), and
    the detections' layers are those of the floats, bit for bit."""
    cfg, weights = write_model(tmp_path, PARTIAL, seed=4)
    for backend in ("fast", "numpy"):
        net = _calibrated(cfg, weights, backend)
        net.prepare(net.backend, precision="int8")
        plan = net.bits_plan
        if backend == "numpy":  # the reference kernels write no bits
            assert 2 not in plan
            continue
        assert plan[2].pool is None and not plan[2].want_float and plan[2].next_bits
        assert {3, 5, 6, 7} <= set(plan) and 0 in net.bytes_plan
        for x in _tensors(net):
            lean = net.head_outputs(net.forward(x, keep=False))
            full = net.forward(x, keep=True)
            assert np.array_equal(lean[10], full[10])


def _calibrated(cfg: Path, weights: Path, backend: str) -> Network:
    net = Network.load(cfg, weights, backend, threads=2, precision="f32")
    calibrate.calibrate(net, _tensors(net))
    return net


def test_fast_and_reference_int8_agree_exactly(model: tuple[Path, Path]) -> None:
    fast = _calibrated(*model, "fast")
    ref = _calibrated(*model, "numpy")
    assert fast.precision == ref.precision == "int8"
    convs = [ly for ly in fast.layers if isinstance(ly, ConvolutionalLayer)]
    assert all(ly.int8 != ly.xnor for ly in convs)
    assert convs[0].act_quant == quantize.INPUT_QUANT
    for x in _tensors(fast):
        a = fast.head_outputs(fast.forward(x, keep=False))  # the first conv's pool in bits
        b = ref.forward(x, keep=True)
        for d in fast.detection_layers:
            assert np.array_equal(a[d.index], b[d.index])


def test_int8_is_close_to_f32_and_f32_is_unchanged(model: tuple[Path, Path]) -> None:
    f32 = Network.load(*model, "fast", threads=1)
    assert f32.precision == "f32"  # not calibrated: f32
    int8 = _calibrated(*model, "fast")
    again = Network.load(*model, "fast", threads=1)
    int8.prepare(int8.backend, precision="f32")  # back to f32: the same floats as never int8
    for x in _tensors(f32):
        a, b = f32.forward(x), int8.forward(x)
        for d in f32.detection_layers:
            assert np.array_equal(a[d.index], b[d.index])
            assert np.array_equal(a[d.index], again.forward(x)[d.index])
    int8.prepare(int8.backend, precision="int8")
    x = _tensors(f32)[0]
    for d in f32.detection_layers:
        y, ref = int8.forward(x)[d.index], f32.forward(x)[d.index]
        assert np.abs(y - ref).max() < 0.25 * max(1.0, float(np.abs(ref).max()))


def test_int8_first_layer_takes_the_input_bytes(model: tuple[Path, Path]) -> None:
    """An int8 first layer on the pixel grid takes preprocess_bytes's bytes: the outputs are
    those of the float tensor (fast and NumPy kernels), detect feeds it bytes and finds the
    same detections; f32 takes floats only."""
    fast = _calibrated(*model, "fast")
    ref = _calibrated(*model, "numpy")
    assert fast.takes_bytes and ref.takes_bytes
    c, h, w = fast.input_shape
    for img in _frames(2):
        x = preprocess(img, w, h, c, True)
        xb = preprocess_bytes(img, w, h, c, True, threads=2)
        assert np.array_equal(xb, quantize.quantize_activations(x, quantize.INPUT_QUANT))
        for net in (fast, ref):
            for keep in (False, True):
                a, b = net.forward(x, keep=keep), net.forward(xb, keep=keep)
                for d in net.detection_layers:
                    assert np.array_equal(a[d.index], b[d.index])
    det = Detector(fast)
    img = _frames(1)[0]
    assert det.network_input(img).dtype == np.uint8
    want = det.postprocess(
        fast.forward(det.preprocess(img), keep=False), img.shape[1], img.shape[0]
    ).detections()
    assert [d.to_json() for d in det.detect(img)] == [d.to_json() for d in want]
    fast.prepare(fast.backend, precision="f32")
    assert not fast.takes_bytes and det.network_input(img).dtype == np.float32
    with pytest.raises(ValueError, match="uint8 input"):
        fast.forward(xb)


def test_int8_without_calibration_is_refused(model: tuple[Path, Path]) -> None:
    with pytest.raises(WeightsError, match="calibrat"):
        Network.load(*model, "numpy", precision="int8")
    with pytest.raises(ValueError, match="precision"):
        Network.load(*model, "numpy", precision="f16")


def test_calibration_travels_in_packed_files(model: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, weights = model
    net = _calibrated(cfg, weights, "numpy")
    plain = tmp_path / "plain.xnor"
    plain.write_bytes(packed.pack(Network.load(cfg, weights, "numpy"), cfg.read_text()))
    cal = tmp_path / "cal.xnor"
    record = {"frames": 4, "source": "noise", "percentile": 99.99}
    cal.write_bytes(packed.pack(net, cfg.read_text(), None, record))
    header, _ = packed.read_packed(cal)
    assert header["calibration"] == record and header["version"] == 1
    loaded = Network.load(None, cal, "numpy")
    assert loaded.precision == "int8"  # calibrated: int8 by default
    assert Network.load(None, plain, "numpy").precision == "f32"  # as before
    for a, b in zip(net.layers, loaded.layers, strict=True):
        if isinstance(a, ConvolutionalLayer):
            assert isinstance(b, ConvolutionalLayer) and a.act_quant == b.act_quant
    x = _tensors(net)[1]
    for d in net.detection_layers:
        assert np.array_equal(net.forward(x)[d.index], loaded.forward(x)[d.index])
    f32 = Network.load(None, cal, "numpy", precision="f32")
    orig = Network.load(cfg, weights, "numpy")
    for d in net.detection_layers:
        assert np.array_equal(f32.forward(x)[d.index], orig.forward(x)[d.index])


def test_detector_says_which_precision_runs(model: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, weights = model
    cal = tmp_path / "cal.xnor"
    cal.write_bytes(packed.pack(_calibrated(cfg, weights, "numpy"), cfg.read_text()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = Detector.from_files(None, cal, backend="fast", threads=1)
    info = det.info()
    assert info["precision"] == "int8"
    assert "non-binary convolutions" in info["int8_kernels"]
    img = _frames(1)[0]
    ref = Detector.from_files(None, cal, backend="numpy")
    assert [d.to_json() for d in det.detect(img)] == [d.to_json() for d in ref.detect(img)]
    f32 = Detector.from_files(None, cal, backend="fast", precision="f32")
    assert f32.info()["precision"] == "f32" and f32.info()["int8_kernels"] is None


def test_bad_int8_entry_is_a_clear_error(tmp_path: Path) -> None:
    cfg, weights = write_model(tmp_path, TINY)
    net = Network.load(cfg, weights, "numpy")
    net.layers[0].act_quant = quantize.ActQuant(0.5, 3)  # type: ignore[attr-defined]
    data = packed.pack(net, cfg.read_text()).replace(b'"zero":3', b'"zero":"x"')
    bad = tmp_path / "bad.xnor"
    bad.write_bytes(data)
    with pytest.raises(WeightsError, match="int8"):
        Network.load(None, bad, "numpy")


def test_range_quant() -> None:
    q = calibrate.range_quant(-1.0, 3.0)
    assert q.zero == 64 and abs(q.scale - 4.0 / 255) < 1e-9
    assert calibrate.range_quant(0.5, 2.0).zero == 0  # the range always holds 0.0
    assert calibrate.range_quant(0.0, 0.0) == quantize.ActQuant(1.0, 0)
    with pytest.raises(ValueError):
        quantize.ActQuant(0.0, 0)


def test_seven_bit_activations_run_exactly_and_travel_in_packed_files(
    model: tuple[Path, Path], tmp_path: Path
) -> None:
    """Calibrated to 7 bits: every int8 input but the network's own tops at 127, and the first
    conv's weights at 64; the fast kernels (on avx2 the vpmaddubsw tile) and the reference
    agree to the bit, and a packed file keeps both."""
    cfg, weights = model
    ref = Network.load(cfg, weights, "numpy", precision="f32")
    calibrate.calibrate(ref, _tensors(ref), bits=7)
    # the same quantisation for both (each backend's f32 floats may differ in a last bit)
    fast = Network.load(cfg, weights, "fast", threads=2, precision="f32")
    quants = {
        ly.index: ly.act_quant
        for ly in ref.layers
        if isinstance(ly, ConvolutionalLayer) and ly.act_quant is not None
    }
    calibrate.apply(fast, quants)
    fast.prepare(fast.backend, precision="int8")
    convs = [ly for ly in fast.layers if isinstance(ly, ConvolutionalLayer) and ly.int8]
    # the pixels stay 8 bits; the first conv's weights go to -64..64 instead
    assert convs[0].act_quant == quantize.input_quant(7) != quantize.INPUT_QUANT
    assert convs[0].act_quant.weight_top == 64 and fast.takes_bytes
    assert all(ly.act_quant is not None and ly.act_quant.top == 127 for ly in convs[1:])
    if fast.backend.int8 == "avx2":
        # the whole network on the vpmaddubsw tile, the first conv too
        assert {getattr(ly.kernel, "tile_name", None) for ly in convs} == {"avx2u7"}
    for x in _tensors(fast):
        a = fast.head_outputs(fast.forward(x, keep=False))
        b = ref.forward(x, keep=True)
        for d in fast.detection_layers:
            assert np.array_equal(a[d.index], b[d.index])
    cal = tmp_path / "cal7.xnor"
    cal.write_bytes(packed.pack(ref, cfg.read_text()))
    loaded = Network.load(None, cal, "numpy")
    for a, b in zip(ref.layers, loaded.layers, strict=True):
        if isinstance(a, ConvolutionalLayer):
            assert isinstance(b, ConvolutionalLayer) and a.act_quant == b.act_quant
    with pytest.raises(ValueError, match="bits"):
        calibrate.measure(ref, _tensors(ref), bits=6)


def test_range_quant_on_seven_bits() -> None:
    q = calibrate.range_quant(-1.0, 3.0, 127)
    assert q.top == 127 and q.zero == 32 and abs(q.scale - 4.0 / 127) < 1e-7
    assert calibrate.range_quant(0.0, 0.0, 127) == quantize.ActQuant(1.0, 0, 127)
