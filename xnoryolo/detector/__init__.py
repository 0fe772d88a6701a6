"""Darknet engine: cfg + weights -> layer outputs and detections identical to darknet's."""

from .cfg import Cfg, read_cfg
from .detections import Detection, DetectionTable
from .detector import Detector, read_names
from .errors import (
    CfgError,
    CfgWarning,
    DarknetDivergenceWarning,
    NamesError,
    ReferenceBackendWarning,
    WeightsError,
    XnoryoloError,
)
from .network import Network

__all__ = [
    "Cfg",
    "CfgError",
    "CfgWarning",
    "DarknetDivergenceWarning",
    "Detection",
    "DetectionTable",
    "Detector",
    "NamesError",
    "Network",
    "ReferenceBackendWarning",
    "WeightsError",
    "XnoryoloError",
    "read_cfg",
    "read_names",
]
