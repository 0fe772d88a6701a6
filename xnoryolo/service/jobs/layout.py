"""Where the jobs' files live: the records in `<data_dir>/jobs.sqlite3`, and one folder per job
at `<data_dir>/jobs/<id>/` holding the input video (`input.part` while it arrives, then
`input[.suffix]`) and `results/` (each written as a hidden `.name.part*` file, renamed into
place at the very end)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULT_FILES = {
    "jsonl": "detections.jsonl",
    "mot": "detections.mot.txt",
    "coco": "detections.coco.json",
    "video": "annotated.mp4",
    "summary": "summary.json",  # tracks, line counts, zone visits and their events
}


def input_suffix(filename: str | None) -> str:
    """The suffix an input keeps from its client's file name."""
    # FFmpeg probes the content; the suffix only helps it with headerless streams (.h264).
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""


@dataclass(frozen=True)
class JobFolder:
    path: Path

    @property
    def part(self) -> Path:
        """The input while it arrives (an upload or a download)."""
        return self.path / "input.part"

    def input_for(self, filename: str | None) -> Path:
        """Where the finished input goes."""
        return self.path / f"input{input_suffix(filename)}"

    def find_input(self) -> Path | None:
        """The finished input, if there is one."""
        for p in sorted(self.path.glob("input*")):
            if not p.name.endswith(".part"):
                return p
        return None

    @property
    def results(self) -> Path:
        return self.path / "results"

    def result(self, kind: str) -> Path:
        return self.results / RESULT_FILES[kind]


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "jobs.sqlite3"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.jobs / job_id)
