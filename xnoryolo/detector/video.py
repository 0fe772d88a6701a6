"""Footage in, results out: the one place that opens, probes, counts and iterates video and
image files.

`process_video` is what the job workers and `xnoryolo detect VIDEO` both run: every result is
written under a temporary name and renamed into place only once the whole video is done, so a
reader never sees half a file. `open_source`/`iter_frames` address frames of videos, images or
directories of images by (source, index), for evaluation and distillation: a directory is one
time-ordered sequence (files sorted by name), so splits can follow time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .detections import Detection, DetectionTable
from .draw import draw_detections

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)

# H.264 first (browsers play it); OpenCV's pip wheels usually cannot encode it, so mp4v after.
DEFAULT_CODECS = ("avc1", "mp4v")


class VideoError(ValueError):
    """The input is not a video OpenCV can decode, or an output cannot be written."""


class NotAVideoError(VideoError):
    """OpenCV cannot open the file as a video at all."""


class FramesError(ValueError):
    """A data path that cannot be read as frames."""


class Cancelled(Exception):
    """`cancel` was set; no result file was left behind."""


class FrameDetector(Protocol):
    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable: ...


class FrameAnalyser(Protocol):
    """What `process_video` asks of an analysis beyond boxes (xnoryolo.tracking's
    FrameAnalysis): whether a frame needs inference, track ids for the boxes of those that
    do, and the events they cause."""

    @property
    def tracking(self) -> bool: ...
    def wants_inference(self, image: np.ndarray, t: float) -> bool: ...
    def hold(self, t: float) -> None: ...
    def update(
        self, size: tuple[int, int], table: DetectionTable, t: float, frame: int
    ) -> tuple[np.ndarray | None, Sequence[Any]]: ...
    def finish(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float | None
    frames: int | None  # as the container states it; None where it does not


@dataclass(frozen=True)
class ProcessOptions:
    threshold: float | None = None
    classes: frozenset[str] | None = None
    stride: int = 1  # run the detector on every stride-th frame
    max_frames: int | None = None

    def keep(self, table: DetectionTable) -> DetectionTable:
        return table.only(self.classes) if self.classes else table


@dataclass(frozen=True)
class Outputs:
    """Where each result goes; None skips it."""

    jsonl: Path | None = None
    mot: Path | None = None
    coco: Path | None = None
    video: Path | None = None
    codecs: Sequence[str] = DEFAULT_CODECS
    # Where OpenCV could not write H.264, re-encode with an `ffmpeg` binary if there is one.
    h264_via_ffmpeg: bool = False


@dataclass(frozen=True)
class Progress:
    frames_read: int
    frames_total: int | None
    frames_processed: int
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.frames_read / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.frames_total or self.fps <= 0:
            return None
        return max(0.0, (self.frames_total - self.frames_read) / self.fps)


@dataclass
class VideoResult:
    info: VideoInfo
    frames: int  # frames read
    processed: int  # frames the detector ran on
    elapsed_s: float
    counts: Counter[str] = field(default_factory=Counter)  # best-class detections per name
    video_codec: str | None = None
    events: list[Any] = field(default_factory=list)  # the analyser's, in order

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise NotAVideoError("not a video OpenCV can open")
    return cap


def _info(cap: cv2.VideoCapture, first: np.ndarray) -> VideoInfo:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return VideoInfo(
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        fps=fps if 0 < fps < 1000 else None,
        frames=count if count > 0 else None,
    )


def probe_video(path: Path) -> VideoInfo:
    """Open the file and decode its first frame: the content decides, not the name."""
    if path.stat().st_size == 0:
        raise VideoError("the file is empty")
    cap = _open(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError("no frame could be decoded (empty or corrupt video)")
        return _info(cap, frame)
    finally:
        cap.release()


def count_frames(path: Path) -> int:
    """Frames in the file, grabbed without decoding: an exact count, unlike the container's
    CAP_PROP_FRAME_COUNT (absent or wrong in many files)."""
    cap = _open(path)
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


def decode_image(data: bytes | np.ndarray, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """The decoded image, or None where the bytes are empty or not an image OpenCV decodes."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    return cv2.imdecode(buf, flags) if buf.size else None


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """`decode_image` of a file (np.fromfile: cv2.imread cannot open every non-ASCII path)."""
    return decode_image(np.fromfile(path, dtype=np.uint8), flags)


_codec_ok: dict[str, bool] = {}
_codec_lock = threading.Lock()


def _open_writer(
    path: Path, fps: float, size: tuple[int, int], codecs: Sequence[str]
) -> tuple[cv2.VideoWriter, str]:
    with _codec_lock:
        for codec in codecs:
            if _codec_ok.get(codec) is False:  # failed before: skip OpenCV's error spam
                continue
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, size)
            _codec_ok[codec] = writer.isOpened()
            if writer.isOpened():
                return writer, codec
            writer.release()
    raise VideoError(f"OpenCV cannot write an MP4 with any of the codecs {', '.join(codecs)}")


def _to_h264(video: Path, cancel: threading.Event | None) -> str | None:
    """Re-encode `video` in place as H.264 with the system ffmpeg; "h264", or None where
    there is no ffmpeg or it failed (the original stays)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    out = video.with_name(f".h264{video.name}")
    cmd = [ffmpeg, "-v", "error", "-nostdin", "-y", "-i", str(video), "-an"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    cmd += ["-movflags", "+faststart", str(out)]
    # A killed server must not leave its encoder running: where util-linux's setpriv exists
    # the kernel kills ffmpeg when the thread that started it dies (PR_SET_PDEATHSIG; a
    # preexec_fn would not be safe in this threaded process). Its own session keeps a
    # terminal's Ctrl-C for this process, which cancels and kills it itself.
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        cmd = [setpriv, "--pdeathsig", "KILL", "--", *cmd]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        while True:
            try:
                proc.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    proc.kill()
                    proc.wait()
                    raise Cancelled() from None
        if proc.returncode != 0:
            return None
        os.replace(out, video)
        return "h264"
    finally:
        if proc.stderr is not None:
            proc.stderr.close()
        out.unlink(missing_ok=True)


def _part(path: Path) -> Path:
    # Keep the suffix: OpenCV chooses the container from it.
    return path.with_name(f".{path.stem}.part{os.getpid()}{path.suffix}")


def process_video(
    path: Path,
    detector: FrameDetector,
    options: ProcessOptions,
    outputs: Outputs,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    gate: Callable[[], None] | None = None,
    analyser: FrameAnalyser | None = None,
    annotate: Callable[[np.ndarray, list[Detection]], np.ndarray] = draw_detections,
) -> VideoResult:
    """Detect objects in every `options.stride`-th frame of `path` and write `outputs`.

    `progress` is called after every frame, `gate` before every detector call (background
    jobs wait there for live streams); setting `cancel` raises Cancelled. An `analyser` may
    skip inference on frames (motion gating) and gives boxes track ids; with tracking, the
    MOT output holds the tracked boxes with their ids. `annotate` draws the video's frames."""
    path = Path(path)
    cap = _open(path)
    parts: dict[str, Path] = {}
    # COCO is assembled from the per-frame records at the end; keep them on disk.
    records = outputs.jsonl or (outputs.coco.with_suffix(".jsonl") if outputs.coco else None)
    for key, target in (
        ("jsonl", records),
        ("mot", outputs.mot),
        ("coco", outputs.coco),
        ("video", outputs.video),
    ):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            parts[key] = _part(target)
    files: dict[str, Any] = {}
    writer: cv2.VideoWriter | None = None
    result: VideoResult | None = None
    try:
        if "jsonl" in parts:
            files["jsonl"] = parts["jsonl"].open("w", encoding="utf-8")
        if "mot" in parts:
            files["mot"] = parts["mot"].open("w", encoding="utf-8")
        info: VideoInfo | None = None
        total: int | None = None
        frames = processed = 0
        dets: list[Detection] = []
        counts: Counter[str] = Counter()
        events: list[Any] = []
        tracking = analyser is not None and analyser.tracking
        codec: str | None = None
        t0 = time.perf_counter()
        while options.max_frames is None or frames < options.max_frames:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if info is None:
                info = _info(cap, frame)
                total = info.frames
                if options.max_frames is not None and total is not None:
                    total = min(total, options.max_frames)
            t = frames / (info.fps or 25.0)
            if frames % options.stride == 0 and (
                analyser is None or analyser.wants_inference(frame, t)
            ):
                if gate is not None:
                    gate()
                table = options.keep(detector.detect_table(frame, thresh=options.threshold))
                ids = None
                if analyser is not None:
                    ids, new = analyser.update((info.width, info.height), table, t, frames)
                    events.extend(new)
                dets = table.detections(ids)
                processed += 1
                counts.update(d.name for d in dets if d.best_class)
                _write_frame_records(files, frames, info.fps, dets, tracking)
            elif analyser is not None and frames % options.stride == 0:
                analyser.hold(t)  # nothing moved: the boxes drawn stay those of the last frame
            if outputs.video is not None:
                if writer is None:
                    size = (frame.shape[1], frame.shape[0])
                    writer, codec = _open_writer(
                        parts["video"], info.fps or 25.0, size, outputs.codecs
                    )
                writer.write(annotate(frame, dets))
            frames += 1
            if total is not None and frames > total:
                total = frames  # the container's count was an estimate
            if progress is not None:
                progress(Progress(frames, total, processed, time.perf_counter() - t0))
        if info is None:
            raise VideoError("no frame could be decoded (empty or corrupt video)")
        if analyser is not None:
            events.extend(analyser.finish())
        for f in files.values():
            f.close()
        files.clear()
        if writer is not None:
            writer.release()
            writer = None
            if outputs.h264_via_ffmpeg and codec != "avc1":
                codec = _to_h264(parts["video"], cancel) or codec
        if "coco" in parts:
            _write_coco(parts["jsonl"], parts["coco"], info, getattr(detector, "names", None))
        result = VideoResult(
            info, frames, processed, time.perf_counter() - t0, counts, codec, events
        )
        for key, target in (
            ("jsonl", outputs.jsonl),
            ("mot", outputs.mot),
            ("coco", outputs.coco),
            ("video", outputs.video),
        ):
            if target is not None:
                os.replace(parts.pop(key), target)
        return result
    finally:
        cap.release()
        for f in files.values():
            f.close()
        if writer is not None:
            writer.release()
        for part in parts.values():  # a failure or a cancel, or COCO's scratch records
            part.unlink(missing_ok=True)


def _write_frame_records(
    files: dict[str, Any], index: int, fps: float | None, dets: list[Detection], tracking: bool
) -> None:
    if "jsonl" in files:
        record = {
            "frame": index,
            "timestamp_s": index / fps if fps else None,
            "detections": [d.to_json() for d in dets],
        }
        files["jsonl"].write(json.dumps(record) + "\n")
    if "mot" in files:
        # MOTChallenge: 1-based frame, one line per box (its best class). With tracking, the
        # tracked boxes with their ids (a tracker's result file); without, every box, id -1
        # (a detection file).
        files["mot"].writelines(
            f"{index + 1},{-1 if d.track_id is None else d.track_id},"
            f"{d.left},{d.top},{d.width},{d.height},{d.prob:.6f},-1,-1,-1\n"
            for d in dets
            if d.best_class and (d.track_id is not None or not tracking)
        )


def _read_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _write_coco(records: Path, out: Path, info: VideoInfo, names: Sequence[str] | None) -> None:
    """COCO detection style: images are the processed frames, annotations the detections
    (every class above threshold, boxes clipped to the frame), ids 1-based."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen: dict[int, str] = {}
    for rec in _read_records(records):
        image_id = rec["frame"] + 1
        images.append(
            {
                "id": image_id,
                "file_name": f"frame_{rec['frame']:06d}",
                "frame_index": rec["frame"],
                "timestamp_s": rec["timestamp_s"],
                "width": info.width,
                "height": info.height,
            }
        )
        for d in rec["detections"]:
            x0, y0 = max(0, d["left"]), max(0, d["top"])
            x1 = min(info.width, d["left"] + d["width"])
            y1 = min(info.height, d["top"] + d["height"])
            w, h = max(0, x1 - x0), max(0, y1 - y0)
            seen[d["class_id"]] = d["name"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": d["class_id"] + 1,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "score": d["prob"],
                    **({"track_id": d["track_id"]} if "track_id" in d else {}),
                }
            )
    classes = dict(enumerate(names)) if names else seen
    categories = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in classes.items()]
    doc = {
        "info": {"description": "xnoryolo detections", "fps": info.fps},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    with out.open("w", encoding="utf-8") as f:
        json.dump(doc, f)


# Frame sources for evaluation and distillation


@dataclass(frozen=True)
class Source:
    path: Path
    images: tuple[Path, ...]  # empty for a video
    count: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_video(self) -> bool:
        return not self.images


def _count_video(path: Path) -> int:
    try:
        n = count_frames(path)
    except VideoError:
        raise FramesError(
            f"{path}: not an image, a directory of images or a readable video"
        ) from None
    if n == 0:
        raise FramesError(f"{path}: no frame could be read")
    return n


def open_source(path: str | Path) -> Source:
    p = Path(path)
    if p.is_dir():
        images = tuple(
            sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        )
        if not images:
            raise FramesError(f"{p}: directory has no image files")
        return Source(p, images, len(images))
    if not p.is_file():
        raise FramesError(f"{p}: no such file or directory")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return Source(p, (p,), 1)
    return Source(p, (), _count_video(p))


def open_sources(paths: Iterable[str | Path]) -> list[Source]:
    return [open_source(p) for p in paths]


def parse_range(spec: str | None) -> tuple[int, int | None]:
    """'A:B' -> (A, B) half-open; 'A:' -> (A, None); None -> (0, None)."""
    if not spec:
        return 0, None
    try:
        a, b = spec.split(":", 1)
        start = int(a) if a else 0
        stop = int(b) if b else None
    except ValueError:
        raise FramesError(f"frame range {spec!r}: expected A:B (e.g. 600:795)") from None
    if start < 0 or (stop is not None and stop <= start):
        raise FramesError(f"frame range {spec!r}: need 0 <= A < B")
    return start, stop


def _read_image(path: Path) -> np.ndarray:
    image = read_image(path)
    if image is None:
        raise FramesError(f"{path}: not a decodable image")
    return image


def iter_frames(source: Source, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR uint8 frame) for the wanted indices, in increasing order."""
    wanted = sorted(set(indices))
    if not wanted:
        return
    if not source.is_video:
        for i in wanted:
            yield i, _read_image(source.images[i])
        return
    cap = cv2.VideoCapture(str(source.path), cv2.CAP_FFMPEG)
    try:
        k, i = 0, 0
        while k < len(wanted):
            if i < wanted[k]:
                if not cap.grab():
                    break
            else:
                ok, frame = cap.read()
                if not ok:
                    break
                yield i, frame
                k += 1
            i += 1
    finally:
        cap.release()
