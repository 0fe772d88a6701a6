"""Driving the web page in the system chromium with Playwright: the browser, a guard that
aborts (and records) any request leaving the box, the page's console errors, and a check
that a picture holds a real frame."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# Chromium reports each HTTP error answer (401, 404, 422…) on the console as "Failed to load
# resource"; the page shows those answers in words, so they are not errors of the page.
HTTP_STATUS_NOTE = "Failed to load resource: the server responded with a status of"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def playwright_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return "no system chromium (apt-get install chromium; .ci/apt-packages lists it)"
    return None


@dataclass
class PageWatch:
    """What went wrong in a page: uncaught exceptions, console errors, and requests to any
    host but this one (aborted before they leave)."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        page.route("**/*", self._route)

    def _console(self, msg: Any) -> None:
        if msg.type == "error" and not msg.text.startswith(HTTP_STATUS_NOTE):
            self.errors.append(f"console: {msg.text} at {msg.location}")

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        # No sandbox: CI runs as root in a container; no GPU in a headless test.
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    )


def picture_stats(png: bytes) -> tuple[float, int]:
    """(standard deviation of the grey levels, distinct grey levels) of a PNG: a real video
    frame has both high, a blank or broken picture has neither."""
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img is not None, "not an image"
    return float(img.std()), len(np.unique(img))


def save(path: Path, png: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path
