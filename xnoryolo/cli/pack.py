"""`xnoryolo pack` / `xnoryolo unpack`: darknet .weights <-> packed binary `.xnor` files.

The format is described in `xnoryolo.detector.packed` and docs/packed-format.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .common import write_atomic


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pack", help="pack cfg + darknet .weights into a compact .xnor file")
    p.add_argument("--cfg", required=True)
    p.add_argument("--weights", required=True, help="darknet .weights")
    p.add_argument("--names", help="class names to embed")
    p.add_argument("--out", required=True, help="output .xnor file")
    p.set_defaults(run=run_pack)

    p = sub.add_parser("unpack", help="convert a .xnor file back to cfg + darknet .weights")
    p.add_argument("packed", help=".xnor file")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--stem", help="file name stem (default: the .xnor file's)")
    p.set_defaults(run=run_unpack)


def _same(a: Any, b: Any) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def verify_same(original: Any, packed: Any) -> None:
    """Both networks run exactly the same arrays (signs, scales, folded weights and biases)."""
    from xnoryolo.detector.layers import BatchnormLayer, ConvolutionalLayer

    for a, b in zip(original.layers, packed.layers, strict=True):
        if isinstance(a, ConvolutionalLayer):
            assert isinstance(b, ConvolutionalLayer)
            ok = _same(a.folded_bias, b.folded_bias)
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
    from xnoryolo.detector.packed import pack

    cfg_text = Path(args.cfg).read_text()
    net = Network.load(args.cfg, args.weights, "numpy")
    names = read_names(args.names) if args.names else None
    data = pack(net, cfg_text, names)
    out = Path(args.out)
    write_atomic(out, data)
    verify_same(net, Network.from_packed(out, "numpy"))
    src = Path(args.weights).stat().st_size
    print(f"wrote {out}: {len(data)} bytes ({len(data) / src:.1%} of {src}); verified identical")
    return 0


def run_unpack(args: argparse.Namespace) -> int:
    from xnoryolo.detector import Network
    from xnoryolo.detector.packed import read_header, to_darknet_weights

    src = Path(args.packed)
    header, _ = read_header(src.read_bytes(), str(src))
    net = Network.from_packed(src, "numpy")
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
    verify_same(net, Network.load(cfg, weights, "numpy"))
    print("wrote " + ", ".join(map(str, written)) + "; verified identical")
    return 0
