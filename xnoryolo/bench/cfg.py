"""The cfg texts bench runs: the user's cfg at the bench size, and its float twin for OpenCV.

Both are the user's text with some lines edited: the project's cfg parser finds the options and
their lines (comments, spacing and repeated keys read as the engine reads them), and every other
line stays as it was, so the engine's messages name the user's file and lines.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xnoryolo.detector.cfg import Section

# the options that make a layer binary; without them a cfg is the float network of that shape
_BINARY_KEYS = ("xnor", "bin_output")


def read_cfg(path: str, size: int) -> str:
    """The cfg file at `path`, its network resized to `size` (a positive multiple of 32);
    bad input is an XnoryoloError of one line."""
    from pathlib import Path

    from xnoryolo.detector.errors import XnoryoloError

    if size < 32 or size % 32:
        raise XnoryoloError(f"--size {size}: must be a positive multiple of 32")
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise XnoryoloError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return resize_cfg(text, size, path)


def resize_cfg(text: str, size: int, path: str = "<cfg>") -> str:
    """The cfg with width= and height= of its first section ([net]) set to size."""
    net = _sections(text, path)[0]
    edits = {net.options[k].line: f"{k}={size}" for k in ("width", "height") if k in net.options}
    return _edit(text, edits) + "\n"


def float_twin(text: str, path: str = "<cfg>") -> str:
    """The cfg with every xnor= and bin_output= removed: the float network of the same shape
    (what OpenCV makes of an XNOR cfg anyway)."""
    drop: dict[int, str | None] = {
        opt.line: None
        for section in _sections(text, path)
        for key, opt in section.options.items()
        if key in _BINARY_KEYS
    }
    return _edit(text, drop)


def _sections(text: str, path: str) -> list[Section]:
    from xnoryolo.detector.cfg import parse_cfg_text
    from xnoryolo.detector.errors import CfgWarning

    # the network is built from these same lines and warns about what is odd in them once;
    # reading them here for their line numbers must not say it again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CfgWarning)
        return parse_cfg_text(text, path).sections


def _edit(text: str, edits: Mapping[int, str | None]) -> str:
    """The text with line n (1-based, as the parser counts) replaced by edits[n], or dropped
    where that is None."""
    out: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if n not in edits:
            out.append(line)
            continue
        new = edits[n]
        if new is not None:
            out.append(new)
    return "\n".join(out)
