"""Request bodies bounded before they are read: every body but an upload (multipart, image/*,
video/* or application/octet-stream to an upload route) is cut off at `limits.max_body_kb`
(413, at once when the Content-Length already says so), and a body that does not arrive in
`limits.body_timeout_s` (an upload: that long without data) is refused (408) instead of
holding the request forever. Uploads are
bounded in size by their own reader (`uploads.py`)."""

from __future__ import annotations

import json

import anyio
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATHS = frozenset({"/v1/detect", "/v1/vision/detection", "/v1/jobs"})
UPLOAD_TYPES = (b"multipart/form-data", b"image/", b"video/", b"application/octet-stream")
# A client still sending when the answer is ready is read (and dropped) this long at most, so
# that it can read the answer instead of a reset connection.
DRAIN_S = 1.0


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


async def drain(receive: Receive, limit: int = 64 << 20) -> None:
    """Read and drop what the client is still sending, for `DRAIN_S` at most."""
    taken = 0
    with anyio.move_on_after(DRAIN_S):
        while taken <= limit:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            taken += len(message.get("body", b""))


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.timeout = timeout_s

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body // 1024} KB (limits.max_body_kb)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctype = (_header(scope, b"content-type") or b"").lower()
        upload = scope["path"] in UPLOAD_PATHS and ctype.startswith(UPLOAD_TYPES)
        limit = None if upload else self.max_body
        length = _header(scope, b"content-length")
        if length is not None and limit is not None:
            if not length.isdigit():
                await _answer(send, 400, "bad Content-Length")
                return
            if int(length) > limit:
                await drain(receive)
                await _answer(send, 413, self._too_large())
                return
        received = 0
        done = False
        # An upload may take long but must keep arriving; a small body must arrive whole in
        # the time (a peer dripping a byte a second holds nothing for long).
        deadline = None if upload else anyio.current_time() + self.timeout

        async def bounded_receive() -> Message:
            nonlocal received, done
            if done:  # the body is in: what follows is the wait for a disconnect
                return await receive()
            wait = self.timeout if deadline is None else deadline - anyio.current_time()
            with anyio.move_on_after(wait):
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    done = not message.get("more_body", False)
                    if limit is not None and received > limit:
                        await drain(receive)
                        raise HTTPException(413, self._too_large())
                return message
            raise HTTPException(
                408,
                f"the request body stopped arriving for {self.timeout:g} s (limits.body_timeout_s)",
            )

        await self.app(scope, bounded_receive, send)
