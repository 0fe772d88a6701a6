"""A real Mosquitto broker for the tests (Debian `mosquitto`), on a free loopback port, with
a password file; and a subscriber that records what it receives."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from service_helpers import free_port, wait_until

USER, PASSWORD = "xnoryolo", "s3cret-pass"


def find_mosquitto() -> Path | None:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    return Path(found) if found else None


class Broker:
    """Killed and started again on the same port, with the same password file."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="xnoryolo-mqtt-"))
        self.port = free_port()
        passwd = self.root / "passwd"
        tool = binary.with_name("mosquitto_passwd")
        tool = tool if tool.exists() else Path(shutil.which("mosquitto_passwd") or "")
        subprocess.run([str(tool), "-b", "-c", str(passwd), USER, PASSWORD], check=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {passwd}",
            "persistence false",
            "log_dest stderr",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, who cannot read root's files
        self.conf = self.root / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        os.chmod(passwd, 0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with (self.root / "log").open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )

        def up() -> bool:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            c.username_pw_set(USER, PASSWORD)
            try:
                c.connect("127.0.0.1", self.port)
            except OSError:
                return False
            c.disconnect()
            return True

        wait_until(up, 20, interval=0.1, what="mosquitto")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class Recorder:
    """A subscriber to `topic` that keeps every message (reconnecting like a client would)."""

    def __init__(self, broker: Broker, topic: str = "#") -> None:
        self.messages: dict[str, list[tuple[bytes, bool]]] = defaultdict(list)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *_: c.subscribe(topic)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            self.messages[message.topic].append((bytes(message.payload), bool(message.retain)))
            self.times[message.topic].append(time.monotonic())

    def last(self, topic: str) -> bytes | None:
        with self.lock:
            got = self.messages.get(topic)
            return got[-1][0] if got else None

    def count(self, topic: str, since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for t in self.times.get(topic, ()) if t >= since)

    def topics(self) -> list[str]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
