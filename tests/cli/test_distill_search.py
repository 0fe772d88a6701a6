"""The layout search's pieces: cfg rewriting, binary share, choosing the layout (needs torch)."""

from __future__ import annotations

import pytest

from cli_helpers import xnoryolo
from refdata import CONFIGS
from xnoryolo.detector import Network

pytest.importorskip(
    "torch", reason="torch is not installed (pip install torch==2.13.0; the `train` extra)"
)
from xnoryolo.distill.search import Explored, binary_share, pick, with_xnor

FULL = CONFIGS / "yolov3-tiny_xnor.cfg"


def _xnor(net: Network) -> list[int]:
    return [ly.index for ly in net.layers if getattr(ly, "xnor", False)]


def test_with_xnor_rewrites_exactly_the_named_layers(tmp_path) -> None:
    text = FULL.read_text()
    assert _xnor(Network.from_cfg(FULL)) == [2, 4, 6, 8, 10, 12, 13, 18, 21]
    cfg = tmp_path / "l.cfg"
    cfg.write_text(with_xnor(text, {4, 13, 14}))
    net = Network.from_cfg(cfg)
    assert _xnor(net) == [4, 13, 14]
    # bin_output stays only where the layer had it and is still XNOR
    assert net.layers[4].bin_output and not net.layers[13].bin_output
    assert not net.layers[2].bin_output
    cfg.write_text(with_xnor(text, set()))
    assert _xnor(Network.from_cfg(cfg)) == []


def test_binary_share_of_the_shipped_layouts() -> None:
    assert binary_share(Network.from_cfg(FULL)) == pytest.approx(0.88, abs=0.01)
    l2 = binary_share(Network.from_cfg(CONFIGS / "yolov3-tiny_xnor-l2float.cfg"))
    assert 0.80 <= l2 < 0.88
    partial = binary_share(Network.from_cfg(CONFIGS / "yolov3-tiny_xnor-partial.cfg"))
    assert partial == pytest.approx(0.59, abs=0.01)


def _row(stage: str, agreement: float | None, ms: float) -> Explored:
    return Explored(stage, [], 0.5, 1.0, agreement, {}, ms, f"{stage}.cfg", None)


def test_pick_takes_the_fastest_layout_at_the_target() -> None:
    rows = [_row("a", 0.95, 14.0), _row("b", 0.91, 9.0), _row("c", 0.93, 10.0)]
    assert pick(rows, 0.92).stage == "c"
    assert pick(rows, 0.99) is None
    assert pick([_row("u", None, 1.0)], 0.5) is None  # undefined agreement never qualifies
    assert "undefined" in _row("u", None, 1.0).row()


def test_target_agreement_needs_minutes(tmp_path) -> None:
    r = xnoryolo(
        "distill", "--teacher-cfg", "a", "--teacher-weights", "b", "--student-cfg", FULL,
        "--names", "d", "--data", "e", "--out", tmp_path, "--steps", "1",
        "--target-agreement", "0.9",
    )  # fmt: skip
    assert r.returncode == 2 and "--minutes" in r.stderr
