"""Detections made in a test, through a FrameAnalysis as a stream's decoder hands them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xnoryolo.detector import Detection, DetectionTable
from xnoryolo.tracking import FrameAnalysis


def tracked(
    analysis: FrameAnalysis,
    size: tuple[int, int],
    dets: Sequence[Detection],
    t: float,
    frame: int,
) -> tuple[list[Detection], list[Any]]:
    """The detections with their track ids, and the events they caused."""
    table = DetectionTable.from_detections(dets)
    ids, events = analysis.update(size, table, t, frame)
    return table.detections(ids), events
