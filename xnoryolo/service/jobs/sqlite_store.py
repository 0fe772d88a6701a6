"""Job records in SQLite (WAL, stdlib sqlite3): the embedded store, for one process. The schema
is versioned with `PRAGMA user_version` and migrated when the file is opened."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from .store import (
    JobRecord,
    JobState,
    columns,
    decode,
    encode,
    expired_reason,
    now,
    update_query,
)

# One entry per schema version; a file at version N gets the entries after N, in order.
# Version 1 is the table as it was before versions were counted (such files read 0).
MIGRATIONS = (
    """
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
    """,
    """
    ALTER TABLE jobs ADD COLUMN worker TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until REAL;
    ALTER TABLE jobs ADD COLUMN ready INTEGER NOT NULL DEFAULT 1;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_CLAIM = """
UPDATE jobs SET state = 'running', worker = ?, lease_until = ?, attempts = attempts + 1,
    started_at = ?, frames_done = 0, fps = NULL, eta_s = NULL, error = NULL
WHERE id = (
    SELECT id FROM jobs
    WHERE ready AND (state = 'queued' OR (state = 'running' AND lease_until < ? AND attempts < ?))
    ORDER BY created_at LIMIT 1
)
RETURNING *
"""


class SqliteJobStore:
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
        self._migrate()

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: job records of schema version {version}, newer than this "
                f"program's {SCHEMA_VERSION}: upgrade xnoryolo"
            )
        for v in range(version, SCHEMA_VERSION):
            self._db.executescript(
                f"BEGIN; {MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        return decode({k: row[k] for k in row.keys()})  # noqa: SIM118 -- Row has no items()

    def add(self, job: JobRecord) -> None:
        names = columns()
        values = [encode(k, getattr(job, k)) for k in names]
        marks = ",".join("?" * len(names))
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({','.join(names)}) VALUES ({marks})", values)

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
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE state = ? ORDER BY created_at", (state.value,)
            ).fetchall()
        return [r[0] for r in rows]

    def update(
        self, job_id: str, only_if: JobState | None = None, owner: str | None = None, **values: Any
    ) -> bool:
        query, args = update_query(job_id, only_if, owner, values, "?")
        with self._lock:
            return self._db.execute(query, args).rowcount == 1

    def delete(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

    def claim(self, worker: str, lease_s: float, max_attempts: int) -> JobRecord | None:
        t = now()
        with self._lock:
            row = self._db.execute(_CLAIM, (worker, t + lease_s, t, t, max_attempts)).fetchone()
        return self._record(row) if row is not None else None

    def renew(self, job_id: str, worker: str, lease_s: float) -> bool:
        return self.update(job_id, JobState.RUNNING, worker, lease_until=now() + lease_s)

    def fail_expired(self, max_attempts: int) -> list[str]:
        t = now()
        with self._lock:
            rows = self._db.execute(
                "SELECT id, attempts FROM jobs WHERE state = 'running' AND lease_until < ? "
                "AND attempts >= ?",
                (t, max_attempts),
            ).fetchall()
            failed = []
            for job_id, attempts in rows:
                cur = self._db.execute(
                    "UPDATE jobs SET state = 'failed', error = ?, finished_at = ?, eta_s = NULL,"
                    " lease_until = NULL WHERE id = ? AND state = 'running' AND lease_until < ?",
                    (expired_reason(attempts), t, job_id, t),
                )
                if cur.rowcount == 1:
                    failed.append(job_id)
        return failed
