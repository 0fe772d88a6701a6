"""Small real clients for the service tests: SSE and MJPEG over httpx streaming."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import cv2
import httpx
import numpy as np


def read_sse(
    client: httpx.Client,
    path: str,
    until: Callable[[list[tuple[str, Any]]], bool],
    timeout: float,
    **kwargs: Any,
) -> list[tuple[str, Any]]:
    """(event name, JSON data) pairs from an SSE endpoint until `until(events)` holds."""
    events: list[tuple[str, Any]] = []
    deadline = time.monotonic() + timeout
    name = "message"
    with client.stream("GET", path, **kwargs) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:])))
                name = "message"
                if until(events):
                    return events
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"SSE {path}: condition not met in {timeout:g} s; got {events[-5:]}")


def read_mjpeg(client: httpx.Client, path: str, frames: int, timeout: float) -> list[np.ndarray]:
    """Decode `frames` JPEG parts of a multipart/x-mixed-replace stream."""
    images: list[np.ndarray] = []
    deadline = time.monotonic() + timeout
    with client.stream("GET", path) as resp:
        assert resp.status_code == 200, resp.read()
        ctype = resp.headers["content-type"]
        assert ctype.startswith("multipart/x-mixed-replace")
        boundary = ctype.split("boundary=")[1].encode()
        buf = b""
        for chunk in resp.iter_bytes():
            buf += chunk
            while True:
                start = buf.find(b"--" + boundary + b"\r\n")
                head_end = buf.find(b"\r\n\r\n", start)
                if start < 0 or head_end < 0:
                    break
                headers = dict(
                    line.split(b": ", 1) for line in buf[start:head_end].split(b"\r\n")[1:]
                )
                assert headers[b"Content-Type"] == b"image/jpeg"
                length = int(headers[b"Content-Length"])
                if len(buf) < head_end + 4 + length + 2:
                    break
                jpeg = buf[head_end + 4 : head_end + 4 + length]
                buf = buf[head_end + 4 + length + 2 :]
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert image is not None, "a part is not a JPEG"
                images.append(image)
                if len(images) >= frames:
                    return images
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"MJPEG {path}: {len(images)} of {frames} frames in {timeout:g} s")
