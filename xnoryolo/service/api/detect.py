"""Single-image detection: `POST /v1/detect` and DeepStack's `POST /v1/vision/detection`."""

from __future__ import annotations

import time

import anyio
import cv2
import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from xnoryolo.detector import Detection, video

from ..imagelimits import ImageRefused, check_image
from ..pipeline import Pipeline
from ..settings import ServeSettings
from .deps import DetectLimiterDep, PipelineDep, SettingsDep
from .schemas import DetectResult
from .uploads import read_body, read_multipart

router = APIRouter(tags=["detection"])

_RAW_TYPES = ("image/", "application/octet-stream")


async def read_upload(
    request: Request, limit: int, max_fields: int
) -> tuple[bytes, dict[str, str]]:
    """The image bytes of a multipart field `image` or of a raw image body, and any other
    form fields."""
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        data, fields = await read_multipart(request, limit, "image", max_fields)
        if data is None:
            raise HTTPException(400, "the multipart field 'image' (a file) is required")
        return data, fields
    if ctype.startswith(_RAW_TYPES):
        return await read_body(request, limit), {}
    raise HTTPException(
        415, "send an image as multipart/form-data (field 'image') or as an image/* body"
    )


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """The image in `data`, its header checked against the pixel limit before decoding (400
    for what is not an image, 413 for one too large)."""
    if not data:
        raise HTTPException(400, "the image is empty")
    try:
        check_image(data, max_pixels)
    except ImageRefused as exc:
        raise HTTPException(413 if exc.too_large else 400, str(exc)) from None
    try:
        image = video.decode_image(data)
    except cv2.error:  # a header within the limits OpenCV still cannot take
        image = None
    if image is None or image.size == 0:
        raise HTTPException(400, "the upload is not a decodable image")
    return image


async def _decode(
    data: bytes, settings: ServeSettings, limiter: anyio.CapacityLimiter
) -> np.ndarray:
    # Decoding takes as much memory and CPU as inference: it waits for the same workers.
    return await anyio.to_thread.run_sync(
        decode_image, data, settings.limits.max_pixels, limiter=limiter
    )


async def _detect(
    p: Pipeline,
    limiter: anyio.CapacityLimiter,
    image: np.ndarray,
    thresh: float | None,
    nms: float | None,
) -> tuple[list[Detection], float]:
    t0 = time.perf_counter()
    dets = await anyio.to_thread.run_sync(
        lambda: p.detector.detect_table(image, thresh=thresh, nms=nms).detections(),
        limiter=limiter,
    )
    seconds = time.perf_counter() - t0
    p.metrics.inference.labels("request").observe(seconds)
    return dets, seconds * 1000.0


def _limit(settings: SettingsDep) -> int:
    return int(settings.max_upload_mb * 1024 * 1024)


@router.post(
    "/v1/detect",
    summary="Detect objects in one image (multipart field 'image' or a raw image body)",
    response_model=DetectResult,
)
async def detect(
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    limiter: DetectLimiterDep,
    threshold: float | None = Query(None, ge=0, le=1),
    nms: float | None = Query(None, ge=0, le=1),
    classes: str | None = Query(None, description="comma-separated class names to keep"),
) -> JSONResponse:
    data, _ = await read_upload(request, _limit(settings), settings.limits.max_form_fields)
    image = await _decode(data, settings, limiter)
    dets, ms = await _detect(pipeline, limiter, image, threshold, nms)
    if classes:
        keep = {c.strip() for c in classes.split(",") if c.strip()}
        dets = [d for d in dets if d.name in keep]
    # Built here rather than by the response model: each detection is `Detection.to_json()`,
    # the one JSON form (the model documents that same form).
    return JSONResponse(
        {
            "width": image.shape[1],
            "height": image.shape[0],
            "inference_ms": round(ms, 2),
            "detections": [d.to_json() for d in dets],
        }
    )


@router.post(
    "/v1/vision/detection",
    summary="DeepStack-compatible detection (multipart 'image', optional 'min_confidence')",
)
async def deepstack_detection(
    request: Request, pipeline: PipelineDep, settings: SettingsDep, limiter: DetectLimiterDep
) -> JSONResponse:
    try:
        data, fields = await read_upload(request, _limit(settings), settings.limits.max_form_fields)
        image = await _decode(data, settings, limiter)
        try:
            min_conf = float(fields.get("min_confidence", 0.4))  # DeepStack's default
        except ValueError:
            raise HTTPException(400, "min_confidence must be a number") from None
        if not 0 <= min_conf <= 1:
            raise HTTPException(400, "min_confidence must be within [0, 1]")
        dets, _ = await _detect(pipeline, limiter, image, min_conf, None)
    except HTTPException as exc:
        return JSONResponse({"success": False, "error": exc.detail}, status_code=exc.status_code)
    h, w = image.shape[:2]
    predictions = [
        {
            "label": d.name,
            "confidence": round(d.prob, 6),
            "x_min": max(0, d.left),
            "y_min": max(0, d.top),
            "x_max": min(w, d.left + d.width),
            "y_max": min(h, d.top + d.height),
        }
        for d in dets
        if d.best_class  # DeepStack gives one label per box
    ]
    return JSONResponse({"success": True, "predictions": predictions})
