"""The source policy: schemes, networks (with a resolver stub: no address other than loopback
is ever contacted), media folders, devices, and FFmpeg's protocol syntax."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from xnoryolo.service.policy import (
    HostNotFound,
    NetworkPolicy,
    SourcePolicy,
    SourceRefused,
    check_url,
)
from xnoryolo.service.settings import ConfigError, SourcesConfig, load_settings
from xnoryolo.service.streams.sources import InvalidSource, check_source, parse_source

pytestmark = pytest.mark.timeout(30)


class StubResolver:
    """Host names -> addresses, recording what was asked (nothing leaves the process)."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]


NAMES = StubResolver(
    {
        "cam.lan": ["192.168.1.10"],
        "restreamer": ["127.0.0.1"],
        "metadata.evil": ["169.254.169.254"],
        "split.evil": ["192.168.1.11", "169.254.169.254"],  # one good address is not enough
        "mapped.evil": ["::ffff:169.254.169.254"],
        "nat64.evil": ["64:ff9b::a9fe:a9fe"],
        "v6.lan": ["fd12:3456::10"],
    }
)


def network(**config: object) -> NetworkPolicy:
    return NetworkPolicy.from_config(SourcesConfig.model_validate(config), NAMES)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://cam.lan/stream1",
        "rtsp://restreamer:8554/cam",
        "rtsp://127.0.0.1:8554/cam",  # go2rtc-style restreamer on loopback
        "rtsp://192.0.2.10:554/stream1",  # a LAN camera (documentation range)
        "http://[::1]:8080/video.mjpg",
        "rtsps://v6.lan/live",
        "rtsp://admin:s3cret@cam.lan/stream1",
    ],
)
def test_defaults_allow_lan_and_loopback(url: str) -> None:
    SourcePolicy(network()).check_network(url)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://169.254.169.254/latest",
        "http://metadata.evil/latest/meta-data",
        "http://split.evil/",
        "http://mapped.evil/",
        "http://nat64.evil/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://[::]/",
        "http://0.0.0.0:8080/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[fd00:ec2::254]/latest",
    ],
)
def test_default_deny_list(url: str) -> None:
    with pytest.raises(SourceRefused, match="denies"):
        SourcePolicy(network()).check_network(url)


def test_refusal_does_not_reveal_resolved_addresses() -> None:
    with pytest.raises(SourceRefused) as info:
        SourcePolicy(network()).check_network("http://metadata.evil/x")
    assert "169.254" not in str(info.value) and "metadata.evil" in str(info.value)


def test_allow_and_deny_lists() -> None:
    only_lan = network(allow_networks=["192.168.1.0/24"])
    only_lan.check_url("http://cam.lan/")
    with pytest.raises(SourceRefused, match="outside the networks"):
        only_lan.check_url("http://restreamer/")
    no_loopback = network(deny_networks=["127.0.0.0/8", "::1/128"])
    with pytest.raises(SourceRefused):
        no_loopback.check_url("http://127.0.0.2:8080/")
    with pytest.raises(SourceRefused):
        no_loopback.check_url("http://[::1]/")
    no_loopback.check_url("http://169.254.169.254/")  # replacing the list drops the default


def test_numeric_host_forms_are_checked_as_what_they_resolve_to() -> None:
    # The system resolver turns these into addresses without asking any server.
    policy = NetworkPolicy.from_config(SourcesConfig(deny_networks=["127.0.0.0/8"]))
    for host in ("2130706433", "0x7f.1", "127.1", "0177.0.0.1"):
        with pytest.raises(SourceRefused):
            policy.check_url(f"http://{host}:8080/")


def test_unknown_and_slow_hosts() -> None:
    with pytest.raises(HostNotFound, match=r"nowhere\.lan"):
        network().check_url("http://nowhere.lan/")
    release = threading.Event()

    def slow(host: str, port: int) -> Sequence[str]:
        release.wait(10)
        return ["192.168.1.10"]

    policy = NetworkPolicy(resolve_timeout_s=0.2, resolver=slow)
    try:
        with pytest.raises(HostNotFound, match="no answer"):
            policy.check_url("http://slow.lan/")
    finally:
        release.set()


def test_schemes_and_urls() -> None:
    rtsp_only = SourcePolicy(network(), schemes=frozenset({"rtsp"}))
    with pytest.raises(SourceRefused, match="rtsp://"):
        rtsp_only.check_network("http://cam.lan/")
    with pytest.raises(SourceRefused, match="http://"):
        check_url(network(), "ftp://cam.lan/x")
    with pytest.raises(SourceRefused, match="port"):
        check_url(network(), "http://cam.lan:99999/x")
    with pytest.raises(SourceRefused, match="percent-encode"):
        check_url(network(), "http://user:pa#ss@cam.lan/x")
    assert check_url(network(), "https://user:s3cret@cam.lan/v.mp4") == "cam.lan"
    assert not any("s3cret" in host for host in NAMES.asked)


@pytest.mark.parametrize(
    "url",
    [
        "async:/tmp/clip.mp4",
        "pipe:0",
        "concat:/tmp/a.mp4|/tmp/b.mp4",
        "subfile,,start,0,end,100,,:/etc/passwd",
        "file:/etc/passwd",
        "crypto:/tmp/x",
        "data:video/mp4;base64,AAAA",
        "fd:3",
        "unix:/run/x.sock",
        "cache:/tmp/x",
        "tcp:127.0.0.1:9",
    ],
)
def test_ffmpeg_protocol_syntax_is_no_source(url: str) -> None:
    with pytest.raises(InvalidSource, match="protocol syntax"):
        parse_source(url)


@pytest.mark.parametrize(
    "url", ["tcp://127.0.0.1:9", "udp://127.0.0.1:9", "hls+http://h/x", "gopher://h/", "ftp://h/"]
)
def test_other_schemes_are_no_source(url: str) -> None:
    with pytest.raises(InvalidSource, match="unsupported URL scheme"):
        parse_source(url)


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, SourcePolicy]:
    media = tmp_path / "media"
    data = media / "data"  # data_dir inside a media root: still never open
    (data / "jobs" / "x").mkdir(parents=True)
    (media / "clip.mp4").write_bytes(b"x")
    (data / "jobs" / "x" / "input.mp4").write_bytes(b"x")
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    (media / "link.mp4").symlink_to(outside)
    policy = SourcePolicy(network(), media_roots=(media,), forbidden_roots=(data,))
    return media, outside, policy


def test_files_only_under_media_roots(roots: tuple[Path, Path, SourcePolicy]) -> None:
    media, outside, policy = roots
    assert parse_source(str(media / "clip.mp4"), policy).kind == "file"
    assert parse_source(f"file://{media / 'clip.mp4'}", policy).kind == "file"
    refused = [
        str(outside),
        str(media / "link.mp4"),  # a symlink out of the root
        str(media / ".." / "secret.mp4"),
        str(media / "data" / "jobs" / "x" / "input.mp4"),  # another job's input
        "/etc/passwd",
        "/proc/self/environ",
        "/dev/zero",
    ]
    for path in refused:
        with pytest.raises(SourceRefused) as info:
            parse_source(path, policy)
        assert str(outside) not in str(info.value) and "tmp" not in str(info.value)
    with pytest.raises(SourceRefused, match="no local files"):
        parse_source(str(media / "clip.mp4"), SourcePolicy(network()))


def test_special_files_under_a_media_root(tmp_path: Path) -> None:
    import socket

    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.mp4"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    (tmp_path / "folder.mp4").mkdir()
    policy = SourcePolicy(network(), media_roots=(tmp_path,))
    try:
        for path, what in ((fifo, "FIFO"), (sock_path, "socket"), (tmp_path / "folder.mp4", "")):
            with pytest.raises(InvalidSource, match=f"not a regular file.*{what}"):
                check_source(parse_source(str(path), policy))
    finally:
        sock.close()


def test_devices_only_as_configured() -> None:
    policy = SourcePolicy(network(), devices=frozenset({"/dev/video2"}))
    assert parse_source("/dev/video2", policy).kind == "device"
    for device in ("/dev/video0", "0"):
        with pytest.raises(SourceRefused, match="device"):
            parse_source(device, policy)
    assert parse_source("0").kind == "device"  # the settings file's streams are trusted
    assert parse_source("/dev/v4l/by-id/usb-Cam_123-video-index0").kind == "device"


def test_policy_settings(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "sources:\n  media_roots: [/srv/media]\n  allow_networks: [192.168.0.0/16]\n"
        "max_streams: 4\n"
    )
    settings = load_settings(config)
    assert settings.max_streams == 4
    policy = SourcePolicy.from_settings(settings)
    assert policy.media_roots == (Path("/srv/media"),)
    assert policy.forbidden_roots == (Path(os.path.realpath(settings.data_dir)),)
    config.write_text("sources:\n  deny_networks: [not-a-network]\n")
    with pytest.raises(ConfigError, match=r"not-a-network.*CIDR"):
        load_settings(config)
