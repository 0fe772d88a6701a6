"""The engines `xnoryolo bench --peers` times: each one is a name and a builder that, given the
shared inputs and a thread count, returns a function running one network forward on the
prepared input tensor. The peers (ONNX Runtime, OpenVINO, NNCF: the optional `.[peers]` extra)
are imported inside their builders only, so nothing of them loads unless this bench runs.

A builder that cannot run says why in one line (`Unavailable`); adding an engine is one entry
in `ENGINES`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xnoryolo.detector import Network

Forward = Callable[[], object]


class Unavailable(Exception):
    """The engine cannot run here; the message is the one line the bench prints for it."""


@dataclass
class Inputs:
    """What every engine builds from: the float twin's cfg text and weights, its ONNX graph,
    the timed input (1, C, H, W) and the calibration tensors, all from the same frames."""

    cfg_text: str  # the cfg as the user gave it, at the bench size
    twin_text: str  # its float twin
    weights: bytes
    onnx_model: bytes
    x: np.ndarray  # (1, C, H, W) float32: one preprocessed frame, timed by every engine
    calibration: Sequence[np.ndarray]  # (1, C, H, W) float32 each
    backend_simd: str | None  # XNORYOLO_SIMD cap for our kernels (None: best)
    isa: str | None = None  # the --isa tier this run is capped to (None: uncapped)
    cache: dict[str, Any] = field(default_factory=dict)  # quantised models, built once


@dataclass(frozen=True)
class Engine:
    name: str
    build: Callable[[Inputs, int], Forward]
    # the engine's ISA is capped by --isa (False: it picks its own, said in the output)
    capped: bool = True


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(f"{module} is not installed (pip install 'xnoryolo[peers]')") from None


# ---------------------------------------------------------------- OpenCV DNN


def _opencv(inputs: Inputs, threads: int) -> Forward:
    import tempfile
    from pathlib import Path

    import cv2

    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
        raise Unavailable("this OpenCV has no darknet importer")
    with tempfile.TemporaryDirectory(prefix="xnoryolo-bench-") as tmp:
        cfg_path, w_path = Path(tmp) / "twin.cfg", Path(tmp) / "twin.weights"
        cfg_path.write_text(inputs.twin_text, encoding="utf-8")
        w_path.write_bytes(inputs.weights)
        try:
            net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(w_path))
        except cv2.error as exc:
            raise Unavailable(f"OpenCV could not load the float twin: {exc}") from None
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    names = net.getUnconnectedOutLayersNames()
    x = inputs.x

    def forward() -> object:
        cv2.setNumThreads(threads)  # process-wide: set again before every run
        net.setInput(x)
        return net.forward(names)

    return forward


# ---------------------------------------------------------------- ONNX Runtime


def _ort_forward(model: bytes, threads: int, x: np.ndarray) -> Forward:
    ort = _need("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def _ort_f32(inputs: Inputs, threads: int) -> Forward:
    return _ort_forward(inputs.onnx_model, threads, inputs.x)


def ort_int8_model(inputs: Inputs) -> bytes:
    """The float graph quantised by ONNX Runtime's static QDQ quantiser: per-channel int8
    weights, uint8 activations with min-max ranges from the calibration frames."""
    if "ort_int8" in inputs.cache:
        return bytes(inputs.cache["ort_int8"])
    import tempfile
    from pathlib import Path

    _need("onnxruntime")
    from onnxruntime import quantization as q

    class Frames(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(inputs.calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {"input": x}

    with tempfile.TemporaryDirectory(prefix="xnoryolo-ort-") as tmp:
        src, dst = Path(tmp) / "f32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(inputs.onnx_model)
        q.quantize_static(
            str(src),
            str(dst),
            Frames(),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax,
        )
        model = dst.read_bytes()
    inputs.cache["ort_int8"] = model
    return model


def _ort_int8(inputs: Inputs, threads: int) -> Forward:
    return _ort_forward(ort_int8_model(inputs), threads, inputs.x)


# ---------------------------------------------------------------- OpenVINO (+ NNCF)


def _ov_model(inputs: Inputs) -> Any:
    ov = _need("openvino")
    if "ov_f32" not in inputs.cache:
        inputs.cache["ov_f32"] = ov.Core().read_model(inputs.onnx_model, b"")
    return inputs.cache["ov_f32"]


def ov_int8_model(inputs: Inputs) -> Any:
    """The float graph quantised by NNCF's post-training quantisation (its defaults: mixed
    preset, per-channel weights) on the calibration frames."""
    if "ov_int8" not in inputs.cache:
        model = _ov_model(inputs)
        # no network at run time: NNCF sends usage telemetry unless a consent file says no;
        # the variable its own CI sets turns that off (read when nncf is first imported)
        os.environ["NNCF_CI"] = "1"
        nncf = _need("nncf")
        frames = list(inputs.calibration)
        inputs.cache["ov_int8"] = nncf.quantize(
            model, nncf.Dataset(frames), subset_size=len(frames)
        )
    return inputs.cache["ov_int8"]


def _ov_compile(model: Any, threads: int, precision: str | None, x: np.ndarray) -> Forward:
    ov = _need("openvino")
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    return lambda: request.infer({0: x})


def _ov_f32(inputs: Inputs, threads: int) -> Forward:
    return _ov_compile(_ov_model(inputs), threads, "f32", inputs.x)


def _below_bf16(inputs: Inputs) -> bool:
    # OpenVINO picks bf16 from cpuid, not from oneDNN's cap: below the AMX tier that choice
    # fails to compile, and f32 is what a CPU of that tier would run
    return inputs.isa not in (None, "amx")


def _ov_default(inputs: Inputs, threads: int) -> Forward:
    # OpenVINO's own choice for a float model: bf16 where the CPU has AMX / AVX512-BF16
    if _below_bf16(inputs):
        raise Unavailable("n/a: = openvino f32 on this tier (no bf16 below AMX)")
    return _ov_compile(_ov_model(inputs), threads, None, inputs.x)


def _ov_int8(inputs: Inputs, threads: int) -> Forward:
    # the layers NNCF leaves in float run in OpenVINO's default precision (bf16 on AMX)
    precision = "f32" if _below_bf16(inputs) else None
    return _ov_compile(ov_int8_model(inputs), threads, precision, inputs.x)


# ---------------------------------------------------------------- xnoryolo


def _network(text: str, weights: bytes) -> Network:
    from xnoryolo.detector import Network
    from xnoryolo.detector.cfg import parse_cfg_text

    net = Network.from_cfg(parse_cfg_text(text, "<bench cfg>"))
    net.load_weights(weights)
    return net


def _prepare(net: Network, inputs: Inputs, threads: int, precision: str, bits: int) -> None:
    from xnoryolo.detector.backends.fast import fast_backend
    from xnoryolo.kernels.backend import get_simd

    backend = fast_backend(threads, inputs.backend_simd or get_simd())
    net.prepare(backend, precision="f32")
    if precision == "f32":
        return
    # int8: activation ranges from the same frames the int8 peers calibrate on
    from xnoryolo.detector.calibrate import calibrate

    calibrate(net, (x[0] for x in inputs.calibration), precision=precision, bits=bits)


def xnoryolo_engine(
    text_of: Callable[[Inputs], str], precision: str, bits: int = 8
) -> Callable[..., Forward]:
    def build(inputs: Inputs, threads: int) -> Forward:
        net = _network(text_of(inputs), inputs.weights)
        _prepare(net, inputs, threads, precision, bits)
        x = inputs.x[0]
        if net.takes_bytes:
            # what detect feeds an int8 first layer: the frame's bytes (preprocess_bytes),
            # which are these floats quantised on the pixel grid
            from xnoryolo.detector.quantize import INPUT_QUANT, quantize_activations

            x = quantize_activations(x, INPUT_QUANT)
        return lambda: net.forward(x, keep=False)

    return build


def _twin(inputs: Inputs) -> str:
    return inputs.twin_text


def _cfg(inputs: Inputs) -> str:
    return inputs.cfg_text


ENGINES: tuple[Engine, ...] = (
    Engine("opencv dnn f32", _opencv),  # its dispatched kernels: OPENCV_CPU_DISABLE
    Engine("onnxruntime f32", _ort_f32, capped=False),
    Engine("onnxruntime int8", _ort_int8, capped=False),
    Engine("openvino f32", _ov_f32),
    Engine("openvino default", _ov_default),
    Engine("openvino int8", _ov_int8),
    Engine("xnoryolo f32", xnoryolo_engine(_twin, "f32")),
    Engine("xnoryolo int8", xnoryolo_engine(_twin, "int8")),
    # the cfg as given (binary layers where it has them), when it differs from its twin
    Engine("xnoryolo cfg f32", xnoryolo_engine(_cfg, "f32")),
    Engine("xnoryolo cfg int8", xnoryolo_engine(_cfg, "int8")),
    # int8 inputs calibrated to 7 bits (but the first layer's): the avx2 path's fast tile
    Engine("xnoryolo int8 7-bit", xnoryolo_engine(_twin, "int8", 7)),
    Engine("xnoryolo cfg int8 7-bit", xnoryolo_engine(_cfg, "int8", 7)),
)
