"""xnoryolo: darknet-exact binary (XNOR) Tiny-YOLO detection for edge CPUs."""

import os as _os

__version__ = "0.1.0"

# Installed, the engine, kernels and service are the subpackages xnoryolo.detector/kernels/service
# (pyproject maps the top-level folders to them). Imported from a source checkout (python -m
# xnoryolo in the repository root), let the same names resolve to those folders.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "detector", "__init__.py")) and _root not in __path__:
    __path__.append(_root)
