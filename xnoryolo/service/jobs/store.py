"""Job records: what each uploaded-video job asked for, where it stands and how it ended, and
the store protocol that keeps them (sqlite_store.py: embedded, one process; pg_store.py:
PostgreSQL, shared by any number of worker processes). Result files live in one folder per job
under the data dir (jobs/layout.py), a path every worker and the API see."""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

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
    worker: str | None = None  # who runs it (or ran it last)
    lease_until: float | None = None  # the worker holds it until then unless it renews
    ready: bool = True  # its input is in place (a url= job is not until downloaded)

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
            "worker": self.worker,
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


def encode(name: str, value: Any) -> Any:
    """A JobRecord field as a column value."""
    if name in _JSON_COLUMNS:
        return json.dumps(value)
    if isinstance(value, JobState):
        return value.value
    return value


def decode(values: dict[str, Any]) -> JobRecord:
    """A JobRecord from a row (a mapping of column names to values)."""
    record = {k: values[k] for k in _COLUMNS}
    for k in _JSON_COLUMNS:
        record[k] = json.loads(record[k])
    record["state"] = JobState(record["state"])
    record["ready"] = bool(record["ready"])
    return JobRecord(**record)


def columns() -> list[str]:
    return list(_COLUMNS)


def check_columns(values: dict[str, Any]) -> None:
    for k in values:
        if k not in _COLUMNS or k == "id":
            raise KeyError(k)


def update_query(
    job_id: str,
    only_if: JobState | None,
    owner: str | None,
    values: dict[str, Any],
    mark: str,
) -> tuple[str, list[Any]]:
    """The UPDATE of `JobStore.update` and its arguments, `mark` being the driver's parameter
    placeholder ("?" for sqlite3, "%s" for psycopg)."""
    check_columns(values)
    sets = [f"{k} = {mark}" for k in values]
    args: list[Any] = [encode(k, v) for k, v in values.items()]
    query = f"UPDATE jobs SET {', '.join(sets)} WHERE id = {mark}"
    args.append(job_id)
    if only_if is not None:
        query += f" AND state = {mark}"
        args.append(only_if.value)
    if owner is not None:
        query += f" AND worker = {mark}"
        args.append(owner)
    return query, args


class JobStore(Protocol):
    """Where job records live. Every method is thread-safe; `claim` hands each queued job to
    exactly one worker, also across processes where the store is shared."""

    def add(self, job: JobRecord) -> None: ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[JobRecord]: ...

    def counts(self) -> dict[JobState, int]: ...

    def ids_in(self, state: JobState) -> list[str]:
        """Oldest first."""
        ...

    def update(
        self, job_id: str, only_if: JobState | None = None, owner: str | None = None, **values: Any
    ) -> bool:
        """Set columns; with `only_if`, only while the job is in that state; with `owner`,
        only while that worker holds it. True if it was."""
        ...

    def delete(self, job_id: str) -> bool: ...

    def claim(self, worker: str, lease_s: float, max_attempts: int) -> JobRecord | None:
        """The oldest job ready to run, now running for `worker` with a lease of `lease_s`
        and one more attempt: a queued one, or one whose worker let its lease expire (fewer
        than `max_attempts` attempts). None when there is none."""
        ...

    def renew(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Extend `worker`'s lease on a running job; False when it is no longer its own
        (cancelled, finished, or reclaimed after the lease ran out)."""
        ...

    def fail_expired(self, max_attempts: int) -> list[str]:
        """Fail the running jobs whose lease ran out after `max_attempts` attempts."""
        ...

    def close(self) -> None: ...


class StoreUnavailable(RuntimeError):
    """A shared store cannot be reached (the message names it, without its password)."""


def expired_reason(attempts: int) -> str:
    return f"its worker stopped during this job {attempts} times; given up"


def now() -> float:
    return time.time()
