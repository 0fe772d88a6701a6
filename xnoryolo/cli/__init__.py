"""`xnoryolo` command line: one module per command (detect, dump, models, pack, evaluate,
distill here; serve and bench in their packages); what they share is in common."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence

from xnoryolo import bench
from xnoryolo.service import cli as service_cli

from . import detect, distill, dump, evaluate, models, pack
from .common import format_warning, run_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xnoryolo",
        description="`xnoryolo` command line: detect objects, and the tools around it.",
    )
    # commands without --threads run with None, so the one check in run_command reads every
    # command's --threads the same way
    parser.set_defaults(threads=None)
    sub = parser.add_subparsers(dest="command", required=True)
    # every command adds its parser and sets `run`; this order is the order of --help
    detect.add_parser(sub)
    models.add_parser(sub)
    dump.add_parser(sub)
    service_cli.add_parser(sub)
    bench.add_parser(sub)
    for module in (distill, evaluate, pack):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = format_warning
    args = build_parser().parse_args(argv)
    return run_command(args.run, args)
