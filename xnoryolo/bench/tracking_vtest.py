"""Tracking, counting and motion gating measured on real footage: OpenCV's vtest.avi (795
frames, 10 fps, 768x576) with the default model's and the float teacher's (yolov3-tiny)
detections, computed once and cached as JSON.

    python -m xnoryolo.bench.tracking_vtest SHARED_DIR [CACHE_DIR]

vtest has no tracking ground truth, so identity is measured two ways: identity breaks (a
track that ends away from the frame's edge while a new track of the same class starts within
1 s and one box height of it: a re-identification the tracker missed) per 100 track-frames,
and motmetrics' MOTA / IDF1 / ID switches of the default model's tracks against the
teacher's tracks taken as the reference."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from xnoryolo.configs import default_model
from xnoryolo.detector import Detection, DetectionTable, Detector
from xnoryolo.tracking import AnalysisSpec, FrameAnalysis
from xnoryolo.tracking.bytetrack import iou_matrix

FPS = 10.0
# Two lines across the road people walk along: "walkway" where they are in the open, "lamp"
# through the lamp post, which hides whoever passes behind it.
LINES = [
    {"name": "walkway", "points": [[0.35, 0.3], [0.35, 0.7]], "classes": ["person"]},
    {"name": "lamp", "points": [[0.5, 0.15], [0.5, 1.0]], "classes": ["person"]},
]


def detections(which: str, shared: Path, cache: Path) -> list[dict[str, Any]]:
    """Per frame: wall_ms, cpu_ms and the detections (threshold 0.1) of `which`."""
    path = cache / f"vtest-{which}.json"
    if path.is_file():
        return list(json.loads(path.read_text()))
    if which == "student":
        det = Detector.from_files(None, default_model(), None)
    else:
        m = shared / "models"
        det = Detector.from_files(
            m / "yolov3-tiny.cfg", m / "yolov3-tiny.weights", m / "coco.names"
        )
    cap = cv2.VideoCapture(str(shared / "media" / "vtest.avi"))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        found = det.detect(img, thresh=0.1)
        out.append(
            {
                "wall_ms": (time.perf_counter() - t0) * 1000,
                "cpu_ms": (time.process_time() - c0) * 1000,
                "detections": [d.to_json() for d in found],
            }
        )
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def _table(frame: dict[str, Any]) -> DetectionTable:
    return DetectionTable.from_detections([Detection(**d) for d in frame["detections"]])


def track(
    frames: list[dict[str, Any]],
    spec: AnalysisSpec,
    images: list[np.ndarray] | None = None,
) -> tuple[dict[int, list[tuple[int, tuple[int, int, int, int], int]]], FrameAnalysis, list[bool]]:
    """track id -> [(frame, box, class)], the analysis, and which frames were inferred."""
    analysis = FrameAnalysis(spec)
    tracks: dict[int, list[tuple[int, tuple[int, int, int, int], int]]] = {}
    inferred = []
    for i, fr in enumerate(frames):
        t = i / FPS
        if images is not None and not analysis.wants_inference(images[i], t):
            analysis.hold(t)
            inferred.append(False)
            continue
        inferred.append(True)
        table = _table(fr)
        ids, _ = analysis.update((768, 576), table, t, i)
        for d in table.detections(ids):
            if d.track_id is not None and d.best_class:
                tracks.setdefault(d.track_id, []).append(
                    (i, (d.left, d.top, d.width, d.height), d.class_id)
                )
    return tracks, analysis, inferred


def identity_breaks(tracks: dict[int, list[Any]], size: tuple[int, int] = (768, 576)) -> int:
    """Tracks ending inside the picture while a same-class track starts near them within 1 s."""
    firsts = {tid: seq[0] for tid, seq in tracks.items()}
    breaks = 0
    for tid, seq in tracks.items():
        f_end, (x, y, w, h), cls = seq[-1]
        if x < 10 or y < 10 or x + w > size[0] - 10 or y + h > size[1] - 10:
            continue  # left the picture
        cx, cy = x + w / 2, y + h / 2
        for other, (f0, (ox, oy, ow, oh), ocls) in firsts.items():
            if other == tid or ocls != cls or not 0 < f0 - f_end <= FPS:
                continue
            if np.hypot(ox + ow / 2 - cx, oy + oh / 2 - cy) <= h:
                breaks += 1
                break
    return breaks


def _by_frame(tracks: dict[int, list[Any]]) -> dict[int, list[tuple[int, Any]]]:
    out: dict[int, list[tuple[int, Any]]] = {}
    for tid, seq in tracks.items():
        for f, box, _ in seq:
            out.setdefault(f, []).append((tid, box))
    return out


def agreement(
    reference: dict[int, list[Any]], test: dict[int, list[Any]], n: int
) -> dict[str, float]:
    """motmetrics of `test`'s tracks against `reference`'s."""
    import motmetrics as mm

    ref, hyp = _by_frame(reference), _by_frame(test)
    acc = mm.MOTAccumulator(auto_id=False)
    for f in range(n):
        r, h = ref.get(f, []), hyp.get(f, [])

        def xyxy(items: list[Any]) -> np.ndarray:
            return np.array(
                [[b[0], b[1], b[0] + b[2], b[1] + b[3]] for _, b in items], float
            ).reshape(-1, 4)

        dist = 1.0 - iou_matrix(xyxy(r), xyxy(h))
        dist[dist > 0.5] = np.nan
        acc.update([t for t, _ in r], [t for t, _ in h], dist, frameid=f)
    s = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="x")
    return {k: float(s[k].iloc[0]) for k in s.columns}


def kept(
    reference: dict[int, list[Any]], test: dict[int, list[Any]], min_len: int = 20
) -> tuple[int, int]:
    """How many of `reference`'s tracks (of at least min_len frames) `test` also follows: some
    test track overlaps it (IoU >= 0.5) on at least half of the frames both inferred."""
    hyp = _by_frame(test)
    long = [seq for seq in reference.values() if len(seq) >= min_len]
    found = 0
    for seq in long:
        hits = total = 0
        for f, (x, y, w, h), _ in seq:
            if f not in hyp:
                continue
            total += 1
            boxes = np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for _, b in hyp[f]], float)
            if (
                len(boxes)
                and iou_matrix(np.array([[x, y, x + w, y + h]], float), boxes).max() >= 0.5
            ):
                hits += 1
        found += total > 0 and hits >= total / 2
    return found, len(long)


class _Cached:
    """A detector that answers from the cache, frame by frame (for process_video)."""

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self.frames = frames
        self.names = ["person"]
        self.i = 0

    def detect_table(
        self, image: np.ndarray, thresh: float | None = None, nms: float | None = None
    ) -> DetectionTable:
        out = _table(self.frames[min(self.i, len(self.frames) - 1)])
        self.i += 1
        return out


def main(argv: list[str]) -> int:
    shared = Path(argv[0])
    cache = Path(argv[1]) if len(argv) > 1 else Path(".cache") / "tracking"
    student = detections("student", shared, cache)
    teacher = detections("teacher", shared, cache)
    n = len(student)
    spec = AnalysisSpec.model_validate({"lines": LINES})
    print(
        f"vtest.avi: {n} frames; inference medians: default model "
        f"{statistics.median(f['wall_ms'] for f in student):.1f} ms, teacher "
        f"{statistics.median(f['wall_ms'] for f in teacher):.1f} ms (cached run)"
    )
    runs = {}
    print(
        "\n| detections | tracks | track-frames | identity breaks | per 100 track-frames |", end=""
    )
    print(" walkway in/out | lamp in/out |\n|---|---|---|---|---|---|---|")
    for name, frames in (("teacher (float yolov3-tiny)", teacher), ("default model", student)):
        tracks, analysis, _ = track(frames, spec)
        runs[name] = tracks
        tf = sum(len(s) for s in tracks.values())
        br = identity_breaks(tracks)
        lines = analysis.summary()["lines"]
        counts = " | ".join(f"{c['total_in']}/{c['total_out']}" for c in lines.values())
        print(f"| {name} | {len(tracks)} | {tf} | {br} | {100 * br / tf:.2f} | {counts} |")
    ag = agreement(runs["teacher (float yolov3-tiny)"], runs["default model"], n)
    print(
        f"\ndefault model's tracks against the teacher's: MOTA {ag['mota']:.3f}, IDF1 "
        f"{ag['idf1']:.3f}, ID switches {int(ag['num_switches'])}"
    )

    # motion gating on the real frames
    cap = cv2.VideoCapture(str(shared / "media" / "vtest.avi"))
    images: list[np.ndarray] = []
    while len(images) < n:
        ok, img = cap.read()
        if not ok:
            break
        images.append(img)
    gated_spec = AnalysisSpec.model_validate({"lines": LINES, "motion": True})
    t0 = time.process_time()
    g_tracks, g_analysis, inferred = track(student, gated_spec, images)
    gate_cpu = time.process_time() - t0
    found, total = kept(runs["default model"], g_tracks)
    skipped_cpu = sum(f["cpu_ms"] for f, inf in zip(student, inferred, strict=True) if not inf)
    gated_counts = ", ".join(
        f"{name} {c['total_in']}/{c['total_out']}"
        for name, c in g_analysis.summary()["lines"].items()
    )
    print(
        f"\nmotion gating on vtest: {sum(inferred)}/{n} frames inferred; ungated tracks of "
        f">= 20 frames kept by the gated run: {found}/{total}; line in/out gated: "
        f"{gated_counts}; inference CPU saved {skipped_cpu / 1000:.2f} s (gate + tracking "
        f"{gate_cpu:.2f} s)"
    )
    del images
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
