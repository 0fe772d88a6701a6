"""Fetching a `url=` job's video into its folder, bounded by the upload size limit."""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from pathlib import Path

from xnoryolo.detector.video import Cancelled

from ..redact import redact
from .layout import JobFolder


class DownloadError(RuntimeError):
    """The video at a job's URL could not be fetched; the message says why (redacted)."""


def download(
    url: str, folder: JobFolder, limit_mb: float, timeout: float, cancel: threading.Event
) -> Path:
    """The video at `url`, saved as the job's input; Cancelled once `cancel` is set."""
    limit = int(limit_mb * 1024 * 1024)
    part = folder.part
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as f:
            size = 0
            while chunk := resp.read(1 << 16):
                if cancel.is_set():
                    raise Cancelled()
                size += len(chunk)
                if size > limit:
                    raise DownloadError(f"the video at the URL is larger than {limit_mb:g} MB")
                f.write(chunk)
    except OSError as exc:  # URLError, HTTPError, timeouts
        with contextlib.suppress(OSError):
            part.unlink()
        raise DownloadError(f"cannot download {redact(url)}: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    final = folder.input_for(None)
    part.replace(final)
    return final
