"""Restart safety: a server killed mid-job runs the job again from the start when it comes
back; finished results are untouched; a job that keeps killing the server is failed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs_helpers import FakeDetector, cut_video
from service_helpers import free_port, wait_until

pytestmark = pytest.mark.timeout(240)

HERE = Path(__file__).resolve().parent  # not the repo root: see test_service_cli.py


class ServeProcess:
    """`xnoryolo serve` as a subprocess that can be killed like a crash would."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("XNORYOLO_")}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "xnoryolo", "serve", "--config", str(config)),
                    *("--port", str(self.port), "--log-level", "warning"),
                ],
                cwd=HERE,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.log = log

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited: {log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 90, interval=0.2, what="xnoryolo serve")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def serve_config(tmp_path: Path, model_files: Any) -> Iterator[Path]:
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"model: {{cfg: {model_files.cfg}, weights: {model_files.weights}, "
        f"names: {model_files.names}}}\n"
        f"data_dir: {tmp_path / 'data'}\n"
    )
    yield config


def _job(url: str, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()


def _upload(url: str, path: Path, **options: Any) -> dict[str, Any]:
    with path.open("rb") as f:
        r = httpx.post(
            f"{url}/v1/jobs",
            files={"file": (path.name, f, "video/x-msvideo")},
            data={k: str(v) for k, v in options.items()},
            timeout=30,
        )
    assert r.status_code == 202, r.text
    return r.json()


def _results(url: str, job_id: str) -> dict[str, bytes]:
    base = f"{url}/v1/jobs/{job_id}/detections"
    return {
        fmt: httpx.get(base, params={"format": fmt}, timeout=10).content
        for fmt in ("jsonl", "mot", "coco")
    }


def test_killed_mid_job_runs_again_and_keeps_results(
    tmp_path: Path, vtest_avi: Path, serve_config: Path
) -> None:
    short = cut_video(vtest_avi, tmp_path / "short.avi", 4)
    longer = cut_video(vtest_avi, tmp_path / "longer.avi", 16)
    log = tmp_path / "serve.log"
    first = ServeProcess(serve_config, log)
    try:
        done = _upload(first.url, short, video="false")
        wait_until(lambda: _job(first.url, done["id"])["state"] == "succeeded", 90)
        before = _results(first.url, done["id"])
        job = _upload(first.url, longer, stride=2)
        wait_until(
            lambda: _job(first.url, job["id"])["progress"]["frames_done"] >= 2, 90, interval=0.1
        )
        first.kill()
    finally:
        first.stop()
    results = tmp_path / "data" / "jobs" / job["id"] / "results"
    assert not any(p.suffix in (".jsonl", ".txt", ".json") for p in results.glob("[!.]*"))

    second = ServeProcess(serve_config, log)
    try:
        assert _job(second.url, done["id"])["state"] == "succeeded"
        assert _results(second.url, done["id"]) == before
        state = _job(second.url, job["id"])
        assert state["state"] in ("queued", "running", "succeeded")
        wait_until(lambda: _job(second.url, job["id"])["state"] == "succeeded", 120)
        state = _job(second.url, job["id"])
        assert state["attempts"] == 2 and state["progress"]["frames_done"] == 16
        frames = httpx.get(f"{second.url}/v1/jobs/{job['id']}/detections", timeout=10).json()
        assert [f["frame"] for f in frames["frames"]] == list(range(0, 16, 2))
        assert not list(results.glob(".*"))  # no temp file of the killed run is left
    finally:
        second.stop()


def test_recovery_rules(tmp_path: Path, vtest_avi: Path) -> None:
    """Straight on the job service: interrupted jobs are re-queued, up to max_attempts."""
    from xnoryolo.service.jobs.service import JobService
    from xnoryolo.service.jobs.sqlite_store import SqliteJobStore as JobStore
    from xnoryolo.service.jobs.store import JobRecord, JobState
    from xnoryolo.service.settings import JobsConfig

    data = tmp_path / "data"
    store = JobStore(data / "jobs.sqlite3")
    for job_id, attempts in (("again", 1), ("given-up", 2)):
        store.add(JobRecord(job_id, JobState.RUNNING, time.time(), "upload", attempts=attempts))
        d = data / "jobs" / job_id
        d.mkdir(parents=True)
        cut_video(vtest_avi, d / "input.avi", 3)
        (d / "results").mkdir()
        (d / "results" / ".detections.part1.jsonl").write_text("half")
    (data / "jobs" / "orphan").mkdir()  # an upload the server died in
    store.close()

    svc = JobService(JobsConfig(max_attempts=2), data, FakeDetector())
    svc.start()
    try:
        failed = svc.get("given-up")
        assert failed.state == JobState.FAILED and "2 times" in (failed.error or "")
        assert not (data / "jobs" / "orphan").exists()
        wait_until(lambda: svc.get("again").state == JobState.SUCCEEDED, 30)
        again = svc.get("again")
        assert again.attempts == 2 and again.frames_done == 3
        assert sorted(p.name for p in (data / "jobs" / "again" / "results").iterdir()) == [
            "annotated.mp4",
            "detections.coco.json",
            "detections.jsonl",
            "detections.mot.txt",
            "summary.json",
        ]
        assert not (data / "jobs" / "again" / "input.avi").exists()  # inputs go once done
    finally:
        svc.stop()
    shutil.rmtree(data)


def test_shutdown_mid_job_requeues_it(tmp_path: Path, vtest_avi: Path) -> None:
    from xnoryolo.detector.video import probe_video
    from xnoryolo.service.jobs.service import JobOptionsData, JobService
    from xnoryolo.service.jobs.sqlite_store import SqliteJobStore as JobStore
    from xnoryolo.service.jobs.store import JobState
    from xnoryolo.service.settings import JobsConfig

    svc = JobService(JobsConfig(), tmp_path / "data", FakeDetector(delay=0.2))
    svc.start()
    job_id, d = svc.new_job()
    cut_video(vtest_avi, d / "input.avi", 20)
    options = JobOptionsData(None, None, 1, False, None)
    svc.submit(job_id, "upload", "clip.avi", options, probe_video(d / "input.avi"))
    wait_until(lambda: svc.get(job_id).frames_done >= 1, 30)
    svc.stop()
    store = JobStore(tmp_path / "data" / "jobs.sqlite3")
    rec = store.get(job_id)
    store.close()
    # not an interrupted attempt: it runs again at the next start, the input kept for it
    assert rec is not None and rec.state == JobState.QUEUED and rec.attempts == 0
    assert (d / "input.avi").exists()
    assert not list((d / "results").glob("*"))

    again = JobService(JobsConfig(), tmp_path / "data", FakeDetector())
    again.start()
    try:
        wait_until(lambda: again.get(job_id).state == JobState.SUCCEEDED, 30)
        assert again.get(job_id).attempts == 1
    finally:
        again.stop()
