"""Detections on the same decoded frames on two machines (.ci/arm64.sh: x86 and arm64).

Frames are decoded once, here, and saved as .npy: FFmpeg builds for x86 and arm64 decode the
same video up to 2 levels apart, which would compare decoders, not the engine.

  frames DIR              decode the demo clip's first frames into DIR/frame_NN.npy
  detect DIR OUT [MODELS] the default model (and yolov3-tiny from MODELS/, when given) on them
  compare A B             same detections: classes and pixel boxes equal, floats within 1e-4
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

FRAMES = (0, 40, 80, 120, 160)
TOL = 1e-4


def frames(out: Path) -> None:
    import cv2

    from xnoryolo.configs import configs_dir

    cap = cv2.VideoCapture(str(configs_dir() / "demo" / "vtest-heldout.mp4"))
    index = 0
    try:
        while index <= max(FRAMES):
            ok, frame = cap.read()
            if not ok:
                raise SystemExit(f"the demo clip ended before frame {index}")
            if index in FRAMES:
                np.save(out / f"frame_{index:03d}.npy", frame)
            index += 1
    finally:
        cap.release()
    print(f"{len(FRAMES)} frames decoded on {platform.machine()} into {out}")


def detect(src: Path, out: Path, models: Path | None) -> None:
    from xnoryolo.configs import default_model
    from xnoryolo.detector import Detector

    # the shipped default is calibrated: int8 by default, f32 the parity mode; both compared
    detectors = {
        f"default {precision}": Detector.from_files(
            None, default_model(), threads=2, precision=precision
        )
        for precision in ("int8", "f32")
    }
    if models is not None:
        detectors["yolov3-tiny"] = Detector.from_files(
            models / "yolov3-tiny.cfg",
            models / "yolov3-tiny.weights",
            models / "coco.names",
            threads=2,
        )
    result: dict[str, dict[str, list]] = {}
    for name, det in detectors.items():
        result[name] = {}
        for path in sorted(src.glob("frame_*.npy")):
            dets = det.detect(np.load(path))
            result[name][path.stem] = [d.to_json() for d in dets]
    out.write_text(json.dumps(result, indent=1, sort_keys=True))
    counts = {n: sum(len(v) for v in r.values()) for n, r in result.items()}
    print(f"{platform.machine()}: detections per model {counts} -> {out}")


def compare(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    if a.keys() != b.keys():
        print(f"models differ: {sorted(a)} vs {sorted(b)}")
        return 1
    bad, worst, total = 0, 0.0, 0
    for model in a:
        for frame in sorted(set(a[model]) | set(b[model])):
            da, db = a[model].get(frame, []), b[model].get(frame, [])
            if len(da) != len(db):
                print(f"{model} {frame}: {len(da)} vs {len(db)} detections")
                bad += 1
                continue
            for x, y in zip(da, db, strict=True):
                total += 1
                for key in x:
                    if isinstance(x[key], float):
                        worst = max(worst, abs(x[key] - y[key]))
                        same = abs(x[key] - y[key]) <= TOL
                    else:
                        same = x[key] == y[key]
                    if not same:
                        print(f"{model} {frame}: {key} {x[key]!r} vs {y[key]!r}")
                        bad += 1
    identical = a == b
    print(
        f"{total} detections compared: {'identical JSON' if identical else 'not identical'}, "
        f"largest float difference {worst:.2g} (tolerance {TOL}), {bad} mismatches"
    )
    return 1 if bad or total == 0 else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["frames"] and len(argv) == 2:
        frames(Path(argv[1]))
        return 0
    if argv[:1] == ["detect"] and len(argv) in (3, 4):
        detect(Path(argv[1]), Path(argv[2]), Path(argv[3]) if len(argv) == 4 else None)
        return 0
    if argv[:1] == ["compare"] and len(argv) == 3:
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
