"""The one reader of uploaded bodies, bounded in size: a multipart field or a raw body, taken
chunk by chunk as it arrives and cut off (413) at the size limit, whatever the Content-Length
said. Videos are streamed to disk, never held in memory (`save_multipart`, `save_body`); images
are collected in memory (`read_multipart`, `read_body`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from fastapi import HTTPException, Request
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from .bodies import DRAIN_S

MAX_FIELD_BYTES = 64 * 1024
# Past the limit the rest of the body is still read (and dropped) up to this much and this
# long, so that the client, still sending, reads our 413 instead of a reset connection.
DRAIN_BYTES = 64 * 1024 * 1024
# Form fields besides the file (a form of a million empty fields is refused, not collected).
MAX_FIELDS = 20


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        413, f"the upload is larger than the limit of {limit / 1024 / 1024:g} MB (max_upload_mb)"
    )


async def _drain(stream: AsyncIterator[bytes], already: int) -> None:
    try:
        with anyio.move_on_after(DRAIN_S):
            async for chunk in stream:
                already += len(chunk)
                if already > DRAIN_BYTES:
                    return
    except Exception:  # the client gave up: nothing to answer anyway
        return


class _Parts:
    """python-multipart callbacks: the file field's bytes are queued for writing, the other
    fields are collected as short strings."""

    def __init__(self, file_field: str, max_fields: int = MAX_FIELDS) -> None:
        self.file_field = file_field
        self.max_fields = max_fields
        self.parts = 0
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_seen = False
        self.pending: list[bytes] = []
        self._hfield = bytearray()
        self._hvalue = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._to_file = False
        self._skip = False
        self._value = bytearray()

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._hfield.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._hvalue.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_fields + 1:  # the file and its fields
            raise HTTPException(413, f"more than {self.max_fields} form fields")
        self._headers = {}
        self._value = bytearray()
        self._to_file = False
        self._skip = False

    def _header_end(self) -> None:
        self._headers[bytes(self._hfield).lower()] = bytes(self._hvalue)
        self._hfield.clear()
        self._hvalue.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name == self.file_field:
            if self.file_seen:
                raise HTTPException(400, f"more than one '{self.file_field}' part")
            self.file_seen = True
            self._to_file = True
            raw = params.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw else None
        elif b"filename" in params:  # some other file: not ours to keep
            self._skip = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._to_file:
            self.pending.append(bytes(data[start:end]))
            return
        if self._skip:
            return
        self._value.extend(data[start:end])
        if len(self._value) > MAX_FIELD_BYTES:
            raise HTTPException(413, f"the form field {self._name[:64]!r} is too long")

    def _end(self) -> None:
        if not self._to_file and not self._skip and self._name:
            self.fields[self._name] = self._value.decode("utf-8", "replace")


async def _refuse_declared_oversize(request: Request, limit: int) -> None:
    """413 (after draining) when the Content-Length already says the body is too large."""
    length = request.headers.get("content-length")
    if length is None:
        return
    if not length.isdigit():
        raise HTTPException(400, "bad Content-Length")
    if int(length) > limit:
        await _drain(request.stream(), 0)
        raise _too_large(limit)


async def _limited_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; 413 (after draining) once more than `limit` bytes
    have come, whatever the Content-Length said."""
    received = 0
    stream = request.stream()
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            await _drain(stream, received)
            raise _too_large(limit)
        yield chunk


Sink = Callable[[bytes], Awaitable[None]]


async def _receive_multipart(
    request: Request, limit: int, file_field: str, sink: Sink, max_fields: int
) -> tuple[bool, str | None, dict[str, str]]:
    """The multipart field `file_field` into `sink`; (whether it came, its filename, the
    other fields)."""
    await _refuse_declared_oversize(request, limit)
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "multipart/form-data without a boundary")
    parts = _Parts(file_field, max_fields)
    parser = MultipartParser(boundary, parts.callbacks())
    try:
        async for chunk in _limited_chunks(request, limit):
            parser.write(chunk)
            if parts.pending:
                data = b"".join(parts.pending)
                parts.pending.clear()
                await sink(data)
        parser.finalize()
    except MultipartParseError as exc:
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    return parts.file_seen, parts.filename, parts.fields


async def save_multipart(
    request: Request,
    dest: Path,
    limit: int,
    file_field: str = "file",
    max_fields: int = MAX_FIELDS,
) -> tuple[str | None, dict[str, str]]:
    """Write the multipart field `file_field` to `dest`; (its filename, the other fields)."""
    with dest.open("wb") as f:

        async def write(data: bytes) -> None:
            await anyio.to_thread.run_sync(f.write, data)

        seen, filename, fields = await _receive_multipart(
            request, limit, file_field, write, max_fields
        )
    if not seen:
        raise HTTPException(422, f"the multipart field '{file_field}' (a video file) is required")
    return filename, fields


async def save_body(request: Request, dest: Path, limit: int) -> None:
    """Write a raw request body (a video/* or application/octet-stream upload) to `dest`."""
    await _refuse_declared_oversize(request, limit)
    with dest.open("wb") as f:
        async for chunk in _limited_chunks(request, limit):
            await anyio.to_thread.run_sync(f.write, chunk)


async def read_multipart(
    request: Request, limit: int, file_field: str, max_fields: int = MAX_FIELDS
) -> tuple[bytes | None, dict[str, str]]:
    """The bytes of the multipart field `file_field` (None when absent) and the other fields."""
    data = bytearray()

    async def collect(chunk: bytes) -> None:
        data.extend(chunk)

    seen, _, fields = await _receive_multipart(request, limit, file_field, collect, max_fields)
    return (bytes(data) if seen else None), fields


async def read_body(request: Request, limit: int) -> bytes:
    """A raw request body."""
    await _refuse_declared_oversize(request, limit)
    data = bytearray()
    async for chunk in _limited_chunks(request, limit):
        data.extend(chunk)
    return bytes(data)
