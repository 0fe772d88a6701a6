"""Session fixtures over tests/refdata.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from refdata import DEMO_CLIP, SHARED, yolov3_tiny_files
from xnoryolo.models import ModelFiles


@pytest.fixture(scope="session")
def yolov3_tiny() -> ModelFiles:
    return yolov3_tiny_files()


@pytest.fixture(scope="session")
def vtest_video() -> Path:
    """Real footage: ../shared/media/vtest.avi, else the bundled held-out clip cut from it."""
    full = SHARED / "media" / "vtest.avi"
    return full if full.is_file() else DEMO_CLIP
