"""/v1/streams: add, list, inspect, remove and reconnect streams."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from .manager import StreamConflict, StreamManager
from .schemas import StreamInfo
from .settings import StreamConfig
from .sources import InvalidSource

router = APIRouter(prefix="/v1/streams", tags=["streams"])


def manager_of(request: Request) -> StreamManager:
    return request.app.state.pipeline.manager


@router.post(
    "",
    status_code=201,
    response_model=StreamInfo,
    summary="Add a stream; answers its status object",
)
def add_stream(config: StreamConfig, request: Request, response: Response) -> dict[str, Any]:
    try:
        ms = manager_of(request).add(config)
    except StreamConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except (InvalidSource, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None
    response.headers["Location"] = f"/v1/streams/{ms.id}"
    return ms.to_json()


@router.get("", response_model=list[StreamInfo], summary="Status of every stream")
def list_streams(request: Request) -> list[dict[str, Any]]:
    return [ms.to_json() for ms in manager_of(request).list()]


@router.get("/{stream_id}", response_model=StreamInfo, summary="Status of one stream")
def get_stream(stream_id: str, request: Request) -> dict[str, Any]:
    return manager_of(request).get(stream_id).to_json()


@router.delete("/{stream_id}", response_model=StreamInfo, summary="Stop and remove a stream")
def delete_stream(stream_id: str, request: Request) -> dict[str, Any]:
    ms = manager_of(request).remove(stream_id)
    request.app.state.pipeline.snapshots.forget(stream_id)
    return ms.to_json()


@router.post(
    "/{stream_id}/reconnect",
    response_model=StreamInfo,
    summary="Reconnect now (skips any backoff wait)",
)
def reconnect_stream(stream_id: str, request: Request) -> dict[str, Any]:
    return manager_of(request).reconnect(stream_id).to_json()
