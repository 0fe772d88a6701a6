"""`xnoryolo bench --peers`: the run's config, one tier in this process or each `--isa` tier in
a child process (tier.py), and the report."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .peer_bench import TIERS, cpu_name, format_tables, run_tier


def _tiers(spec: str | None) -> list[str | None]:
    from xnoryolo.detector.errors import XnoryoloError

    if not spec:
        return [None]
    names = list(TIERS) if spec.strip() == "all" else [s.strip() for s in spec.split(",")]
    bad = [n for n in names if n not in TIERS]
    if bad or not names:
        raise XnoryoloError(f"--isa {spec}: use all or some of {', '.join(TIERS)}")
    return list(names)


def _child(config: dict[str, Any], isa: str) -> dict[str, Any]:
    """The tier run in a fresh interpreter with the tier's caps in its environment."""
    env = {**os.environ, **TIERS[isa]}
    # -I: without the working directory on sys.path, so a source checkout there cannot
    # shadow the installed package (whose compiled kernels the tier needs)
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "xnoryolo.bench.tier"],
        input=json.dumps({**config, "isa": isa}),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return dict(json.loads(lines[-1]))
        except json.JSONDecodeError:
            pass
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
    return {"isa": isa, "note": f"the tier's process failed ({proc.returncode}): {err}",
            "engines": []}  # fmt: skip


def run_peers(args: argparse.Namespace) -> int:
    from xnoryolo.configs import DEMO_CLIP, configs_dir
    from xnoryolo.detector.errors import XnoryoloError
    from xnoryolo.detector.weights import random_weights

    from .cfg import read_cfg
    from .network import parse_network

    if args.threads is not None or args.simd or args.backend != "fast" or args.no_opencv:
        raise XnoryoloError(
            "--peers times every engine on 1 and 2 threads at its best ISA: cap the ISA with "
            "--isa, pick engines with --engines (not --threads, --simd, --backend, --no-opencv)"
        )
    cfg_text = read_cfg(args.cfg, args.size)
    if args.runs < 1 or args.warmup < 0 or args.frames < 1:
        raise XnoryoloError("--runs and --frames must be >= 1 and --warmup >= 0")
    tiers = _tiers(args.isa)
    calibrate = args.calibrate or str(configs_dir() / DEMO_CLIP)
    with tempfile.TemporaryDirectory(prefix="xnoryolo-peers-") as tmp:
        if args.weights:
            weights_path = args.weights
        else:
            weights_path = str(Path(tmp) / "random.weights")
            Path(weights_path).write_bytes(random_weights(parse_network(cfg_text, args.cfg)))
        config = {
            "cfg_text": cfg_text,
            "weights_path": weights_path,
            "calibrate": calibrate,
            "frames": args.frames,
            "runs": args.runs,
            "warmup": args.warmup,
            "engines": args.engines,
        }
        results = [
            run_tier({**config, "isa": None}) if isa is None else _child(config, isa)
            for isa in tiers
        ]
    result = {
        "cfg": args.cfg,
        "size": args.size,
        "weights": args.weights or "random",
        "cpu": cpu_name(),
        "runs": args.runs,
        "calibrate": calibrate,
        "tiers": results,
    }
    print(json.dumps(result) if args.json else format_tables(result))
    return 0
