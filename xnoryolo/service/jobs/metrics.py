"""Prometheus metrics of the video jobs, read from the job service at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .service import JobService
from .store import JobState


class JobsCollector(Collector):
    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("xnoryolo_jobs", "Video jobs by state", labels=["state"])
        counts = self._jobs.counts()
        for state in JobState:
            by_state.add_metric([state.value], counts.get(state, 0))
        fps = GaugeMetricFamily(
            "xnoryolo_job_processing_fps", "Frames per second of each running job", labels=["job"]
        )
        for rec in self._jobs.list_jobs(JobState.RUNNING):
            fps.add_metric([rec.id], rec.fps or 0.0)
        yield from (by_state, fps)
