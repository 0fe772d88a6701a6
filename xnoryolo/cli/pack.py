"""`xnoryolo pack` / `xnoryolo unpack`: darknet .weights <-> packed binary `.xnor` files.

The format is described in `xnoryolo.detector.packed` and docs/packed-format.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .common import UsageError, write_atomic


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pack",
        help="pack cfg + darknet .weights into a compact .xnor file (optionally calibrated "
        "for int8)",
    )
    p.add_argument("--cfg", help="darknet .cfg (default: the one a .xnor --weights embeds)")
    p.add_argument("--weights", required=True, help="darknet .weights (or a .xnor to repack)")
    p.add_argument("--names", help="class names to embed")
    p.add_argument("--out", required=True, help="output .xnor file")
    p.add_argument(
        "--calibrate",
        metavar="VIDEO_OR_DIR",
        help="measure int8 activation scales on frames of this video, image or image "
        "directory and store them (the model then runs int8 by default)",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=64,
        help="--calibrate: how many frames, evenly spread over --range (default 64)",
    )
    p.add_argument("--range", dest="frame_range", help="--calibrate: frames A:B only (e.g. 0:600)")
    p.add_argument(
        "--percentile",
        type=float,
        default=None,
        help="--calibrate: activation range percentile per frame (default 99.99)",
    )
    p.add_argument(
        "--act-bits",
        type=int,
        choices=(8, 7),
        default=None,
        help="--calibrate: activation bits of the int8 layers' inputs but the first (default "
        "8; 7, with the first conv's weights within +-64, runs every int8 layer at about "
        "twice the rate on x86 CPUs without VNNI, such as AMD Zen 2/3 and Intel before Ice "
        "Lake, at a small cost in accuracy)",
    )
    p.add_argument("--threads", type=int, default=None, help="--calibrate: threads")
    p.set_defaults(run=run_pack)

    p = sub.add_parser("unpack", help="convert a .xnor file back to cfg + darknet .weights")
    p.add_argument("packed", help=".xnor file")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--stem", help="file name stem (default: the .xnor file's)")
    p.set_defaults(run=run_unpack)


def _same(a: Any, b: Any) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def verify_same(original: Any, packed: Any, quant: bool = True) -> None:
    """Both networks run exactly the same arrays (signs, scales, folded weights and biases)
    and, with `quant`, the same int8 input quantisation."""
    from xnoryolo.detector.layers import BatchnormLayer, ConvolutionalLayer

    for a, b in zip(original.layers, packed.layers, strict=True):
        if isinstance(a, ConvolutionalLayer):
            assert isinstance(b, ConvolutionalLayer)
            ok = _same(a.folded_bias, b.folded_bias) and (not quant or a.act_quant == b.act_quant)
            if a.xnor:
                ok = ok and _same(a.signs, b.signs) and _same(a.scale, b.scale)
            else:
                ok = ok and _same(a.weights, b.weights)
            if not ok:
                raise AssertionError(f"{a.where}: packed arrays differ from the original")
        elif isinstance(a, BatchnormLayer) and a.params is not None:
            assert isinstance(b, BatchnormLayer) and b.params is not None
            if not all(_same(x, y) for x, y in zip(a.params, b.params, strict=True)):
                raise AssertionError(f"{a.where}: packed arrays differ from the original")


def run_pack(args: argparse.Namespace) -> int:
    from xnoryolo.detector import Network, read_names
    from xnoryolo.detector.packed import is_packed, pack, packed_names, read_packed

    packed_in = is_packed(args.weights)
    if args.cfg is not None:
        cfg_text = Path(args.cfg).read_text()
    elif packed_in:
        cfg_text = read_packed(Path(args.weights))[0]["cfg"]
    else:
        raise UsageError("--cfg is needed with darknet .weights")
    if args.calibrate is None and (
        args.frame_range or args.percentile is not None or args.act_bits is not None
    ):
        raise UsageError("--range, --percentile and --act-bits go with --calibrate")
    net = Network.load(args.cfg, args.weights, "numpy", precision="f32")
    names: list[str] | None
    if args.names:
        names = read_names(args.names)
    else:
        names = packed_names(args.weights) if packed_in else None
    calibration = None
    if args.calibrate is not None:
        calibration = _calibrate(net, args)
    data = pack(net, cfg_text, names, calibration)
    out = Path(args.out)
    write_atomic(out, data)
    verify_same(net, Network.from_packed(out, "numpy", precision="f32"))
    src = Path(args.weights).stat().st_size
    print(f"wrote {out}: {len(data)} bytes ({len(data) / src:.1%} of {src}); verified identical")
    return 0


def _calibrate(net: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Measure the int8 input quantisation of `net`'s non-binary convs on frames (a fast f32
    copy of it runs them) and give it to `net`; returns the header's calibration record."""
    from xnoryolo.detector import Detector, Network, calibrate
    from xnoryolo.detector.video import iter_frames, open_source, parse_range

    if args.frames < 1:
        raise UsageError("--frames must be >= 1")
    percentile = calibrate.DEFAULT_PERCENTILE if args.percentile is None else args.percentile
    if not 50.0 < percentile <= 100.0:
        raise UsageError("--percentile must be in (50, 100]")
    source = open_source(args.calibrate)
    start, stop = parse_range(args.frame_range)
    end = source.count if stop is None else min(stop, source.count)
    if end <= start:
        raise UsageError(f"{args.calibrate}: no frames in range {start}:{end}")
    picks = np.unique(np.linspace(start, end - 1, min(args.frames, end - start)).round())
    runner = Network.load(args.cfg, args.weights, "auto", args.threads, precision="f32")
    detector = Detector(runner)
    tensors = (detector.preprocess(f) for _, f in iter_frames(source, picks.astype(int).tolist()))
    bits = args.act_bits or 8
    quants, frames = calibrate.measure(runner, tensors, percentile, bits)
    calibrate.apply(net, quants)
    print(f"calibrated int8 on {frames} frames of {source.name} ({bits}-bit activations)")
    record: dict[str, Any] = {"frames": frames, "source": source.name, "percentile": percentile}
    if bits != 8:
        record["act_bits"] = bits
    return record


def run_unpack(args: argparse.Namespace) -> int:
    from xnoryolo.detector import Network
    from xnoryolo.detector.packed import read_header, to_darknet_weights

    src = Path(args.packed)
    header, _ = read_header(src.read_bytes(), str(src))
    net = Network.from_packed(src, "numpy", precision="f32")
    out = Path(args.out)
    stem = args.stem or src.stem
    cfg, weights = out / f"{stem}.cfg", out / f"{stem}.weights"
    write_atomic(cfg, header["cfg"])
    write_atomic(weights, to_darknet_weights(net))
    written = [cfg, weights]
    if header.get("names"):
        names = out / f"{stem}.names"
        write_atomic(names, "\n".join(header["names"]))
        written.append(names)
    # darknet .weights have no place for int8 calibration: the f32 arrays must match exactly
    verify_same(net, Network.load(cfg, weights, "numpy"), quant=False)
    print("wrote " + ", ".join(map(str, written)) + "; verified identical")
    if any(getattr(layer, "act_quant", None) is not None for layer in net.layers):
        print(
            f"note: {src.name}'s int8 calibration is not in darknet .weights; the unpacked "
            "model runs f32 until packed again with `xnoryolo pack --calibrate VIDEO`"
        )
    return 0
