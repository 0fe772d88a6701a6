"""Events to an MQTT broker (paho-mqtt), with Home Assistant MQTT discovery.

Topics (PREFIX is `mqtt.topic_prefix`):
  PREFIX/available                 online / offline (retained; offline is the last will)
  PREFIX/<stream>/state            connecting / online / stalled / offline / stopped (retained)
  PREFIX/<stream>/<type>           every event as its JSON (`to_json()`), by its "type":
                                   detections, state, and whatever types the pipeline adds
  PREFIX/<stream>/<class>          ON / OFF: the class is in the latest frame (retained)
  PREFIX/<stream>/<class>/count    how many of it (retained)
  PREFIX/<stream>/stats            the stream's counters, every `stats_interval_s` (retained)
  <discovery_prefix>/binary_sensor|sensor/<node>/<object>/config   Home Assistant discovery

The sink reads the publish hub through its own bounded subscription (the outbox) on a thread of
its own, so a broker that is down, slow or refusing the login never blocks or slows detection:
while it is away the outbox keeps the newest `outbox` events and loses the oldest, counted. The
paho loop reconnects with backoff; on each connection the availability, discovery configs and
current states are published afresh."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..settings import MqttConfig
from ..streams.events import Event, StreamState
from .hub import PublishHub

log = logging.getLogger("xnoryolo.service.mqtt")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_AUTH_FAILURES = ("not authorized", "bad user name or password", "bad username or password")


def topic_id(text: str) -> str:
    """`text` as a topic level and a Home Assistant object id (letters, digits, _ and -)."""
    return _UNSAFE.sub("_", text) or "_"


class MqttSink:
    def __init__(
        self,
        config: MqttConfig,
        hub: PublishHub,
        streams: Callable[[], Iterable[dict[str, Any]]],
        version: str = "",
    ) -> None:
        assert config.host, "an MQTT sink needs a broker host"
        self.config = config
        self.hub = hub
        self.streams = streams
        self.version = version
        self.prefix = config.topic_prefix.rstrip("/")
        self.client_id = config.client_id or f"xnoryolo-{socket.gethostname()}"[:64]
        self.node = topic_id(self.client_id)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._fresh = threading.Event()  # a new connection: announce everything again
        self._announced: set[str] = set()
        self._last: dict[str, str] = {}  # retained topics' last payloads (publish on change)
        self.error: str | None = None
        self.published = 0
        self.failed = 0
        self.connects = 0
        self._sub = hub.subscribe(None, maxsize=config.outbox)
        self._client = self._make_client()
        self._thread = threading.Thread(target=self._send_loop, name="mqtt-sink", daemon=True)

    @property
    def available_topic(self) -> str:
        return f"{self.prefix}/available"

    def _make_client(self) -> mqtt.Client:
        c = self.config
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
        )
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls:
            client.tls_set(ca_certs=str(c.ca_file) if c.ca_file else None)
        client.will_set(self.available_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, c.reconnect_max_s)
        # Messages paho holds itself (QoS > 0 while reconnecting): bounded like the outbox.
        client.max_queued_messages_set(c.outbox)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        c = self.config
        assert c.host is not None
        self._client.connect_async(c.host, c.port, keepalive=c.keepalive_s)
        self._client.loop_start()  # connects, and reconnects with backoff, on its own thread
        self._thread.start()
        log.info("MQTT: publishing to %s:%d under %s/", c.host, c.port, self.prefix)

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._sub.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._connected.is_set():
            info = self._client.publish(self.available_topic, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # gone meanwhile
                info.wait_for_publish(timeout)
        self._client.disconnect()
        self._client.loop_stop()

    def status(self) -> dict[str, Any]:
        """What GET /v1/info reports of the broker connection."""
        c = self.config
        return {
            "broker": f"{c.host}:{c.port}",
            "connected": self._connected.is_set(),
            "error": self.error,
            "published": self.published,
            "dropped": self.dropped,
            "connects": self.connects,
        }

    @property
    def dropped(self) -> int:
        """Events lost: pushed out of the outbox while the broker was away, or refused."""
        return self._sub.dropped + self.failed

    # -- paho callbacks (its network thread) -------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            text = str(reason)
            if text.lower() in _AUTH_FAILURES:
                self.error = (
                    f"the broker refused the login ({text}): check mqtt.username and mqtt.password"
                )
            else:
                self.error = f"the broker refused the connection: {text}"
            log.error("MQTT: %s; retrying with backoff", self.error)
            return
        self.error = None
        self.connects += 1
        if self.config.discovery:
            client.subscribe(f"{self.config.discovery_prefix}/status")
        self._fresh.set()
        self._connected.set()
        log.info("MQTT: connected to %s:%d", self.config.host, self.config.port)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        error = (
            f"cannot reach the broker at {self.config.host}:{self.config.port}; retrying with "
            "backoff"
        )
        if error != self.error:  # once per outage, not at every retry
            log.warning("MQTT: %s", error)
        self.error = error

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stop.is_set():
            self.error = f"disconnected from the broker: {reason}; reconnecting"
            log.warning("MQTT: %s", self.error)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: Any) -> None:
        # Home Assistant announces its own restarts: the discovery configs go out again.
        if message.payload == b"online":
            self._fresh.set()

    # -- the sender thread -------------------------------------------------------------------
    def _send_loop(self) -> None:
        next_stats = 0.0
        while not self._stop.is_set():
            if not self._connected.wait(0.5):
                continue  # the outbox fills meanwhile, losing its oldest events
            try:
                if self._fresh.is_set():
                    self._fresh.clear()
                    self._announce()
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.config.stats_interval_s
                    self._stats()
                event = self._sub.get_blocking(0.5)
                if event is not None:
                    self._event(event)
            except Exception:  # never let a bad event end the sink
                log.exception("MQTT: cannot publish")

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        if retain and self._last.get(topic) == payload:
            return
        info = self._client.publish(topic, payload, qos=self.config.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.published += 1
            if retain:
                self._last[topic] = payload
        else:
            self.failed += 1
            self._last.pop(topic, None)

    def _announce(self) -> None:
        self._last.clear()  # a new session: every retained topic once more
        self._announced.clear()
        self._publish(self.available_topic, "online", retain=True)
        for s in self.streams():
            self._announce_stream(s["id"], s.get("name") or s["id"])
            self._publish(f"{self.prefix}/{topic_id(s['id'])}/state", s["state"], retain=True)

    def _stats(self) -> None:
        for s in self.streams():
            self._publish(
                f"{self.prefix}/{topic_id(s['id'])}/stats", json.dumps(stream_stats(s)), retain=True
            )

    def _event(self, event: Event) -> None:
        body = event.to_json()
        kind = str(body.get("type") or type(event).__name__)
        stream = topic_id(event.stream)
        if event.stream not in self._announced:
            self._announce_stream(event.stream, event.stream)
        base = f"{self.prefix}/{stream}"
        if kind == "state":
            self._publish(f"{base}/state", str(body["state"]), retain=True)
        elif kind == "detections":
            counts = dict.fromkeys(self.config.classes, 0)
            for d in body.get("detections", ()):
                name = d.get("name")  # a box counts once, by its best class
                if name in counts and d.get("best_class", True):
                    counts[name] += 1
            for name, n in counts.items():
                self._publish(f"{base}/{topic_id(name)}/count", str(n), retain=True)
                self._publish(f"{base}/{topic_id(name)}", "ON" if n else "OFF", retain=True)
        self._publish(f"{base}/{topic_id(kind)}", json.dumps(body), retain=self.config.retain)

    def _announce_stream(self, stream_id: str, name: str) -> None:
        self._announced.add(stream_id)
        if not self.config.discovery:
            return
        for topic, config in discovery_configs(self, stream_id, name):
            self._publish(topic, json.dumps(config), retain=True)


def stream_stats(status: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "state",
        "input_fps",
        "processed_fps",
        "frames_in",
        "frames_processed",
        "dropped_frames",
        "reconnects",
        "stalls",
    )
    return {k: status[k] for k in keys if k in status}


def discovery_configs(
    sink: MqttSink, stream_id: str, name: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Home Assistant discovery for one stream: one device with, per class, an occupancy
    binary sensor and a count sensor, and the stream's state as an enum sensor."""
    c = sink.config
    stream = topic_id(stream_id)
    base = f"{sink.prefix}/{stream}"
    device = {
        "identifiers": [f"{sink.node}_{stream}"],
        "name": name,
        "manufacturer": "xnoryolo",
        "model": "XNOR Tiny-YOLO stream",
        "sw_version": sink.version,
    }
    common = {
        "availability_topic": sink.available_topic,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
        "origin": {"name": "xnoryolo", "sw_version": sink.version},
        "qos": c.qos,
    }
    for cls in c.classes:
        obj = f"{stream}_{topic_id(cls)}"
        yield (
            f"{c.discovery_prefix}/binary_sensor/{sink.node}/{obj}/config",
            {
                **common,
                "name": cls.capitalize(),
                "unique_id": f"{sink.node}_{obj}",
                "state_topic": f"{base}/{topic_id(cls)}",
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": "occupancy",
            },
        )
        yield (
            f"{c.discovery_prefix}/sensor/{sink.node}/{obj}_count/config",
            {
                **common,
                "name": f"{cls.capitalize()} count",
                "unique_id": f"{sink.node}_{obj}_count",
                "state_topic": f"{base}/{topic_id(cls)}/count",
                "state_class": "measurement",
                "icon": "mdi:counter",
            },
        )
    yield (
        f"{c.discovery_prefix}/sensor/{sink.node}/{stream}_state/config",
        {
            **common,
            "name": "State",
            "unique_id": f"{sink.node}_{stream}_state",
            "state_topic": f"{base}/state",
            "device_class": "enum",
            "options": [s.value for s in StreamState],
        },
    )


class MqttCollector(Collector):
    """The sink's connection and losses in /metrics."""

    def __init__(self, sink: MqttSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[Metric]:
        s = self._sink
        yield GaugeMetricFamily(
            "xnoryolo_mqtt_connected",
            "1 while connected to the MQTT broker",
            value=float(s.status()["connected"]),
        )
        yield CounterMetricFamily(
            "xnoryolo_mqtt_published_messages",
            "Messages handed to the MQTT broker",
            value=s.published,
        )
        yield CounterMetricFamily(
            "xnoryolo_mqtt_dropped_events",
            "Events lost while the MQTT broker was away or slow (the outbox was full)",
            value=s.dropped,
        )
