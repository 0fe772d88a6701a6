"""Fleet figures (not a test): events per second through a real Mosquitto, and jobs per minute
with 1 and 2 `xnoryolo worker` processes on a throwaway PostgreSQL.

    .venv/bin/python tests/helpers/fleet_bench.py mqtt
    .venv/bin/python tests/helpers/fleet_bench.py jobs [--jobs 8] [--frames 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fleet_helpers import Api, Worker, fleet_config  # noqa: E402
from mqtt_broker import PASSWORD, USER, Broker, Recorder, find_mosquitto  # noqa: E402
from pg_server import PostgresServer, find_bindir  # noqa: E402

from jobs_helpers import cut_video  # noqa: E402
from refdata import DEMO_CLIP, yolov3_tiny_files  # noqa: E402


def bench_mqtt(events: int) -> None:
    from xnoryolo.detector import Detection
    from xnoryolo.service.publish.hub import PublishHub
    from xnoryolo.service.publish.mqtt import MqttSink
    from xnoryolo.service.settings import MqttConfig
    from xnoryolo.service.streams.events import DetectionEvent, Frame

    binary = find_mosquitto()
    assert binary is not None, "mosquitto is not installed"
    broker = Broker(binary)
    hub = PublishHub()
    config = MqttConfig(
        host="127.0.0.1", port=broker.port, username=USER, password=PASSWORD, outbox=events
    )
    sink = MqttSink(config, hub, lambda: [], "bench")
    rec = Recorder(broker, "xnoryolo/+/detections")
    sink.start()
    while not sink.status()["connected"]:
        time.sleep(0.05)
    image = np.zeros((4, 4, 3), np.uint8)
    dets = (
        Detection(0, "person", 0.9, 0.1, 0.2, 0.1, 0.2, 5, 20, 40, 60),
        Detection(2, "car", 0.7, 0.5, 0.5, 0.2, 0.1, 50, 50, 80, 30),
    )
    t0 = time.monotonic()
    for i in range(events):
        frame = Frame(f"cam{i % 4}", i, image, time.time(), time.monotonic())
        hub.publish(DetectionEvent(frame.stream, frame, dets[: i % 3], 10.0, 5.0))
    t_pub = time.monotonic() - t0
    deadline = time.monotonic() + 60
    topics = [f"xnoryolo/cam{k}/detections" for k in range(4)]
    while sum(rec.count(t) for t in topics) < events - sink.dropped and time.monotonic() < deadline:
        time.sleep(0.05)
    got = sum(rec.count(t) for t in topics)
    last = max(max(rec.times[t]) for t in topics if rec.times.get(t))
    rate = got / (last - t0)
    print(
        f"mqtt: {events} detection events from 4 streams: {got} received, {sink.dropped} dropped; "
        f"{rate:.0f} events/s end to end ({sink.published} messages incl. counts and discovery; "
        f"hub publish took {t_pub * 1e6 / events:.1f} us per event), QoS 0"
    )
    sink.stop()
    rec.close()
    broker.remove()


def bench_jobs(jobs: int, frames: int, rounds: int) -> None:
    bindir = find_bindir()
    assert bindir is not None, "postgresql is not installed"
    pg = PostgresServer(bindir)
    work = Path(tempfile.mkdtemp(prefix="xnoryolo-fleet-bench-"))
    clip = cut_video(DEMO_CLIP, work / "clip.avi", frames)
    model = yolov3_tiny_files()
    results: dict[int, list[float]] = {1: [], 2: []}
    try:
        for r in range(rounds):
            for n in (1, 2) if r % 2 == 0 else (2, 1):  # interleaved: the machine is shared
                config = fleet_config(
                    work / f"fleet{r}{n}.yaml", pg.new_database(), work / f"data{r}{n}", model
                )
                api = Api(config, work / "api.log", "--no-workers")
                workers = [Worker(config, work / f"worker{i}.log") for i in range(n)]
                time.sleep(3)  # the workers load the model
                t0 = time.monotonic()
                ids = [api.upload(clip, video="false")["id"] for _ in range(jobs)]
                while not all(api.job(i)["state"] == "succeeded" for i in ids):
                    time.sleep(0.2)
                per_min = jobs / (time.monotonic() - t0) * 60
                results[n].append(per_min)
                print(f"round {r}: {n} worker(s): {per_min:.1f} jobs/min", flush=True)
                api.stop()
                for w in workers:
                    w.stop()
    finally:
        pg.stop()
        pg.remove()
    for n, values in results.items():
        print(
            f"jobs: {n} worker(s): median {statistics.median(values):.1f} jobs/min "
            f"({jobs} jobs of {frames} frames 768x576, yolov3-tiny; runs {values})"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["mqtt", "jobs"])
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    args: Any = p.parse_args(argv)
    if args.what == "mqtt":
        bench_mqtt(args.events)
    else:
        bench_jobs(args.jobs, args.frames, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
