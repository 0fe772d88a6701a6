"""Job records in PostgreSQL (psycopg 3): the store any number of worker processes, on any
number of hosts, share. Workers claim jobs with `SELECT ... FOR UPDATE SKIP LOCKED`, so each
queued job goes to exactly one of them; leases are timed by the database's clock, so the
hosts' clocks never matter. The schema is versioned (table `xnoryolo_schema`) and migrated by
whichever process connects first, under an advisory lock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from ..redact import redact
from .store import (
    JobRecord,
    JobState,
    StoreUnavailable,
    columns,
    decode,
    encode,
    expired_reason,
    update_query,
)

log = logging.getLogger("xnoryolo.service.jobs")

T = TypeVar("T")

# One entry per schema version, applied in order to a database at an older version.
MIGRATIONS = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL,
        filename TEXT,
        options TEXT NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        frames_done INTEGER NOT NULL DEFAULT 0,
        frames_total INTEGER,
        fps DOUBLE PRECISION,
        eta_s DOUBLE PRECISION,
        error TEXT,
        video_codec TEXT,
        outputs TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        width INTEGER,
        height INTEGER,
        video_fps DOUBLE PRECISION,
        worker TEXT,
        lease_until DOUBLE PRECISION,
        ready BOOLEAN NOT NULL DEFAULT TRUE
    );
    CREATE INDEX jobs_state ON jobs(state, created_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
_LOCK_KEY = 0x786E6F72  # pg_advisory_xact_lock key: "xnor"

_NOW = "extract(epoch from clock_timestamp())"

_CLAIM = f"""
UPDATE jobs SET state = 'running', worker = %(worker)s, lease_until = {_NOW} + %(lease)s,
    attempts = attempts + 1, started_at = {_NOW}, frames_done = 0, fps = NULL, eta_s = NULL,
    error = NULL
WHERE id = (
    SELECT id FROM jobs
    WHERE ready AND (state = 'queued'
        OR (state = 'running' AND lease_until < {_NOW} AND attempts < %(max)s))
    ORDER BY created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING *
"""


class PostgresJobStore:
    """One connection (autocommit) behind a lock, reopened after the database went away."""

    def __init__(self, url: str, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self._timeout = max(1, round(connect_timeout_s))
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        with self._lock:
            self._connect()
            self._migrate()

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    row_factory=dict_row,
                    connect_timeout=self._timeout,
                    application_name="xnoryolo",
                )
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                raise StoreUnavailable(
                    f"cannot reach the job store {redact(self.url)}: {first}"
                ) from None
        return self._conn

    def _run(self, work: Callable[[psycopg.Connection[dict[str, Any]]], T]) -> T:
        with self._lock:
            conn = self._connect()
            try:
                return work(conn)
            except psycopg.OperationalError as exc:
                conn.close()  # reopened by the next call
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                raise StoreUnavailable(f"the job store went away: {redact(first)}") from None

    def _migrate(self) -> None:
        conn = self._connect()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute("CREATE TABLE IF NOT EXISTS xnoryolo_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) AS v FROM xnoryolo_schema").fetchone()
            version = int(row["v"]) if row and row["v"] is not None else 0
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"the job store {redact(self.url)} has schema version {version}, newer "
                    f"than this program's {SCHEMA_VERSION}: upgrade xnoryolo"
                )
            for v in range(version, SCHEMA_VERSION):
                conn.execute(MIGRATIONS[v])
                conn.execute("INSERT INTO xnoryolo_schema (version) VALUES (%s)", (v + 1,))
                log.info("job store: schema migrated to version %d", v + 1)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def add(self, job: JobRecord) -> None:
        names = columns()
        values = [encode(k, getattr(job, k)) for k in names]
        query = f"INSERT INTO jobs ({','.join(names)}) VALUES ({','.join(['%s'] * len(names))})"
        self._run(lambda c: c.execute(query, values))

    def get(self, job_id: str) -> JobRecord | None:
        row = self._run(
            lambda c: c.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
        )
        return decode(row) if row is not None else None

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[JobRecord]:
        args: tuple[Any, ...] = (limit,)
        query = "SELECT * FROM jobs ORDER BY created_at DESC LIMIT %s"
        if state is not None:
            query = "SELECT * FROM jobs WHERE state = %s ORDER BY created_at DESC LIMIT %s"
            args = (state.value, limit)
        rows = self._run(lambda c: c.execute(query, args).fetchall())
        return [decode(r) for r in rows]

    def counts(self) -> dict[JobState, int]:
        rows = self._run(
            lambda c: c.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        )
        return {JobState(r["state"]): int(r["n"]) for r in rows}

    def ids_in(self, state: JobState) -> list[str]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT id FROM jobs WHERE state = %s ORDER BY created_at", (state.value,)
            ).fetchall()
        )
        return [r["id"] for r in rows]

    def update(
        self, job_id: str, only_if: JobState | None = None, owner: str | None = None, **values: Any
    ) -> bool:
        query, args = update_query(job_id, only_if, owner, values, "%s")
        return self._run(lambda c: c.execute(query, args).rowcount == 1)

    def delete(self, job_id: str) -> bool:
        return self._run(
            lambda c: c.execute("DELETE FROM jobs WHERE id = %s", (job_id,)).rowcount == 1
        )

    def claim(self, worker: str, lease_s: float, max_attempts: int) -> JobRecord | None:
        args = {"worker": worker, "lease": lease_s, "max": max_attempts}
        row = self._run(lambda c: c.execute(_CLAIM, args).fetchone())
        return decode(row) if row is not None else None

    def renew(self, job_id: str, worker: str, lease_s: float) -> bool:
        query = (
            f"UPDATE jobs SET lease_until = {_NOW} + %s "
            "WHERE id = %s AND state = 'running' AND worker = %s"
        )
        args = (lease_s, job_id, worker)
        return self._run(lambda c: c.execute(query, args).rowcount == 1)

    def fail_expired(self, max_attempts: int) -> list[str]:
        def work(c: psycopg.Connection[dict[str, Any]]) -> list[str]:
            rows = c.execute(
                f"SELECT id, attempts FROM jobs WHERE state = 'running' AND lease_until < {_NOW} "
                "AND attempts >= %s",
                (max_attempts,),
            ).fetchall()
            failed = []
            for r in rows:
                cur = c.execute(
                    f"UPDATE jobs SET state = 'failed', error = %s, finished_at = {_NOW}, "
                    "eta_s = NULL, lease_until = NULL "
                    f"WHERE id = %s AND state = 'running' AND lease_until < {_NOW}",
                    (expired_reason(r["attempts"]), r["id"]),
                )
                if cur.rowcount == 1:
                    failed.append(r["id"])
            return failed

        return self._run(work)
