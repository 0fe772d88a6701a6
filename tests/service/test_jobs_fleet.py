"""Video jobs shared through PostgreSQL by `xnoryolo worker` processes and an API-only
`xnoryolo serve --no-workers`: each job runs exactly once, a SIGKILLed worker's job is
reclaimed when its lease runs out, an API restart loses nothing, a cancel reaches a job
running in another process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_helpers import Api, Worker, fleet_config

from jobs_helpers import cut_video
from service_helpers import wait_until

pytestmark = pytest.mark.timeout(240)

LEASE_S = 3.0


@pytest.fixture
def fleet(tmp_path: Path, postgres: Any, model_files: Any) -> Iterator[Path]:
    config = fleet_config(
        tmp_path / "fleet.yaml",
        postgres.new_database(),
        tmp_path / "shared",
        model_files,
        lease_s=LEASE_S,
        heartbeat_s=0.5,
        poll_s=0.2,
        max_attempts=3,
    )
    yield config


def _finished(api: Api, ids: list[str]) -> bool:
    return all(api.job(i)["state"] in ("succeeded", "failed", "cancelled") for i in ids)


def test_three_workers_twelve_jobs_a_kill_and_an_api_restart(
    tmp_path: Path, fleet: Path, vtest_avi: Path
) -> None:
    short = cut_video(vtest_avi, tmp_path / "short.avi", 4)
    longer = cut_video(vtest_avi, tmp_path / "longer.avi", 30)
    logs = tmp_path / "logs"
    logs.mkdir()
    api = Api(fleet, logs / "api.log", "--no-workers")
    workers = [Worker(fleet, logs / f"worker{i}.log") for i in range(3)]
    try:
        # one long job first: a worker is killed in the middle of it
        victim = api.upload(longer, video="false")
        ids = [api.upload(short, video="false")["id"] for _ in range(12)]
        wait_until(
            lambda: api.job(victim["id"])["progress"]["frames_done"] >= 2, 120, interval=0.05
        )
        running = api.job(victim["id"])
        pid = int(running["worker"].split(":")[1])
        killed = next(w for w in workers if w.pid == pid)
        killed.kill()
        killed_at = time.time()

        # the API restarted (killed) while jobs are queued and running: nothing is lost
        api.kill()
        api = Api(fleet, logs / "api.log", "--no-workers")
        wait_until(lambda: _finished(api, [victim["id"], *ids]), 180, interval=0.3)

        jobs = [api.job(i) for i in ids]
        assert all(j["state"] == "succeeded" and j["attempts"] == 1 for j in jobs), jobs
        assert all(api.frames(i) == [0, 1, 2, 3] for i in ids)
        assert len({j["worker"].split(":")[1] for j in jobs}) >= 2  # shared out

        again = api.job(victim["id"])
        assert again["state"] == "succeeded" and again["attempts"] == 2, again
        assert int(again["worker"].split(":")[1]) != pid
        assert api.frames(victim["id"]) == list(range(30))
        results = tmp_path / "shared" / "jobs" / victim["id"] / "results"
        assert not list(results.glob(".*"))  # nothing of the killed run is left
        reclaim = again["started_at"] - killed_at
        print(f"\nreclaimed {reclaim:.2f} s after the SIGKILL (lease {LEASE_S:g} s)")
        listed = httpx.get(f"{api.url}/v1/jobs", params={"limit": 100}, timeout=10).json()
        assert sorted(j["id"] for j in listed) == sorted([victim["id"], *ids])
    finally:
        api.stop()
        for w in workers:
            w.stop()


def test_cancel_reaches_another_workers_job_and_failed_after_max_attempts(
    tmp_path: Path, fleet: Path, vtest_avi: Path, postgres: Any
) -> None:
    longer = cut_video(vtest_avi, tmp_path / "longer.avi", 60)
    logs = tmp_path / "logs"
    logs.mkdir()
    api = Api(fleet, logs / "api.log", "--no-workers")
    worker = Worker(fleet, logs / "worker.log")
    try:
        job = api.upload(longer, video="false")
        wait_until(lambda: api.job(job["id"])["progress"]["frames_done"] >= 1, 120, interval=0.05)
        r = httpx.delete(f"{api.url}/v1/jobs/{job['id']}", timeout=10)
        assert r.status_code == 200 and r.json()["state"] == "cancelled"

        def let_go() -> bool:
            return "no longer ours" in (logs / "worker.log").read_text()

        wait_until(let_go, 10, interval=0.1, what="the worker to stop the cancelled job")
        time.sleep(0.5)
        done = api.job(job["id"])
        assert done["state"] == "cancelled" and done["results"] == {}
        r = httpx.delete(f"{api.url}/v1/jobs/{job['id']}", timeout=15)
        assert r.status_code == 204
    finally:
        api.stop()
        worker.stop()


def test_expired_leases_fail_after_max_attempts(tmp_path: Path, postgres: Any) -> None:
    """Straight on the store: a job whose workers keep dying is failed with the reason."""
    from xnoryolo.service.jobs.pg_store import PostgresJobStore
    from xnoryolo.service.jobs.store import JobRecord, JobState

    store = PostgresJobStore(postgres.new_database())
    again = PostgresJobStore(store.url)  # a second process's connection: migrated already
    try:
        store.add(JobRecord("j", JobState.QUEUED, time.time(), "upload"))
        for attempt in (1, 2):
            rec = store.claim(f"w{attempt}", 0.05, 2)
            assert rec is not None and rec.attempts == attempt and rec.worker == f"w{attempt}"
            assert again.claim("other", 10, 2) is None  # held
            time.sleep(0.1)  # the lease runs out: the worker died
        time.sleep(0.1)
        assert store.claim("w3", 10, 2) is None  # two attempts: not again
        assert again.fail_expired(2) == ["j"]
        rec = store.get("j")
        assert rec is not None and rec.state == JobState.FAILED
        assert "2 times" in (rec.error or "")
    finally:
        store.close()
        again.close()
