"""Helpers for the fleet tests: `xnoryolo serve` and `xnoryolo worker` as subprocesses that can
be killed like a crash would, and the job API seen from outside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_helpers import free_port, wait_until

HERE = Path(__file__).resolve().parent


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("XNORYOLO_")}


class Process:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "xnoryolo", *args],
                cwd=HERE,
                env=_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Api(Process):
    """`xnoryolo serve` (by default API only: --no-workers)."""

    def __init__(self, config: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            ["serve", "--config", str(config), "--port", str(self.port), *extra],
            log,
        )

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited: {log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 90, interval=0.2, what="xnoryolo serve")

    def job(self, job_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/v1/jobs/{job_id}", timeout=10)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def upload(self, path: Path, **options: Any) -> dict[str, Any]:
        with path.open("rb") as f:
            r = httpx.post(
                f"{self.url}/v1/jobs",
                files={"file": (path.name, f, "video/x-msvideo")},
                data={k: str(v) for k, v in options.items()},
                timeout=30,
            )
        assert r.status_code == 202, r.text
        result: dict[str, Any] = r.json()
        return result

    def frames(self, job_id: str) -> list[int]:
        r = httpx.get(f"{self.url}/v1/jobs/{job_id}/detections", timeout=10)
        assert r.status_code == 200, r.text
        return [f["frame"] for f in r.json()["frames"]]


class Worker(Process):
    def __init__(self, config: Path, log: Path) -> None:
        super().__init__(["worker", "--config", str(config), "--log-level", "info"], log)


def fleet_config(path: Path, store: str, data: Path, model: Any, **jobs: Any) -> Path:
    settings = {
        "model": {"cfg": str(model.cfg), "weights": str(model.weights), "names": str(model.names)},
        "data_dir": str(data),
        "jobs": {"store": store, **jobs},
    }
    import yaml

    path.write_text(yaml.safe_dump(settings))
    return path
