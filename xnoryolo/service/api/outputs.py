"""Detections out to any number of clients at once: Server-Sent Events, WebSocket, MJPEG,
the latest annotated snapshot, and darknet's `-json_port` JSON stream. Each client reads
its own bounded subscription, so a slow one only loses events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, WebSocket
from fastapi.responses import Response, StreamingResponse
from starlette.websockets import WebSocketDisconnect

from ..pipeline import Pipeline
from ..publish.hub import Subscription
from ..streams.events import DetectionEvent, Event, StateEvent
from ..streams.manager import StreamNotFound
from .deps import PipelineDep

router = APIRouter(tags=["outputs"])

BOUNDARY = "xnoryoloframe"
_NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@contextlib.contextmanager
def _subscription(
    p: Pipeline, stream_id: str | None, maxsize: int | None = None
) -> Iterator[Subscription]:
    # Entered inside the response body's generator: a client gone before the body starts
    # never runs it, and a subscription made earlier would never be closed.
    sub = p.hub.subscribe(stream_id, maxsize, asyncio.get_running_loop())
    try:
        yield sub
    finally:
        sub.close()


def _event_name(event: Event) -> str:
    if isinstance(event, DetectionEvent):
        return "detections"
    if isinstance(event, StateEvent):
        return "state"
    return str(event.to_json()["type"])  # line_crossed, zone_entered, zone_left


async def _sse(
    p: Pipeline, stream_id: str | None, initial: list[dict[str, Any]]
) -> AsyncIterator[str]:
    keepalive = p.settings.keepalive_s
    with _subscription(p, stream_id) as sub:
        for status in initial:
            yield f"event: status\ndata: {json.dumps(status)}\n\n"
        while True:
            event = await sub.get(timeout=keepalive)
            if event is None:
                if sub.closed:
                    return
                yield ": keep-alive\n\n"
                continue
            data = json.dumps(event.to_json())
            yield f"event: {_event_name(event)}\ndata: {data}\n\n"


@router.get("/v1/streams/{stream_id}/events", summary="Server-Sent Events of one stream")
async def stream_events(stream_id: str, p: PipelineDep) -> StreamingResponse:
    status = p.manager.get(stream_id).to_json()  # 404 for an unknown stream
    return StreamingResponse(
        _sse(p, stream_id, [status]), media_type="text/event-stream", headers=_NO_BUFFERING
    )


@router.get("/v1/events", summary="Server-Sent Events of every stream")
async def all_events(p: PipelineDep) -> StreamingResponse:
    initial = [ms.to_json() for ms in p.manager.list()]
    return StreamingResponse(
        _sse(p, None, initial), media_type="text/event-stream", headers=_NO_BUFFERING
    )


@router.websocket("/v1/streams/{stream_id}/ws")
async def stream_ws(websocket: WebSocket, stream_id: str, p: PipelineDep) -> None:
    try:
        status = p.manager.get(stream_id).to_json()
    except StreamNotFound:
        await websocket.close(code=1008, reason="no such stream")
        return
    await websocket.accept()
    sub = p.hub.subscribe(stream_id, None, asyncio.get_running_loop())

    async def watch_close() -> None:
        # Notice a vanished client at once, not at the next event.
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sub.close()

    watcher = asyncio.create_task(watch_close())
    try:
        await websocket.send_json({"type": "status", **status})
        while True:
            event = await sub.get(timeout=p.settings.keepalive_s)
            if event is None:
                if sub.closed:
                    break
                await websocket.send_json({"type": "keepalive"})
                continue
            await websocket.send_json(event.to_json())
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        sub.close()
        watcher.cancel()


async def _mjpeg(p: Pipeline, stream_id: str) -> AsyncIterator[bytes]:
    with _subscription(p, stream_id, maxsize=1) as sub:  # only the newest picture matters
        try:
            event: Event | None = p.manager.latest(stream_id)
        except StreamNotFound:  # removed meanwhile
            return
        while True:
            if isinstance(event, DetectionEvent):
                jpeg = await anyio.to_thread.run_sync(p.snapshots.jpeg, event)
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                yield f"{head}Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n"
            event = await sub.get(timeout=p.settings.keepalive_s)
            if event is None and sub.closed:
                return


@router.get(
    "/v1/streams/{stream_id}/mjpeg",
    summary="Annotated frames as an MJPEG stream (multipart/x-mixed-replace)",
    response_class=StreamingResponse,
)
async def stream_mjpeg(stream_id: str, p: PipelineDep) -> StreamingResponse:
    p.manager.get(stream_id)  # 404 for an unknown stream
    return StreamingResponse(
        _mjpeg(p, stream_id),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers=_NO_BUFFERING,
    )


@router.get(
    "/v1/streams/{stream_id}/snapshot.jpg",
    summary="The latest annotated frame",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 503: {"description": "no result yet"}},
)
async def stream_snapshot(stream_id: str, p: PipelineDep) -> Response:
    event = p.manager.latest(stream_id)
    if event is None:
        raise HTTPException(503, "no processed frame yet", headers={"Retry-After": "1"})
    jpeg = await anyio.to_thread.run_sync(p.snapshots.jpeg, event)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def darknet_json(event: DetectionEvent) -> str:
    """One frame as darknet's `-json_port` server writes it (every class above threshold)."""
    objects = [
        {
            "class_id": d.class_id,
            "name": d.name,
            "relative_coordinates": {
                "center_x": round(d.x, 6),
                "center_y": round(d.y, 6),
                "width": round(d.w, 6),
                "height": round(d.h, 6),
            },
            "confidence": round(d.prob, 6),
        }
        for d in event.detections
    ]
    return json.dumps({"frame_id": event.frame.seq, "objects": objects})


async def _darknet_stream(p: Pipeline, stream_id: str) -> AsyncIterator[str]:
    keepalive = p.settings.keepalive_s
    with _subscription(p, stream_id) as sub:
        yield "[\n"
        sep = ""
        while True:
            event = await sub.get(timeout=keepalive)
            if event is None:
                if sub.closed:
                    return
                yield "\n"  # whitespace keeps proxies from timing the stream out
                continue
            if isinstance(event, DetectionEvent):
                yield f"{sep}{darknet_json(event)}\n"
                sep = ", \n"


@router.get(
    "/v1/streams/{stream_id}/darknet.json",
    summary="darknet -json_port compatible stream: a JSON array growing one frame at a time",
)
async def stream_darknet_json(stream_id: str, p: PipelineDep) -> StreamingResponse:
    p.manager.get(stream_id)  # 404 for an unknown stream
    return StreamingResponse(
        _darknet_stream(p, stream_id),
        media_type="application/json",
        headers=_NO_BUFFERING,
    )
