"""The job service: uploaded-video jobs submitted, queued, run by a bounded pool of worker
threads (each job by `runner.run_job`), followed in the job store, cancelled on request and
recovered after a restart.

Downloads: a `url=` job's video is fetched, while the job is queued, by download threads of
their own (`limits.download_workers`; jobs/download.py bounds each in time and rate), so a slow
peer never holds a job worker.

CPU sharing: job workers call the detector directly, but with `priority: live` (the default)
each job frame first waits, up to `live_wait_max_s`, until no live inference (stream frames,
single-image requests) is running. A live frame then waits for at most one job frame, and jobs
use the time the streams leave idle. `priority: equal` skips the wait.

Workers claim jobs from the store (`JobStore.claim`: each queued job to exactly one worker,
also across processes with a PostgreSQL store) and hold a lease on it, renewed every
`heartbeat_s` by a heartbeat thread; a renewal that fails means the job was cancelled (perhaps
through the API of another process) and stops it.

Restart safety: with the embedded store, a job found `running` at start was interrupted by a
crash; with a shared store, a job whose worker let its lease run out died with its worker. Such
a job is run again from the start (results are only renamed into place at the very end, so
nothing half-written remains), unless it already took `max_attempts` starts, then it is failed
with the reason."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from xnoryolo.detector.video import Cancelled, Progress, VideoError, VideoInfo

from ..inference import DetectorLike
from ..policy import NetworkPolicy
from ..redact import redact
from ..settings import JobsConfig, LimitsConfig
from .download import DownloadError, DownloadRules, download
from .layout import DataLayout
from .runner import FramesTooLarge, run_job
from .store import JobRecord, JobState, JobStore, now
from .stores import is_shared, open_store

log = logging.getLogger("xnoryolo.service.jobs")


class JobNotFound(LookupError):
    pass


class JobBusy(RuntimeError):
    """The job's worker has not let go of it yet."""


class LiveGate(Protocol):
    """Live inference as the job workers see it: they wait until none runs."""

    def wait_idle(self, timeout: float) -> bool: ...


@dataclass(frozen=True)
class JobOptionsData:
    threshold: float | None
    classes: list[str] | None
    stride: int
    video: bool
    max_frames: int | None
    # track, lines, zones, motion (xnoryolo.tracking.AnalysisSpec's parts, as JSON)
    analysis: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "classes": self.classes,
            "stride": self.stride,
            "video": self.video,
            "max_frames": self.max_frames,
            **self.analysis,
        }


class JobService:
    def __init__(
        self,
        config: JobsConfig,
        data_dir: Path,
        detector: DetectorLike,
        live: LiveGate | None = None,
        limits: LimitsConfig | None = None,
        network_policy: NetworkPolicy | None = None,
        run_jobs: bool = True,
        fetch: bool = True,
    ) -> None:
        """`run_jobs=False`: jobs are only submitted and followed here (the API of a fleet);
        `fetch=False`: url= inputs are left to the processes that fetch them (the workers)."""
        self.config = config
        self.shared = is_shared(config.store)
        self.limits = limits or LimitsConfig()
        # where url= inputs may come from (None: NetworkPolicy's default deny list)
        self.network_policy = network_policy
        self.data_dir = Path(data_dir)
        self.layout = DataLayout(self.data_dir)
        self.detector = detector
        self.live = live
        self._store: JobStore | None = None
        self._open_lock = threading.Lock()
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a job was queued here: look now, not at the next poll
        self._cancel: dict[str, threading.Event] = {}
        self._owners: dict[str, str] = {}  # job id -> the local worker that holds its lease
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._progress: dict[str, Progress] = {}
        self._stop = threading.Event()
        self._fetch_queue: queue.Queue[str] = queue.Queue()
        # url= inputs are fetched by threads of their own: a slow peer never holds a worker.
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"job-worker-{i}", daemon=True)
            for i in range(config.workers if run_jobs else 0)
        ] + [
            threading.Thread(target=self._fetch_loop, name=f"job-fetch-{i}", daemon=True)
            for i in range(self.limits.download_workers if fetch else 0)
        ]
        if run_jobs:
            self._threads.append(
                threading.Thread(target=self._heartbeat, name="job-heartbeat", daemon=True)
            )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        # The data dir is created by the first job, not by a service that never gets one.
        if self.shared or self.layout.db.exists():
            self._open()
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._lock:
            events = list(self._cancel.values())
        for ev in events:
            ev.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t.is_alive():
                t.join(max(0.0, deadline - time.monotonic()))
        if self._store is not None:
            self._store.close()

    def _open(self) -> JobStore:
        with self._open_lock:
            if self._store is None:
                store = open_store(self.config.store, self.layout)
                self._recover(store)
                self._store = store
            return self._store

    @property
    def store(self) -> JobStore:
        return self._store or self._open()

    def job_dir(self, job_id: str) -> Path:
        return self.layout.folder(job_id).path

    def _recover(self, store: JobStore) -> None:
        if not self.shared:
            self._recover_embedded(store)
        for job_id in store.ids_in(JobState.QUEUED):
            rec = store.get(job_id)
            if rec is not None:
                self._enqueue(rec)

    def _recover_embedded(self, store: JobStore) -> None:
        # One process owns the file: whatever runs at start died with the last one.
        for job_id in store.ids_in(JobState.RUNNING):
            rec = store.get(job_id)
            assert rec is not None
            self._clear_parts(job_id)
            if rec.attempts >= self.config.max_attempts:
                reason = f"the server stopped during this job {rec.attempts} times; given up"
                store.update(
                    job_id, state=JobState.FAILED, error=reason, finished_at=now(), eta_s=None
                )
                self._drop_input(job_id)
                log.warning("job %s: %s", job_id, reason)
            else:
                store.update(
                    job_id,
                    state=JobState.QUEUED,
                    frames_done=0,
                    fps=None,
                    eta_s=None,
                    lease_until=None,
                )
                log.warning("job %s: interrupted by a restart; runs again from the start", job_id)
        known = {r.id for r in store.list_jobs(limit=1_000_000)}
        jobs_root = self.layout.jobs
        if jobs_root.is_dir():
            for d in jobs_root.iterdir():
                if d.name not in known:  # an upload the server died in
                    shutil.rmtree(d, ignore_errors=True)

    def _enqueue(self, rec: JobRecord) -> None:
        """A queued job to its next step: fetching its URL, or a worker."""
        if rec.source != "upload" and self.layout.folder(rec.id).find_input() is None:
            if rec.ready:
                self.store.update(rec.id, only_if=JobState.QUEUED, ready=False)
            self._fetch_queue.put(rec.id)
        else:
            self._wake.set()

    def _clear_parts(self, job_id: str) -> None:
        results = self.layout.folder(job_id).results
        if results.is_dir():
            for p in results.glob(".*.part*"):
                p.unlink(missing_ok=True)

    # -- jobs ------------------------------------------------------------------------------
    def new_job(self) -> tuple[str, Path]:
        """An id and an empty folder for a job about to be submitted."""
        self.store  # noqa: B018 -- opens the store (and recovers) before the first folder
        job_id = uuid.uuid4().hex[:16]
        d = self.job_dir(job_id)
        d.mkdir(parents=True)
        return job_id, d

    def discard(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def submit(
        self,
        job_id: str,
        source: str,
        filename: str | None,
        options: JobOptionsData,
        info: VideoInfo | None = None,
    ) -> JobRecord:
        rec = JobRecord(
            id=job_id,
            state=JobState.QUEUED,
            created_at=now(),
            source=source,
            filename=filename,
            options=options.to_json(),
            frames_total=info.frames if info else None,
            width=info.width if info else None,
            height=info.height if info else None,
            video_fps=info.fps if info else None,
            ready=source == "upload",
        )
        self.store.add(rec)
        self._enqueue(rec)
        log.info("job %s: queued (%s)", job_id, filename or redact(source))
        return rec

    def get(self, job_id: str) -> JobRecord:
        rec = self._store.get(job_id) if self._store is not None else None
        if rec is None:
            raise JobNotFound(job_id)
        live = self._progress.get(job_id)
        if live is not None and rec.state == JobState.RUNNING:
            rec.frames_done = live.frames_read
            rec.frames_total = live.frames_total or rec.frames_total
            rec.fps = live.fps
            rec.eta_s = live.eta_s
        return rec

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[JobRecord]:
        if self._store is None:
            return []
        return [
            self.get(r.id) if r.state == JobState.RUNNING else r
            for r in self._store.list_jobs(state, limit)
        ]

    def counts(self) -> dict[JobState, int]:
        return self._store.counts() if self._store is not None else {}

    def cancel(self, job_id: str) -> JobRecord:
        store = self.store
        done = now()
        if store.update(
            job_id, only_if=JobState.QUEUED, state=JobState.CANCELLED, finished_at=done
        ):
            self._drop_input(job_id)  # no worker will see it
        else:
            store.update(
                job_id, only_if=JobState.RUNNING, state=JobState.CANCELLED, finished_at=done
            )
        with self._lock:
            ev = self._cancel.get(job_id)
        if ev is not None:
            ev.set()
        return self.get(job_id)

    def delete(self, job_id: str, wait: float = 10.0) -> None:
        """Remove a finished job and its files."""
        self.get(job_id)
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                busy = job_id in self._cancel
            rec = self.store.get(job_id)
            held = rec is not None and rec.lease_until is not None and rec.lease_until > now()
            if not (busy or (held and rec is not None and rec.state == JobState.RUNNING)):
                break
            if time.monotonic() > deadline:
                raise JobBusy(job_id)
            time.sleep(0.05)
        self.store.delete(job_id)  # the record first: never a record whose files are gone
        self.discard(job_id)

    def result_path(self, job_id: str, kind: str) -> Path:
        return self.layout.folder(job_id).result(kind)

    def input_path(self, job_id: str) -> Path | None:
        return self.layout.folder(job_id).find_input()

    def _drop_input(self, job_id: str) -> None:
        if self.config.keep_input:
            return
        p = self.input_path(job_id)
        if p is not None:
            p.unlink(missing_ok=True)

    # -- workers ---------------------------------------------------------------------------
    def _work(self, index: int) -> None:
        worker = f"{self.worker_name}:{index}"
        failures = 0
        while not self._stop.is_set():
            if self._store is None and not self.shared:
                # No job yet: the embedded store (and the data dir) comes with the first one.
                if self._wake.wait(self.config.poll_s):
                    self._wake.clear()
                continue
            try:
                store = self.store
                for job_id in store.fail_expired(self.config.max_attempts):
                    log.warning("job %s: failed: its worker stopped too often", job_id)
                    self._clear_parts(job_id)
                    self._drop_input(job_id)
                rec = store.claim(worker, self.config.lease_s, self.config.max_attempts)
                failures = 0
            except Exception as exc:  # the store is unreachable: try again, slower each time
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.error("job worker: cannot reach the job store: %s", redact(str(exc)))
                self._stop.wait(min(30.0, self.config.poll_s * 2**failures))
                continue
            if rec is None:
                if self._wake.wait(self.config.poll_s):
                    self._wake.clear()
                continue
            self._wake.set()  # there may be more: let the next idle worker look too
            try:
                self._run(rec, worker)
            except Exception:
                log.exception("job %s: the worker failed", rec.id)

    def _heartbeat(self) -> None:
        """Renew the leases of the jobs run here; a lease lost (the job cancelled, perhaps by
        another process) stops its job."""
        while not self._stop.wait(self.config.heartbeat_s):
            with self._lock:
                held = list(self._owners.items())
            for job_id, worker in held:
                try:
                    kept = self.store.renew(job_id, worker, self.config.lease_s)
                except Exception as exc:  # unreachable: the lease may still outlive the outage
                    log.warning("job %s: cannot renew its lease: %s", job_id, redact(str(exc)))
                    continue
                if not kept:
                    with self._lock:
                        ev = self._cancel.get(job_id)
                    if ev is not None:
                        log.info("job %s: no longer ours (cancelled or reclaimed)", job_id)
                        ev.set()

    def download_rules(self) -> DownloadRules:
        return DownloadRules(
            limit_bytes=int(self.config.max_upload_mb * 1024 * 1024),
            read_timeout_s=self.config.url_timeout_s,
            deadline_s=self.limits.download_deadline_s,
            min_bytes_per_s=self.limits.download_min_kbps * 1024,
            rate_window_s=self.limits.download_rate_window_s,
        )

    def _fetch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._fetch_queue.get(timeout=0.25)
            except queue.Empty:
                continue
            try:
                self._fetch(job_id)
            except Exception:
                log.exception("job %s: the download failed", job_id)

    def _fetch(self, job_id: str) -> None:
        """Download a queued url= job's video, then hand the job to the workers."""
        store = self.store
        rec = store.get(job_id)
        if rec is None or rec.state != JobState.QUEUED:
            return
        cancel = threading.Event()
        with self._lock:
            self._cancel[job_id] = cancel
        try:
            log.info("job %s: downloading %s", job_id, redact(rec.source))
            download(
                rec.source,
                self.layout.folder(job_id),
                self.download_rules(),
                cancel,
                self.network_policy,
            )
            if store.update(job_id, only_if=JobState.QUEUED, ready=True):
                self._wake.set()
            else:  # cancelled as the download ended
                self._drop_input(job_id)
        except Cancelled:
            if not self._stop.is_set():
                log.info("job %s: cancelled while downloading", job_id)
        except DownloadError as exc:
            self._fail(job_id, str(exc), JobState.QUEUED)
        except Exception as exc:  # e.g. a URL urllib cannot parse: fail, never stay queued
            log.exception("job %s: the download failed", job_id)
            reason = " ".join(str(exc).split())[:200]
            self._fail(job_id, f"cannot download: {type(exc).__name__}: {reason}", JobState.QUEUED)
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)

    def _gate(self) -> None:
        if self.config.priority == "live" and self.live is not None:
            self.live.wait_idle(self.config.live_wait_max_s)

    def _run(self, rec: JobRecord, worker: str) -> None:
        """Run a job claimed by `worker` (already marked running, its attempt counted)."""
        store = self.store
        job_id = rec.id
        cancel = threading.Event()
        with self._lock:
            self._cancel[job_id] = cancel
            self._owners[job_id] = worker
        try:
            self._clear_parts(job_id)  # a reclaimed job: what its dead worker left
            log.info("job %s: running on %s (attempt %d)", job_id, worker, rec.attempts)
            run_job(
                rec,
                self.layout.folder(job_id),
                OwnedStore(store, worker),
                self.detector,
                self.config,
                cancel,
                self._gate,
                functools.partial(self._progress.__setitem__, job_id),
                self.limits.max_pixels,
            )
            self._drop_input(job_id)
        except Cancelled:
            if self._stop.is_set() and store.update(
                job_id,
                only_if=JobState.RUNNING,
                owner=worker,
                state=JobState.QUEUED,
                attempts=rec.attempts - 1,
                lease_until=None,
            ):
                log.info("job %s: stopped by the shutdown; runs again at the next start", job_id)
                return  # the input stays for the next start
            log.info("job %s: cancelled", job_id)
            self._drop_input(job_id)
        except FramesTooLarge as exc:
            self._fail(job_id, f"the video is refused: {exc}", owner=worker)
        except VideoError as exc:
            self._fail(job_id, f"not a decodable video: {exc}", owner=worker)
        except Exception as exc:
            log.exception("job %s: failed", job_id)
            self._fail(job_id, f"internal error: {type(exc).__name__}: {exc}", owner=worker)
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
                self._owners.pop(job_id, None)
                self._progress.pop(job_id, None)
            with contextlib.suppress(Exception):  # let go: nobody need wait for the lease
                store.update(job_id, owner=worker, lease_until=None)

    def _fail(
        self,
        job_id: str,
        reason: str,
        state: JobState = JobState.RUNNING,
        owner: str | None = None,
    ) -> None:
        log.warning("job %s: failed: %s", job_id, reason)
        self.store.update(
            job_id,
            only_if=state,
            owner=owner,
            state=JobState.FAILED,
            error=reason,
            finished_at=now(),
            eta_s=None,
        )
        self._drop_input(job_id)


class OwnedStore:
    """The store as one worker's job sees it: its writes land only while that worker still
    holds the job (a worker that lost its lease never overwrites the one that took over)."""

    def __init__(self, store: JobStore, worker: str) -> None:
        self._store = store
        self._worker = worker

    def update(self, job_id: str, only_if: JobState | None = None, **values: Any) -> bool:
        return self._store.update(job_id, only_if, self._worker, **values)
