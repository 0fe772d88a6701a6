"""`xnoryolo serve` and its settings: file, environment, flags; clear one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_helpers import ROOT, free_port, wait_until
from xnoryolo.service.settings import ConfigError, load_settings

pytestmark = pytest.mark.timeout(120)

# Not the repository root: its xnoryolo/ folder (no compiled kernels in a plain install) would
# shadow the installed package for `python -m xnoryolo`.
HERE = Path(__file__).resolve().parent


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xnoryolo", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_clean_env(), **(env or {})},
        cwd=HERE,
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("XNORYOLO_")}


def test_incomplete_model_is_one_clear_line() -> None:
    r = serve("--cfg", "x.cfg")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cfg" in lines[0] and "--weights" in lines[0]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("port: [1,\n", "not valid YAML"),
        ("- just\n- a list\n", "mapping"),
        ("port: many\n", "port"),
        ("surprise: 1\n", "surprise"),
        ("streams:\n  - name: no url\n", "streams.0.url"),
        ("\x00\x01garbage", "config"),
    ],
)
def test_garbage_config_is_one_clear_line(tmp_path: Path, text: str, expect: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    r = serve("--config", str(cfg), "--cfg", "x.cfg", "--weights", "x.w", "--names", "x.n")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xnoryolo: error:"), r.stderr
    assert expect in lines[0] or "config.yaml" in lines[0]


@pytest.mark.parametrize(
    ("args", "env", "expect"),
    [
        (("--host", "0.0.0.0"), {}, "without API keys"),
        (("--host", "::"), {}, "without API keys"),
        ((), {"XNORYOLO_HOST": "192.0.2.1"}, "without API keys"),
        ((), {"XNORYOLO_API_KEYS": ","}, "empty"),
        ((), {"XNORYOLO_API_KEYS": ""}, "empty"),
        (("--config", "/dev/zero"), {}, "not a regular file"),
    ],
)
def test_unsafe_start_is_refused_in_one_line(
    args: tuple[str, ...], env: dict[str, str], expect: str
) -> None:
    r = serve(*args, env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr


def test_config_on_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: the settings file is opened without
    blocking and refused."""
    fifo = tmp_path / "settings.fifo"
    os.mkfifo(fifo)
    r = serve("--config", str(fifo))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "settings.fifo: not a regular file" in lines[0], r.stderr


def test_keyless_public_opt_out_keeps_the_rest_of_the_access_block(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("host: 0.0.0.0\naccess: {allowed_origins: ['http://dash.example']}\n")
    settings = load_settings(cfg, access={"allow_keyless_public": True})
    assert settings.access.allow_keyless_public
    assert settings.access.allowed_origins == ["http://dash.example"]


def test_binary_config_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(bytes(range(256)) * 64)
    r = serve("--config", str(cfg))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{cfg}: not UTF-8 text" in lines[0], r.stderr


@pytest.mark.parametrize(
    ("streams", "expect"),
    [
        ("[{url: 'gopher://127.0.0.1/x'}]", "streams.0.url: unsupported URL scheme 'gopher'"),
        ("[{url: a.mp4, classes: [unicorn]}]", "streams.0.classes: unknown class names: unicorn"),
        ("[{url: a.mp4, id: x}, {url: b.mp4, id: x}]", "streams.1.id: 'x' is used twice"),
    ],
)
def test_bad_config_streams(model_files: Any, tmp_path: Path, streams: str, expect: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"model: {{cfg: '{model_files.cfg}', weights: '{model_files.weights}', "
        f"names: '{model_files.names}'}}\nstreams: {streams}\n"
    )
    r = serve("--config", str(cfg))
    assert r.returncode == 2
    assert r.stderr.strip().startswith(f"xnoryolo: error: {expect}")
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_model_files_is_one_clear_line(tmp_path: Path) -> None:
    r = serve("--cfg", str(tmp_path / "none.cfg"), "--weights", "w", "--names", "n")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_settings_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "port: 1000\nthreads: 2\nmodel: {cfg: a.cfg, weights: a.weights}\n"
        "capture: {read_timeout_s: 7}\n"
        "streams: [{url: rtsp://127.0.0.1/x, classes: [person]}]\n"
    )
    for k in list(os.environ):
        if k.startswith("XNORYOLO_"):
            monkeypatch.delenv(k)
    s = load_settings(cfg)
    assert (s.port, s.threads, str(s.model.cfg), s.capture.read_timeout_s) == (
        1000,
        2,
        "a.cfg",
        7,
    )
    monkeypatch.setenv("XNORYOLO_PORT", "2000")
    monkeypatch.setenv("XNORYOLO_MODEL__WEIGHTS", "env.weights")
    monkeypatch.setenv("XNORYOLO_API_KEYS", "k1, k2")
    s = load_settings(cfg)
    assert s.port == 2000 and str(s.model.weights) == "env.weights"
    assert str(s.model.cfg) == "a.cfg"  # nested settings merge, not replace
    assert s.api_keys == ["k1", "k2"]
    monkeypatch.setenv("XNORYOLO_API_KEYS", '["j1"]')
    s = load_settings(cfg, port=3000, model={"cfg": "flag.cfg"}, threads=None)
    assert s.port == 3000 and str(s.model.cfg) == "flag.cfg" and s.threads == 2
    assert str(s.model.weights) == "env.weights" and s.api_keys == ["j1"]
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_settings(tmp_path / "nope.yaml")


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("XNORYOLO_"):
            monkeypatch.delenv(k)
    s = load_settings(ROOT / "xnoryolo" / "configs" / "serve.example.yaml")
    assert s.streams and s.streams[0].id == "entrance"


@pytest.mark.parametrize("model", ["given", "default"])
def test_serve_runs_and_stops(model_files: Any, tmp_path: Path, model: str) -> None:
    port = free_port()
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("port: 1\nhost: 0.0.0.0\n")  # flags override both
    given = (
        "--cfg",
        model_files.cfg,
        "--weights",
        model_files.weights,
        "--names",
        model_files.names,
    )
    flags = [str(a) for a in given] if model == "given" else []  # else: the default model
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "xnoryolo", "serve", "--config", str(cfg), *flags),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
        cwd=HERE,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False

        wait_until(up, 60, 0.25, "xnoryolo serve")
        r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert r.status_code == 200 and r.json()["model"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert ("default model" in out) == (model == "default"), out
