"""`xnoryolo dump`: every layer's output for an input tensor, in darknet's layout."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import UsageError, add_model_args


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dump", help="write every layer's output for an input tensor (.npy)")
    add_model_args(p, names=False)
    p.add_argument("--input", required=True, help="(c, h, w) float32 .npy input tensor")
    p.add_argument("--out", required=True, help="output directory for NNN_<type>.npy files")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from xnoryolo.detector import Network

    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.input}: cannot read a .npy tensor ({exc})") from None
    net = Network.load(args.cfg, args.weights, args.backend, args.threads)
    if x.shape != net.input_shape:
        raise UsageError(
            f"{args.input}: tensor shape {x.shape} does not match the network input "
            f"{net.input_shape} (c, h, w)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for layer, y in zip(net.layers, net.forward(x.astype(np.float32)), strict=True):
        np.save(out / f"{layer.index:03d}_{layer.type}.npy", y)
    print(f"wrote {len(net.layers)} layer outputs to {out}")
    return 0
