"""From boxes to answers: a ByteTrack-class multi-object tracker (`bytetrack.py`, with a
constant-velocity Kalman filter in `kalman.py`), counting lines and dwell zones
(`counting.py`), motion gating (`motion.py`), and `FrameAnalysis`, which puts them together
for one video or stream. Settings are `spec.py`'s models (YAML, API, job options)."""

from .analysis import FrameAnalysis
from .bytetrack import Tracker
from .events import AnalysisEvent, LineCrossed, ZoneEntered, ZoneLeft
from .spec import AnalysisSpec, LineSpec, MotionSpec, TrackerSpec, ZoneSpec

__all__ = [
    "AnalysisEvent",
    "AnalysisSpec",
    "FrameAnalysis",
    "LineCrossed",
    "LineSpec",
    "MotionSpec",
    "Tracker",
    "TrackerSpec",
    "ZoneEntered",
    "ZoneLeft",
    "ZoneSpec",
]
