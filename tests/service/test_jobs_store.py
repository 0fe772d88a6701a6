"""The job stores' schemas: an embedded file from before schema versions is migrated with its
records kept, a newer schema is refused, PostgreSQL's migration runs once for many processes;
the fleet commands refuse the embedded store with a clear error."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from xnoryolo.service.jobs.sqlite_store import MIGRATIONS, SCHEMA_VERSION, SqliteJobStore
from xnoryolo.service.jobs.store import JobRecord, JobState

pytestmark = pytest.mark.timeout(60)


def test_an_unversioned_sqlite_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])  # the table as it was before versions were counted
    db.execute(
        "INSERT INTO jobs (id, state, created_at, source, options, outputs, attempts) "
        "VALUES ('old', 'succeeded', 1.0, 'upload', '{}', '[\"jsonl\"]', 1)"
    )
    db.commit()
    db.close()
    store = SqliteJobStore(path)
    try:
        rec = store.get("old")
        assert rec is not None and rec.state == JobState.SUCCEEDED and rec.outputs == ["jsonl"]
        assert rec.ready and rec.worker is None
        store.add(JobRecord("new", JobState.QUEUED, time.time(), "upload"))
        claimed = store.claim("w", 10, 3)
        assert claimed is not None and claimed.id == "new" and claimed.attempts == 1
    finally:
        store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="newer than this program"):
        SqliteJobStore(path)


def test_postgres_schema_is_made_once(postgres: Any) -> None:
    from xnoryolo.service.jobs.pg_store import SCHEMA_VERSION as PG_VERSION
    from xnoryolo.service.jobs.pg_store import PostgresJobStore

    url = postgres.new_database()
    stores = [PostgresJobStore(url) for _ in range(3)]
    try:
        rows = stores[0]._run(lambda c: c.execute("SELECT version FROM xnoryolo_schema").fetchall())
        assert [r["version"] for r in rows] == list(range(1, PG_VERSION + 1))
        stores[1].add(JobRecord("a", JobState.QUEUED, time.time(), "upload"))
        assert stores[2].counts() == {JobState.QUEUED: 1}
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker"], "xnoryolo worker needs a shared job store"),
        (["serve", "--no-workers"], "--no-workers needs a shared job store"),
    ],
)
def test_fleet_commands_refuse_the_embedded_store(
    tmp_path: Path, args: list[str], message: str
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    run = subprocess.run(
        [sys.executable, "-m", "xnoryolo", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert not (tmp_path / "data").exists()


def test_worker_without_its_database_is_a_clear_error(tmp_path: Path) -> None:
    from service_helpers import free_port

    config = tmp_path / "worker.yaml"
    store = f"postgresql://xnoryolo:hunter2@127.0.0.1:{free_port()}/jobs"
    config.write_text(f"data_dir: {tmp_path / 'data'}\njobs: {{store: '{store}'}}\n")
    run = subprocess.run(
        [sys.executable, "-m", "xnoryolo", "worker", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert "cannot reach the job store postgresql://" in run.stderr
    assert "hunter2" not in run.stderr
