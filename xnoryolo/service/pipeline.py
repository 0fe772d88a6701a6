"""The live pipeline wired together (capture -> infer -> publish): frame scheduler, stream
manager, inference pool, publish hub, metrics and snapshots."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import xnoryolo
from xnoryolo.tracking.draw import draw_analysis

from .inference import DetectorLike, InferencePool
from .policy import SourcePolicy
from .publish.hub import PublishHub
from .publish.metrics import ServiceMetrics
from .publish.mqtt import MqttCollector, MqttSink
from .publish.snapshots import SnapshotCache
from .settings import ServeSettings
from .streams.manager import StreamManager
from .streams.memory import limit_arenas
from .streams.scheduler import FrameScheduler
from .streams.sources import configure_ffmpeg

log = logging.getLogger("xnoryolo.service")


@dataclass
class Pipeline:
    settings: ServeSettings
    detector: DetectorLike
    scheduler: FrameScheduler
    hub: PublishHub
    manager: StreamManager
    pool: InferencePool
    metrics: ServiceMetrics
    snapshots: SnapshotCache
    mqtt: MqttSink | None = None

    @classmethod
    def build(cls, detector: DetectorLike, settings: ServeSettings) -> Pipeline:
        scheduler = FrameScheduler()
        hub = PublishHub(settings.subscriber_queue)
        metrics = ServiceMetrics()
        manager = StreamManager(
            scheduler,
            hub,
            settings.capture,
            metrics=metrics,
            class_names=detector.names,
            policy=SourcePolicy.from_settings(settings),
            max_streams=settings.max_streams,
            max_pixels=settings.limits.max_pixels,
        )
        pool = InferencePool(
            detector,
            scheduler,
            manager.params,
            manager.on_result,
            workers=settings.workers,
            on_held=manager.on_held,
        )
        metrics.watch(lambda: [ms.to_json() for ms in manager.list()])
        metrics.watch_subscribers(lambda: hub.subscribers, lambda: hub.dropped)
        snapshots = SnapshotCache(
            annotate=lambda e: draw_analysis(
                e.frame.image, e.detections, manager.analysis(e.stream)
            )
        )
        mqtt = None
        if settings.mqtt.host:
            mqtt = MqttSink(
                settings.mqtt,
                hub,
                lambda: [ms.to_json() for ms in manager.list()],
                xnoryolo.__version__,
            )
            metrics.registry.register(MqttCollector(mqtt))
        return cls(settings, detector, scheduler, hub, manager, pool, metrics, snapshots, mqtt)

    def start(self) -> None:
        configure_ffmpeg(self.settings.capture.ffmpeg_options)
        limit_arenas()  # see streams/memory.py: streams that come and go give memory back
        self.manager.start()
        self.pool.start()
        if self.mqtt is not None:
            self.mqtt.start()
        for config in self.settings.streams:
            self.manager.add(config, trusted=True)  # the operator's own

    def stop(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        self.hub.close()
        self.manager.stop()
        self.pool.stop()
