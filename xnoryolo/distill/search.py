"""Layout search: the fastest binary layout whose held-out agreement reaches a target.

1. Sensitivity scan: each layer the user allows to be binary (the XNOR layers of the student
   cfg), binarized alone in the teacher, recalibrated and warm-started, scored by held-out
   agreement after a short fine-tune. Its cost: the agreement lost per binary MAC gained.
2. Progressive binarization: layers are added cheapest first, one per stage; each stage
   fine-tunes the previous stage's student (its binary layers stay binary) for an equal share
   of the remaining budget, and its layout's frame time is measured with `xnoryolo bench`.
   The search stops at the first stage below the target (or at the end of the budget).
3. The answer is the fastest explored layout at or above the target; every explored layout is
   written to OUT/search.md and OUT/search.json.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xnoryolo.detector import Network
from xnoryolo.detector.layers import ConvolutionalLayer, YoloLayer

from .model import DistillError
from .train import TrainConfig, distill


def conv_macs(network: Network) -> dict[int, int]:
    """Multiply-accumulates of each convolution (one frame)."""
    out = {}
    for ly in network.layers:
        if isinstance(ly, ConvolutionalLayer):
            s = ly.spec
            _, h, w = ly.out_shape
            out[ly.index] = h * w * s.filters * (s.c // s.groups) * s.size * s.size
    return out


def binary_share(network: Network) -> float:
    macs = conv_macs(network)
    xnor = sum(m for i, m in macs.items() if getattr(network.layers[i], "xnor", False))
    return xnor / max(1, sum(macs.values()))


def with_xnor(cfg_text: str, binary: set[int]) -> str:
    """The cfg with xnor=1 on exactly the layers in `binary` (indices as darknet counts them;
    [net] is not a layer). bin_output is kept only where the layer stays XNOR."""
    parts = re.split(r"(?m)^(?=\s*\[)", cfg_text)
    out, index = [], -1
    for part in parts:
        m = re.match(r"\s*\[([^\]]+)\]", part)
        if m is None:
            out.append(part)
            continue
        if m.group(1).strip() not in ("net", "network"):
            index += 1
        if m.group(1).strip() in ("convolutional", "conv"):
            had_bin = re.search(r"(?m)^\s*bin_output\s*=\s*1", part) is not None
            body = re.sub(r"(?m)^\s*(xnor|bin_output)\s*=.*\n?", "", part)
            if index in binary:
                head, _, rest = body.partition("\n")
                extra = "xnor=1\n" + ("bin_output=1\n" if had_bin else "")
                body = f"{head}\n{extra}{rest}"
            part = body
        out.append(part)
    return "".join(out)


def bench_frame_ms(cfg: Path, size: int, threads: int = 1, runs: int = 20) -> float:
    """`xnoryolo bench`'s whole-frame median for a layout (random weights)."""
    cmd = [
        sys.executable, "-I", "-m", "xnoryolo", "bench", "--cfg", str(cfg), "--size", str(size),
        "--threads", str(threads), "--runs", str(runs), "--no-opencv", "--json",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if r.returncode != 0:
        raise DistillError(f"xnoryolo bench failed on {cfg}: {r.stderr.strip()[-300:]}")
    return float(json.loads(r.stdout)["frame_ms"])


@dataclass
class Explored:
    stage: str
    binary: list[int]
    binary_share: float
    minutes: float
    agreement: float | None
    per_class: dict[str, float | None]
    frame_ms: float | None
    cfg: str
    weights: str | None

    def row(self) -> str:
        agree = "undefined" if self.agreement is None else f"{self.agreement:.3f}"
        per = ", ".join(f"{k} {v:.3f}" for k, v in self.per_class.items() if v is not None)
        ms = "—" if self.frame_ms is None else f"{self.frame_ms:.1f}"
        return (
            f"| {self.stage} | {', '.join(map(str, self.binary)) or '—'} | "
            f"{100 * self.binary_share:.0f} % | {self.minutes:.1f} | {agree} | {per} | {ms} |"
        )


def search(
    teacher_cfg: str | Path,
    teacher_weights: str | Path,
    student_cfg: str | Path,
    names_path: str | Path,
    data: Sequence[str | Path],
    out_dir: str | Path,
    cfg: TrainConfig,
    target: float,
    scan_minutes: float = 1.0,
    bench_threads: int = 1,
    log: Callable[[str], None] = print,
    frame_ms: Callable[[Path, int, int], float] = bench_frame_ms,
) -> dict[str, Any]:
    """Explore layouts within cfg.minutes (sensitivity scan, then stages); see the module."""
    if cfg.minutes is None:
        raise DistillError("the layout search needs a time budget (--minutes)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    text = Path(student_cfg).read_text()
    net = Network.from_cfg(student_cfg)
    allowed = [ly.index for ly in net.layers if getattr(ly, "xnor", False)]
    heads = {ly.index - 1 for ly in net.layers if isinstance(ly, YoloLayer)}
    allowed = [i for i in allowed if i not in heads]
    if not allowed:
        raise DistillError("the student cfg has no XNOR layer: nothing to search over")
    macs = conv_macs(net)
    explored: list[Explored] = []

    overheads: list[float] = []  # minutes a run spends outside training (labels, export, eval)

    def run(stage: str, binary: set[int], minutes: float, init: Explored | None) -> Explored:
        t_run = time.perf_counter()
        layout = out / f"{stage}.cfg"
        layout.write_text(with_xnor(text, binary))
        sub = replace(
            cfg,
            minutes=minutes,
            steps=None,
            init_cfg=None if init is None else init.cfg,
            init_weights=None if init is None else init.weights,
        )
        # the teacher's labels are the same for every stage: label the footage once
        stage_dir = out / stage
        stage_dir.mkdir(parents=True, exist_ok=True)
        if explored and not (stage_dir / "teacher-labels.json").exists():
            first = Path(explored[0].cfg).parent / "teacher-labels.json"
            if first.is_file():
                shutil.copyfile(first, stage_dir / "teacher-labels.json")
        report = distill(
            teacher_cfg, teacher_weights, layout, names_path, data, stage_dir, sub,
            log=lambda line: log(f"[{stage}] {line}"),
        )  # fmt: skip
        agree = report["heldout_agreement"]
        weights = Path(report["out"]["weights"])
        ms = frame_ms(Path(report["out"]["cfg"]), cfg.size, bench_threads)
        row = Explored(
            stage=stage,
            binary=sorted(binary),
            binary_share=binary_share(Network.from_cfg(layout)),
            minutes=float(report["minutes"]),
            agreement=None if agree is None else agree["mAP"],
            per_class={} if agree is None else {k: v["AP"] for k, v in agree["classes"].items()},
            frame_ms=ms,
            cfg=str(report["out"]["cfg"]),
            weights=str(weights),
        )
        overheads.append((time.perf_counter() - t_run) / 60 - row.minutes)
        explored.append(row)
        write_table(out, explored, target)
        log(row.row())
        return row

    # ---- 1. sensitivity: each allowed layer binary alone, a short fine-tune
    sens: dict[int, float] = {}
    for i in allowed:
        row = run(f"scan-{i}", {i}, scan_minutes, None)
        sens[i] = 1.0 - (row.agreement or 0.0)
    order = sorted(allowed, key=lambda i: sens[i] / max(1, macs[i]))
    log("binarization order (agreement lost per binary MAC, lowest first): " + ", ".join(
        f"{i} ({sens[i]:.3f})" for i in order
    ))  # fmt: skip

    # ---- 2. progressive stages, each from the previous student
    binary: set[int] = set()
    prev: Explored | None = None
    for k, i in enumerate(order):
        stages_left = len(order) - k
        left = cfg.minutes - (time.perf_counter() - t_start) / 60
        # each stage also exports, evaluates and benches (as long as a scan run did); when
        # the rest of the budget cannot give every stage left a scan's training time, the
        # stages that fit share it
        over = max(overheads) if overheads else 1.0
        fit = min(stages_left, int(left // (scan_minutes + over)))
        if fit < 1:
            log(f"budget spent: {left:.1f} min left, a stage needs {scan_minutes + over:.1f}")
            break
        per = left / fit - over
        binary.add(i)
        row = run(f"stage-{k + 1:02d}", set(binary), per, prev)
        if row.agreement is None or row.agreement < target:
            log(f"stage {k + 1} ({row.agreement}) is below the target {target}: stopping")
            break
        prev = row
    best = pick(explored, target)
    result = {
        "target": target,
        "best": None if best is None else best.__dict__,
        "explored": [e.__dict__ for e in explored],
        "minutes": round((time.perf_counter() - t_start) / 60, 2),
    }
    (out / "search.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def pick(explored: Sequence[Explored], target: float) -> Explored | None:
    """The fastest explored layout at or above the target."""
    ok = [e for e in explored if e.agreement is not None and e.agreement >= target]
    return min(ok, key=lambda e: (e.frame_ms or float("inf"), -e.binary_share), default=None)


def write_table(out: Path, explored: Sequence[Explored], target: float) -> None:
    lines = [
        f"# Layout search (target agreement {target})",
        "",
        "| stage | binary layers | binary MACs | minutes | agreement | per class | frame ms |",
        "|---|---|---|---|---|---|---|",
        *(e.row() for e in explored),
    ]
    best = pick(explored, target)
    lines += ["", f"fastest at or above the target: {best.stage if best else 'none'}"]
    (out / "search.md").write_text("\n".join(lines) + "\n")
