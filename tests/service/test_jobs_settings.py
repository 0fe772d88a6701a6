"""Jobs settings: data_dir from XNORYOLO_DATA_DIR, jobs.* from the file and the env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xnoryolo.service.settings import ConfigError, load_settings


def test_data_dir_and_jobs_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("XNORYOLO_"):
            monkeypatch.delenv(k)
    assert load_settings().data_dir == Path("data")
    cfg = tmp_path / "s.yaml"
    cfg.write_text("jobs: {workers: 2, priority: equal, max_upload_mb: 5}\n")
    monkeypatch.setenv("XNORYOLO_DATA_DIR", str(tmp_path / "jobs-data"))
    monkeypatch.setenv("XNORYOLO_JOBS__MAX_ATTEMPTS", "5")
    s = load_settings(cfg)
    assert s.data_dir == tmp_path / "jobs-data"
    assert (s.jobs.workers, s.jobs.priority, s.jobs.max_upload_mb) == (2, "equal", 5)
    assert s.jobs.max_attempts == 5
    assert load_settings(cfg, data_dir="/srv/x").data_dir == Path("/srv/x")
    cfg.write_text("jobs: {priority: sometimes}\n")
    with pytest.raises(ConfigError, match=r"jobs\.priority"):
        load_settings(cfg)
