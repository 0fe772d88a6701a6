"""Frames from the user's footage: video files, image files, or directories of images.

A directory is one time-ordered sequence (files sorted by name). Frames are addressed by
(source, index) so splits can follow time: the held-out part of a sequence is its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


class FramesError(ValueError):
    """A data path that cannot be read as frames."""


@dataclass(frozen=True)
class Source:
    path: Path
    images: tuple[Path, ...]  # empty for a video
    count: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_video(self) -> bool:
        return not self.images


def _count_video(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise FramesError(f"{path}: not an image, a directory of images or a readable video")
    n = 0
    try:
        while cap.grab():  # grab without decoding: an exact count, unlike CAP_PROP_FRAME_COUNT
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise FramesError(f"{path}: no frame could be read")
    return n


def open_source(path: str | Path) -> Source:
    p = Path(path)
    if p.is_dir():
        images = tuple(
            sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        )
        if not images:
            raise FramesError(f"{p}: directory has no image files")
        return Source(p, images, len(images))
    if not p.is_file():
        raise FramesError(f"{p}: no such file or directory")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return Source(p, (p,), 1)
    return Source(p, (), _count_video(p))


def open_sources(paths: Iterable[str | Path]) -> list[Source]:
    return [open_source(p) for p in paths]


def parse_range(spec: str | None) -> tuple[int, int | None]:
    """'A:B' -> (A, B) half-open; 'A:' -> (A, None); None -> (0, None)."""
    if not spec:
        return 0, None
    try:
        a, b = spec.split(":", 1)
        start = int(a) if a else 0
        stop = int(b) if b else None
    except ValueError:
        raise FramesError(f"frame range {spec!r}: expected A:B (e.g. 600:795)") from None
    if start < 0 or (stop is not None and stop <= start):
        raise FramesError(f"frame range {spec!r}: need 0 <= A < B")
    return start, stop


def _read_image(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FramesError(f"{path}: not a decodable image")
    return image


def iter_frames(source: Source, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR uint8 frame) for the wanted indices, in increasing order."""
    wanted = sorted(set(indices))
    if not wanted:
        return
    if not source.is_video:
        for i in wanted:
            yield i, _read_image(source.images[i])
        return
    import cv2

    cap = cv2.VideoCapture(str(source.path), cv2.CAP_FFMPEG)
    try:
        k, i = 0, 0
        while k < len(wanted):
            if i < wanted[k]:
                if not cap.grab():
                    break
            else:
                ok, frame = cap.read()
                if not ok:
                    break
                yield i, frame
                k += 1
            i += 1
    finally:
        cap.release()
