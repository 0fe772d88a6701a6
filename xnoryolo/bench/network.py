"""The detectors bench times: the cfg at the bench size with the given (or random) weights, on
the chosen kernels and threads, and the same network on one thread beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xnoryolo.detector.weights import random_weights

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from xnoryolo.detector import Detector, Network


@dataclass(frozen=True)
class Subjects:
    detector: Detector
    # the same network on one thread, timed in turn with the first: a same-run ratio
    # (None when the first runs on one thread)
    detector_1_thread: Detector | None
    weights: bytes  # darknet .weights bytes, for the OpenCV peer too
    simd: str | None  # the fast kernels' SIMD path; None on the numpy backend


def resolve_threads(requested: int | None) -> int:
    """--threads, else XNORYOLO_THREADS, else all cores: the kernels' own rule."""
    from xnoryolo.detector.errors import XnoryoloError

    try:
        from xnoryolo.kernels.backend import default_threads
    except ImportError as exc:
        raise XnoryoloError(f"the fast kernels are not built ({exc})") from None
    try:
        return default_threads(requested)
    except ValueError as exc:
        raise XnoryoloError(str(exc)) from None


def build(
    cfg_text: str,
    cfg_path: str,
    weights: str | None,
    backend: str,
    simd: str | None,
    threads: int,
    thresh: float,
    precision: str = "f32",
    calibration: Sequence[np.ndarray] = (),
    act_bits: int = 8,
) -> Subjects:
    """Detectors of cfg_text (messages name cfg_path and its lines) on `threads` threads and,
    with more than one, on one thread; `weights` is a .weights file or None for random ones.
    With precision "int8" each network is calibrated on the `calibration` tensors
    ((C, H, W) float32, as Detector.preprocess makes them), activations to `act_bits`."""
    from xnoryolo.detector import Detector
    from xnoryolo.detector.errors import XnoryoloError

    network = parse_network(cfg_text, cfg_path)
    single = parse_network(cfg_text, cfg_path) if threads > 1 else None
    data = Path(weights).read_bytes() if weights else random_weights(network)
    chosen = None
    for net, n in ((network, threads), (single, 1)):
        if net is None:
            continue
        net.load_weights(data)
        if backend == "fast":
            # importable: resolve_threads read the thread count from the same module
            from xnoryolo.detector.backends.fast import fast_backend
            from xnoryolo.kernels.backend import get_simd

            try:
                chosen = simd or get_simd()
                net.prepare(fast_backend(n, chosen))
            except ValueError as exc:
                raise XnoryoloError(str(exc)) from None
        else:
            net.prepare("numpy", n)
        if precision == "int8":
            from xnoryolo.detector.calibrate import calibrate

            calibrate(net, calibration, bits=act_bits)
    return Subjects(
        Detector(network, thresh=thresh),
        None if single is None else Detector(single, thresh=thresh),
        data,
        chosen,
    )


def parse_network(cfg_text: str, cfg_path: str) -> Network:
    from xnoryolo.detector import Network
    from xnoryolo.detector.cfg import parse_cfg_text

    return Network.from_cfg(parse_cfg_text(cfg_text, cfg_path))
