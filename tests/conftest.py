"""Session fixtures: the real model, real footage, a real RTSP server; and the kernels' whole
thread team for every layer size."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from refdata import DEMO_CLIP, SHARED, yolov3_tiny_files
from service_helpers import RtspServer, gst_rtsp_available
from xnoryolo.models import ModelFiles


@pytest.fixture(scope="session")
def yolov3_tiny() -> ModelFiles:
    return yolov3_tiny_files()


@pytest.fixture(scope="session")
def model_files(yolov3_tiny: ModelFiles) -> ModelFiles:
    return yolov3_tiny


@pytest.fixture(scope="session")
def detector(model_files: ModelFiles) -> Any:
    from xnoryolo.detector import Detector

    return Detector.from_files(model_files.cfg, model_files.weights, model_files.names)


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    """Real 768x576 street footage: shared's vtest.avi, else the demo clip cut from it."""
    full = SHARED / "media" / "vtest.avi"
    return full if full.is_file() else DEMO_CLIP


@pytest.fixture(scope="session")
def vtest_h264(vtest_avi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s H.264 Annex-B loop of vtest.avi, made at test time (media is never committed)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (.ci/apt-packages lists it)")
    out = tmp_path_factory.mktemp("media") / "vtest.h264"
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y", "-i", str(vtest_avi), "-frames:v", "100", "-an"),
            *("-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast"),
            *("-pix_fmt", "yuv420p", "-g", "10", "-bf", "0"),
            *("-bsf:v", "h264_mp4toannexb", "-f", "h264", str(out)),
        ],
        check=True,
        timeout=120,
    )
    return out


@pytest.fixture
def rtsp_server(vtest_h264: Path) -> Iterator[RtspServer]:
    if not gst_rtsp_available():
        pytest.skip("GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is absent")
    server = RtspServer(vtest_h264, ("/cam1", "/cam2"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def whole_team(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small layers run on one thread (xconv's `team`: waking a worker costs more than their
    share); the kernel sweeps' 2-thread cases must still run the multi-threaded loops, so here
    every layer size gets the whole team."""
    from xnoryolo.kernels import xconv

    monkeypatch.setattr(xconv, "_MIN_TEAM_US", 0.0)
    monkeypatch.setattr(xconv, "_MIN_TEAM_POOL_TAPS", 0)
    monkeypatch.setattr(xconv, "_MIN_TEAM_POOL_WORDS", 0)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster on loopback (tests/helpers/pg_server.py)."""
    from pg_server import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (.ci/apt-packages lists postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is a dependency: pip install -e .")
    server = PostgresServer(bindir)
    try:
        yield server
    finally:
        server.stop()
        server.remove()


@pytest.fixture
def mosquitto() -> Iterator[Any]:
    """A real Mosquitto broker on loopback with a password (tests/helpers/mqtt_broker.py)."""
    from mqtt_broker import Broker, find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        pytest.skip("Mosquitto is not installed (.ci/apt-packages lists mosquitto)")
    broker = Broker(binary)
    try:
        yield broker
    finally:
        broker.remove()
