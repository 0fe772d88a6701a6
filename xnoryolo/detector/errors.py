"""Errors and warnings raised for bad models: one clear line naming the file and line or layer."""

from __future__ import annotations

from pathlib import Path


class XnoryoloError(Exception):
    """Base of every error the engine raises on bad input (cfg, weights, names, images)."""


class CfgError(XnoryoloError):
    """A `.cfg` that cannot describe a working network; the message starts with `file:line:`."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


class WeightsError(XnoryoloError):
    """A `.weights` file that does not fit its cfg (short, over-long, bad header)."""


class NamesError(XnoryoloError):
    """A class-names file that does not fit the model."""


class CfgWarning(UserWarning):
    """Something in a cfg that darknet accepts but is probably not what the author meant."""


class DarknetDivergenceWarning(UserWarning):
    """A layer where darknet's CPU path is defective; xnoryolo computes the consistent result."""


class ReferenceBackendWarning(RuntimeWarning):
    """The compiled kernels are not built, so the NumPy reference runs instead (~10x slower)."""
