"""/v1/streams: add, list, inspect, remove and reconnect streams."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from ..policy import SourceRefused
from ..settings import StreamConfig
from ..streams.manager import StreamConflict, StreamLimit, UnknownClasses
from ..streams.sources import InvalidSource
from .deps import PipelineDep
from .schemas import StreamInfo

router = APIRouter(prefix="/v1/streams", tags=["streams"])


@router.post(
    "",
    status_code=201,
    response_model=StreamInfo,
    summary="Add a stream; answers its status object",
)
def add_stream(config: StreamConfig, pipeline: PipelineDep, response: Response) -> dict[str, Any]:
    try:
        ms = pipeline.manager.add(config)
    except (StreamConflict, StreamLimit) as exc:
        raise HTTPException(409, str(exc)) from None
    except SourceRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except (InvalidSource, UnknownClasses) as exc:
        raise HTTPException(422, str(exc)) from None
    response.headers["Location"] = f"/v1/streams/{ms.id}"
    return ms.to_json()


@router.get("", response_model=list[StreamInfo], summary="Status of every stream")
def list_streams(pipeline: PipelineDep) -> list[dict[str, Any]]:
    return [ms.to_json() for ms in pipeline.manager.list()]


@router.get("/{stream_id}", response_model=StreamInfo, summary="Status of one stream")
def get_stream(stream_id: str, pipeline: PipelineDep) -> dict[str, Any]:
    return pipeline.manager.get(stream_id).to_json()


@router.delete("/{stream_id}", response_model=StreamInfo, summary="Stop and remove a stream")
def delete_stream(stream_id: str, pipeline: PipelineDep) -> dict[str, Any]:
    ms = pipeline.manager.remove(stream_id)
    pipeline.snapshots.forget(stream_id)
    return ms.to_json()


@router.post(
    "/{stream_id}/reconnect",
    response_model=StreamInfo,
    summary="Reconnect now (skips any backoff wait)",
)
def reconnect_stream(stream_id: str, pipeline: PipelineDep) -> dict[str, Any]:
    return pipeline.manager.reconnect(stream_id).to_json()
