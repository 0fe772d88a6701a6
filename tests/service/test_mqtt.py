"""Events to a real Mosquitto broker: retained state, Home Assistant discovery, detections of
the demo clip; the broker killed and restarted mid-stream (detection goes on at the same rate,
events resume, losses counted); the last will on a server kill; a wrong password."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fleet_helpers import Api
from mqtt_broker import PASSWORD, USER, Recorder

from jobs_helpers import FakeDetector
from refdata import DEMO_CLIP
from service_helpers import run_service, settings_for, wait_until

pytestmark = pytest.mark.timeout(120)

# Home Assistant's discovery topic: <prefix>/<component>/[<node_id>/]<object_id>/config, the ids
# of letters, digits, _ and -.
HA_TOPIC = re.compile(r"^homeassistant/(binary_sensor|sensor)/[\w-]+/[\w-]+/config$", re.ASCII)


def _mqtt(broker: Any, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": USER,
        "password": PASSWORD,
        "client_id": "box1",
        "keepalive_s": 5,
        **extra,
    }


def _processed(svc: Any) -> int:
    return sum(ms.to_json()["frames_processed"] for ms in svc.pipeline.manager.list())


def _fps(svc: Any, seconds: float) -> float:
    n0, t0 = _processed(svc), time.monotonic()
    time.sleep(seconds)
    return (_processed(svc) - n0) / (time.monotonic() - t0)


def _check_discovery(rec: Recorder) -> dict[str, dict[str, Any]]:
    configs = {
        t: json.loads(rec.last(t) or b"") for t in rec.topics() if t.startswith("homeassistant/")
    }
    for topic, config in configs.items():
        assert HA_TOPIC.match(topic), topic
        assert isinstance(config["name"], str) and config["unique_id"].startswith("box1_")
        assert config["availability_topic"] == "xnoryolo/available"
        assert config["device"]["identifiers"] == ["box1_door"]
        assert config["state_topic"].startswith("xnoryolo/door/")
    return configs


def test_events_discovery_and_a_broker_restart(
    mosquitto: Any, detector: Any, tmp_path: Path
) -> None:
    settings = settings_for(
        data_dir=tmp_path / "data",
        streams=[{"url": str(DEMO_CLIP), "id": "door", "loop": True, "fps": 4}],
        mqtt=_mqtt(mosquitto, outbox=4, stats_interval_s=1),
    )
    with run_service(settings, detector) as svc:
        rec = Recorder(mosquitto)
        try:
            wait_until(lambda: rec.count("xnoryolo/door/detections") >= 4, 60, what="events")
            late = Recorder(mosquitto, "xnoryolo/+/state")  # retained: a newcomer sees it
            wait_until(lambda: late.last("xnoryolo/door/state") == b"online", 10)
            assert late.messages["xnoryolo/door/state"][0][1]  # the retained copy
            late.close()
            assert rec.last("xnoryolo/available") == b"online"
            event = json.loads(rec.last("xnoryolo/door/detections") or b"")
            assert event["type"] == "detections" and event["stream"] == "door"
            configs = _check_discovery(rec)
            assert set(configs) == {
                "homeassistant/binary_sensor/box1/door_person/config",
                "homeassistant/binary_sensor/box1/door_car/config",
                "homeassistant/sensor/box1/door_person_count/config",
                "homeassistant/sensor/box1/door_car_count/config",
                "homeassistant/sensor/box1/door_state/config",
            }
            person = configs["homeassistant/binary_sensor/box1/door_person/config"]
            wait_until(lambda: rec.last(person["state_topic"]) == b"ON", 30, what="a person")
            count = rec.last("xnoryolo/door/person/count") or b""
            assert count.isdigit()

            def stats() -> dict[str, Any]:
                return json.loads(rec.last("xnoryolo/door/stats") or b"{}")  # type: ignore[no-any-return]

            wait_until(lambda: stats().get("frames_processed", 0) > 0, 10, what="counters")
            assert stats()["state"] == "online"

            before = _fps(svc, 2.5)
            mosquitto.kill()
            wait_until(lambda: not _info(svc)["connected"], 10, what="the disconnect")
            down = _fps(svc, 2.5)
            assert "cannot reach the broker at 127.0.0.1" in (_info(svc)["error"] or "")
            mosquitto.start()
            restarted = time.monotonic()
            wait_until(lambda: _info(svc)["connected"], 30, what="the reconnect")
            wait_until(
                lambda: rec.count("xnoryolo/door/detections", restarted) >= 3, 30, what="events"
            )
            # detection never waited for the broker: the same capped rate while it was away
            assert down >= 0.6 * before, (before, down)
            metrics = httpx.get(f"{svc.url}/metrics", timeout=10).text
            dropped = re.search(r"^xnoryolo_mqtt_dropped_events_total (\S+)$", metrics, re.M)
            assert dropped and float(dropped.group(1)) > 0  # the outbox of 4 overflowed
            assert rec.last("xnoryolo/available") == b"online"
        finally:
            rec.close()


def _info(svc: Any) -> dict[str, Any]:
    mqtt: dict[str, Any] = httpx.get(f"{svc.url}/v1/info", timeout=10).json()["mqtt"]
    return mqtt


def test_wrong_password_is_a_clear_error_never_a_crash(mosquitto: Any, tmp_path: Path) -> None:
    settings = settings_for(
        data_dir=tmp_path / "data",
        streams=[{"url": str(DEMO_CLIP), "id": "door", "loop": True, "fps": 10}],
        mqtt=_mqtt(mosquitto, password="wrong", reconnect_max_s=1),
    )
    with run_service(settings, FakeDetector()) as svc:
        wait_until(lambda: _info(svc)["error"], 20, what="the refusal")
        info = _info(svc)
        assert not info["connected"] and "refused the login" in info["error"]
        assert "mqtt.password" in info["error"] and "wrong" not in info["error"]
        n = _processed(svc)
        wait_until(lambda: _processed(svc) > n + 5, 20, what="detection to go on")
        assert httpx.get(f"{svc.url}/healthz", timeout=5).status_code == 200


def test_last_will_on_a_server_kill(mosquitto: Any, model_files: Any, tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {k: str(getattr(model_files, k)) for k in ("cfg", "weights", "names")},
                "data_dir": str(tmp_path / "data"),
                "mqtt": _mqtt(mosquitto),
            }
        )
    )
    rec = Recorder(mosquitto, "xnoryolo/available")
    server = Api(config, tmp_path / "serve.log")
    try:
        wait_until(lambda: rec.last("xnoryolo/available") == b"online", 30, what="online")
        server.kill()
        wait_until(lambda: rec.last("xnoryolo/available") == b"offline", 10, what="the will")
    finally:
        server.stop()
        rec.close()
