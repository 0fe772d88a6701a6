"""Opening the files a user names (cfg, weights, names, settings): only regular files, and
small ones read whole only up to a limit. A FIFO, a socket or a device given by mistake (or on
purpose) fails at once instead of blocking the open or filling memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class UnreadableFile(ValueError):
    """Why a named file cannot be read; the message follows the file's name."""


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (UnreadableFile otherwise; OSError
    where it cannot be opened). The open itself cannot block: a FIFO is opened non-blocking,
    then refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile("not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small_file(path: str | Path, limit: int) -> bytes:
    """The whole of a regular file of at most `limit` bytes (UnreadableFile otherwise; OSError
    where it cannot be read)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise UnreadableFile(f"{size} bytes, more than {_amount(limit)}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"more than {_amount(limit)}")
    return data


def _amount(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"
