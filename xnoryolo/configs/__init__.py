"""Model cfgs, the shipped default binary model and the demo clip (package data).

The default model is a binary yolov3-tiny distilled for the demo scene (vtest.avi); see
default/MODEL.md beside this file: it is scene-specialised."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "default/yolov3-tiny_xnor-partial_vtest.xnor"
DEMO_CLIP = "demo/vtest-heldout.mp4"


def configs_dir() -> Path:
    return Path(str(resources.files(__name__)))


def default_model() -> Path:
    """Path of the packed default model; FileNotFoundError if this install lacks it."""
    path = configs_dir() / DEFAULT_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"the default model is missing from this install ({path})")
    return path
