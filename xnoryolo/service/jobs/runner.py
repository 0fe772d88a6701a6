"""Running one job on a worker thread: its input found (or fetched, for url= jobs), the video
processed with `process_video`, progress saved to the store as it goes, and the outcome
recorded. Raises Cancelled when `cancel` is set, VideoError or DownloadError when the input
cannot be used."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from xnoryolo.detector.video import (
    Cancelled,
    Outputs,
    ProcessOptions,
    Progress,
    VideoError,
    VideoInfo,
    count_frames,
    probe_video,
    process_video,
)
from xnoryolo.tracking import AnalysisSpec, FrameAnalysis
from xnoryolo.tracking.draw import draw_analysis

from ..imagelimits import ImageRefused, check_size
from ..inference import DetectorLike
from ..settings import JobsConfig
from .layout import JobFolder
from .store import JobRecord, JobState, StoreUnavailable, now


class RecordWriter(Protocol):
    """Where a running job's progress and outcome are written."""

    def update(self, job_id: str, only_if: JobState | None = None, **values: Any) -> bool: ...


log = logging.getLogger("xnoryolo.service.jobs")

_PROGRESS_SAVE_S = 0.5


class FramesTooLarge(VideoError):
    """A video whose frames are beyond the pixel limit."""


def frame_size_error(info: VideoInfo, max_pixels: int) -> None:
    """FramesTooLarge when the video's frames are beyond the pixel limit (each frame decoded
    would hold that much memory, several times over along the way)."""
    try:
        check_size(info.width, info.height, max_pixels, "each frame")
    except ImageRefused as exc:
        raise FramesTooLarge(str(exc)) from None


def write_summary(path: Path, analysis: FrameAnalysis, events: list[Any], inferred: int) -> None:
    """The job's analysis summary (per line in/out per class, per zone visits and dwell,
    tracks, frames the motion gate skipped) and its events, written whole or not at all."""
    doc = {**analysis.summary(), "frames_inferred": inferred}
    doc["events"] = [e.to_json() for e in events]
    part = path.with_name(f".{path.name}.part{os.getpid()}")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(part, path)


def run_job(
    rec: JobRecord,
    folder: JobFolder,
    store: RecordWriter,
    detector: DetectorLike,
    config: JobsConfig,
    cancel: threading.Event,
    gate: Callable[[], None],
    on_progress: Callable[[Progress], None],
    max_pixels: int,
) -> None:
    """Run the job `rec` (already marked running) to its end: succeeded and recorded, or an
    exception."""
    job_id = rec.id
    src = folder.find_input()
    if src is None:  # url= inputs are fetched before the job reaches a worker
        raise VideoError("the input video is gone")
    info = probe_video(src)
    frame_size_error(info, max_pixels)
    total = info.frames if info.frames is not None else count_frames(src)
    opts = rec.options
    if opts.get("max_frames"):
        total = min(total, int(opts["max_frames"]))
    store.update(
        job_id,
        frames_total=total,
        width=info.width,
        height=info.height,
        video_fps=info.fps,
    )
    wanted = ["jsonl", "mot", "coco"] + (["video"] if opts.get("video", True) else [])
    analysis = FrameAnalysis(
        AnalysisSpec(
            tracking=opts.get("track", {}),
            lines=opts.get("lines", []),
            zones=opts.get("zones", []),
            motion=opts.get("motion", {}),
        )
    )
    if analysis.active:
        wanted.append("summary")
    paths = {k: folder.result(k) for k in wanted}
    saved = [0.0]

    def progress(p: Progress) -> None:
        if p.frames_total is None:
            p = Progress(p.frames_read, total, p.frames_processed, p.elapsed_s)
        on_progress(p)
        t = time.monotonic()
        if t - saved[0] >= _PROGRESS_SAVE_S:
            saved[0] = t
            with contextlib.suppress(StoreUnavailable):  # a shared store's blip: go on
                store.update(
                    job_id,
                    only_if=JobState.RUNNING,
                    frames_done=p.frames_read,
                    frames_total=p.frames_total,
                    fps=p.fps,
                    eta_s=p.eta_s,
                )

    classes = opts.get("classes")
    result = process_video(
        src,
        detector,
        ProcessOptions(
            threshold=opts.get("threshold"),
            classes=frozenset(classes) if classes else None,
            stride=int(opts.get("stride") or 1),
            max_frames=opts.get("max_frames"),
        ),
        Outputs(
            jsonl=paths["jsonl"],
            mot=paths["mot"],
            coco=paths["coco"],
            video=paths.get("video"),
            h264_via_ffmpeg=config.h264_via_ffmpeg,
        ),
        progress=progress,
        cancel=cancel,
        gate=gate,
        analyser=analysis if analysis.active else None,
        annotate=lambda image, dets: draw_analysis(image, dets, analysis),
    )
    if analysis.active:
        write_summary(paths["summary"], analysis, result.events, result.processed)
    finished = store.update(
        job_id,
        only_if=JobState.RUNNING,
        state=JobState.SUCCEEDED,
        finished_at=now(),
        frames_done=result.frames,
        frames_total=result.frames,
        fps=result.fps,
        eta_s=0.0,
        video_codec=result.video_codec,
        outputs=wanted,
    )
    if not finished:  # cancelled at the last moment: the files would never be served
        for p in paths.values():
            p.unlink(missing_ok=True)
        raise Cancelled()
    log.info("job %s: succeeded, %d frames at %.1f fps", job_id, result.frames, result.fps)
