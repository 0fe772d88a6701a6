"""Job records in SQLite (WAL, stdlib sqlite3): what each uploaded-video job asked for, where
it stands and how it ended. Result files live beside it, one folder per job."""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..redact import redact


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass
class JobRecord:
    id: str
    state: JobState
    created_at: float
    source: str  # "upload" or the URL (redacted in to_json)
    filename: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    frames_done: int = 0
    frames_total: int | None = None
    fps: float | None = None
    eta_s: float | None = None
    error: str | None = None
    video_codec: str | None = None
    outputs: list[str] = field(default_factory=list)
    attempts: int = 0  # times a worker started it (a restart mid-job makes it more than 1)
    width: int | None = None
    height: int | None = None
    video_fps: float | None = None

    def to_json(self) -> dict[str, Any]:
        total = self.frames_total
        percent = min(100.0, 100.0 * self.frames_done / total) if total else None
        return {
            "id": self.id,
            "state": self.state.value,
            "source": redact(self.source),
            "filename": self.filename,
            "options": self.options,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": {
                "frames_done": self.frames_done,
                "frames_total": total,
                "percent": round(percent, 1) if percent is not None else None,
            },
            "fps": round(self.fps, 2) if self.fps is not None else None,
            "eta_s": round(self.eta_s, 1) if self.eta_s is not None else None,
            "error": self.error,
            "attempts": self.attempts,
            "video": {
                "width": self.width,
                "height": self.height,
                "fps": self.video_fps,
                "annotated_codec": self.video_codec,
                "annotated_h264": self.video_codec in ("avc1", "h264")
                if self.video_codec
                else None,
            },
            "results": {
                name: f"/v1/jobs/{self.id}/{path}"
                for name, path in _RESULT_LINKS.items()
                if self.state == JobState.SUCCEEDED and _needs(name) in self.outputs
            },
        }


_RESULT_LINKS = {
    "detections": "detections",
    "detections_jsonl": "detections?format=jsonl",
    "mot": "detections?format=mot",
    "coco": "detections?format=coco",
    "video": "video",
    "summary": "summary",
}


def _needs(link: str) -> str:
    return {"detections": "jsonl", "detections_jsonl": "jsonl"}.get(link, link)


_COLUMNS = [f.name for f in fields(JobRecord)]
_JSON_COLUMNS = {"options", "outputs"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    filename TEXT,
    options TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    fps REAL,
    eta_s REAL,
    error TEXT,
    video_codec TEXT,
    outputs TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    width INTEGER,
    height INTEGER,
    video_fps REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created_at);
"""


class JobStore:
    """Thread-safe: one connection behind a lock (writes are tiny and rare: progress is
    saved at most a few times a second per job)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps commits atomic either way
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        values = {k: row[k] for k in _COLUMNS}
        for k in _JSON_COLUMNS:
            values[k] = json.loads(values[k])
        values["state"] = JobState(values["state"])
        return JobRecord(**values)

    def add(self, job: JobRecord) -> None:
        values = [getattr(job, k) for k in _COLUMNS]
        values = [
            json.dumps(v) if k in _JSON_COLUMNS else (v.value if isinstance(v, JobState) else v)
            for k, v in zip(_COLUMNS, values, strict=True)
        ]
        marks = ",".join("?" * len(_COLUMNS))
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({','.join(_COLUMNS)}) VALUES ({marks})", values)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._record(row) if row is not None else None

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[JobRecord]:
        query = "SELECT * FROM jobs"
        args: list[Any] = []
        if state is not None:
            query += " WHERE state = ?"
            args.append(state.value)
        query += " ORDER BY created_at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [self._record(r) for r in rows]

    def counts(self) -> dict[JobState, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {JobState(r[0]): int(r[1]) for r in rows}

    def ids_in(self, state: JobState) -> list[str]:
        """Oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE state = ? ORDER BY created_at", (state.value,)
            ).fetchall()
        return [r[0] for r in rows]

    def update(self, job_id: str, only_if: JobState | None = None, **values: Any) -> bool:
        """Set columns; with `only_if`, only while the job is in that state. True if it was."""
        sets = []
        args: list[Any] = []
        for k, v in values.items():
            if k not in _COLUMNS or k == "id":
                raise KeyError(k)
            sets.append(f"{k} = ?")
            if k in _JSON_COLUMNS:
                v = json.dumps(v)
            elif isinstance(v, JobState):
                v = v.value
            args.append(v)
        query = f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?"
        args.append(job_id)
        if only_if is not None:
            query += " AND state = ?"
            args.append(only_if.value)
        with self._lock:
            return self._db.execute(query, args).rowcount == 1

    def delete(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1


def now() -> float:
    return time.time()
