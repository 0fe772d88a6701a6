"""Prometheus metrics: per-stream counters read from the stream status at scrape time, and
latency / inference-time histograms observed as results arrive."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..redact import redact
from ..streams.events import StreamState

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # A registry per app: several apps (tests) never collide on metric names.
        self.registry = registry or CollectorRegistry()
        self.latency = Histogram(
            "xnoryolo_stream_latency_seconds",
            "Capture-to-result latency of each processed frame",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "xnoryolo_inference_seconds",
            "Duration of one detector call",
            ["origin"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch(self, streams: Callable[[], Iterable[dict[str, Any]]]) -> None:
        """Expose the status objects returned by `streams()` on each scrape."""
        self.registry.register(_StreamCollector(streams))

    def watch_subscribers(self, count: Callable[[], int], dropped: Callable[[], int]) -> None:
        self.registry.register(_SubscriberCollector(count, dropped))

    def observe_result(self, stream: str, latency_s: float, inference_s: float) -> None:
        """One stream frame's capture-to-result latency and detector time."""
        self.latency.labels(stream).observe(latency_s)
        self.inference.labels("stream").observe(inference_s)

    def forget(self, stream: str) -> None:
        with contextlib.suppress(KeyError):
            self.latency.remove(stream)


class _StreamCollector(Collector):
    def __init__(self, streams: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._streams = streams

    def collect(self) -> Iterator[Metric]:
        labels = ["stream", "name"]
        fps_in = GaugeMetricFamily(
            "xnoryolo_stream_input_fps", "Frames read per second", labels=labels
        )
        fps_out = GaugeMetricFamily(
            "xnoryolo_stream_processed_fps", "Frames detected per second", labels=labels
        )
        state = GaugeMetricFamily(
            "xnoryolo_stream_state", "1 for the stream's current state", labels=[*labels, "state"]
        )
        counters = {
            key: CounterMetricFamily(f"xnoryolo_stream_{key}", doc, labels=labels)
            for key, doc in (
                ("frames", "Fresh frames read"),
                ("processed_frames", "Frames detected"),
                ("dropped_frames", "Frames replaced by a newer one before inference"),
                ("reconnects", "Reconnection attempts"),
                ("stalls", "Times the stream stalled"),
            )
        }
        for s in self._streams():
            lv = [s["id"], redact(s["name"])]  # a name may be (or hold) a URL
            fps_in.add_metric(lv, s["input_fps"])
            fps_out.add_metric(lv, s["processed_fps"])
            for st in StreamState:
                state.add_metric([*lv, st.value], 1.0 if s["state"] == st.value else 0.0)
            counters["frames"].add_metric(lv, s["frames_in"])
            counters["processed_frames"].add_metric(lv, s["frames_processed"])
            counters["dropped_frames"].add_metric(lv, s["dropped_frames"])
            counters["reconnects"].add_metric(lv, s["reconnects"])
            counters["stalls"].add_metric(lv, s["stalls"])
        yield from (fps_in, fps_out, state, *counters.values())
        yield from _analysis_metrics(self._streams())


def _analysis_metrics(streams: Iterable[dict[str, Any]]) -> Iterator[Metric]:
    """Line counts, zone visits and occupancy, frames the motion gate let go."""
    labels = ["stream", "name"]
    crossings = CounterMetricFamily(
        "xnoryolo_line_crossings",
        "Tracks across a counting line, per direction and class",
        labels=[*labels, "line", "direction", "class"],
    )
    entries = CounterMetricFamily(
        "xnoryolo_zone_entries", "Tracks into a zone, per class", labels=[*labels, "zone", "class"]
    )
    exits = CounterMetricFamily(
        "xnoryolo_zone_exits", "Tracks out of a zone, per class", labels=[*labels, "zone", "class"]
    )
    inside = GaugeMetricFamily(
        "xnoryolo_zone_occupancy",
        "Tracks in a zone now, per class",
        labels=[*labels, "zone", "class"],
    )
    held = CounterMetricFamily(
        "xnoryolo_stream_motion_skipped_frames",
        "Frames let go without inference by the motion gate",
        labels=labels,
    )
    for s in streams:
        a = s.get("analysis")
        if not a:
            continue
        lv = [s["id"], redact(s["name"])]
        for line, c in a["lines"].items():
            for direction in ("in", "out"):
                for cls, n in c[direction].items():
                    crossings.add_metric([*lv, line, direction, cls], n)
        for zone, z in a["zones"].items():
            for cls, n in z["entered"].items():
                entries.add_metric([*lv, zone, cls], n)
            for cls, n in z["left"].items():
                exits.add_metric([*lv, zone, cls], n)
            for cls, n in z["inside"].items():
                inside.add_metric([*lv, zone, cls], n)
        if a["motion"] is not None:
            held.add_metric(lv, a["motion"]["skipped"])
    yield from (crossings, entries, exits, inside, held)


class _SubscriberCollector(Collector):
    def __init__(self, count: Callable[[], int], dropped: Callable[[], int]) -> None:
        self._count = count
        self._dropped = dropped

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "xnoryolo_subscribers",
            "Connected event clients (SSE, WebSocket, MJPEG, JSON)",
            value=self._count(),
        )
        yield CounterMetricFamily(
            "xnoryolo_subscriber_dropped_events",
            "Events lost by clients too slow to take them",
            value=self._dropped(),
        )
