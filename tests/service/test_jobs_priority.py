"""Jobs yield to live inference (priority: live), up to live_wait_max_s; not with equal."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from jobs_helpers import FakeDetector
from xnoryolo.service.inference import LiveActivity
from xnoryolo.service.jobs.service import JobService
from xnoryolo.service.settings import JobsConfig

pytestmark = pytest.mark.timeout(60)


def _gate_while_live_busy(tmp_path: Path, live_s: float, **config: object) -> tuple[float, bool]:
    """Seconds the job gate waited while one live call of `live_s` s ran, and whether the
    live call was still running when the gate let the job go."""
    live = LiveActivity(FakeDetector(delay=live_s))
    svc = JobService(JobsConfig.model_validate(config), tmp_path, live.detector, live)
    t = threading.Thread(target=live.detect, args=(np.zeros((8, 8, 3), np.uint8),))
    t.start()
    while live.wait_idle(0):  # until the live call is in flight
        time.sleep(0.001)
    t0 = time.monotonic()
    svc._gate()
    waited = time.monotonic() - t0
    still_busy = t.is_alive()
    t.join()
    return waited, still_busy


def test_job_frame_waits_for_live_inference(tmp_path: Path) -> None:
    waited, still_busy = _gate_while_live_busy(tmp_path, 0.4, live_wait_max_s=10)
    assert not still_busy and 0.2 < waited < 5


def test_the_wait_is_bounded(tmp_path: Path) -> None:
    waited, still_busy = _gate_while_live_busy(tmp_path, 1.5, live_wait_max_s=0.1)
    assert still_busy and waited < 1.0


def test_equal_priority_does_not_wait(tmp_path: Path) -> None:
    waited, still_busy = _gate_while_live_busy(tmp_path, 1.0, priority="equal")
    assert still_busy and waited < 0.5


def test_live_activity_passes_the_detector_through() -> None:
    inner = FakeDetector()
    live = LiveActivity(inner)
    assert live.names == inner.names and live.delay == 0.0
    assert [d.name for d in live.detect(np.zeros((8, 8, 3), np.uint8))] == [
        "person",
        "bicycle",
        "car",
    ]
    assert live.wait_idle(0)
