"""Service settings: a YAML file, then XNORYOLO_* environment variables, then command-line
flags (each overriding the one before).

The settings and their defaults are written here, once. This module imports nothing else of
the service, so that any part of it may take its settings from here."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from xnoryolo.detector.files import UnreadableFile, read_small_file
from xnoryolo.tracking.spec import AnalysisSpec, LineSpec, MotionSpec, TrackerSpec, ZoneSpec

# analyzeduration/probesize cut an RTSP open from ~4.7 s to ~0.2 s; setting the variable
# replaces OpenCV's own TCP preference, hence the explicit rtsp_transport.
DEFAULT_FFMPEG_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000|probesize;65536"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the problem."""


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cfg: Path | None = None
    weights: Path | None = None
    names: Path | None = None
    backend: str = "auto"
    # f32: darknet parity; int8: the non-binary convs in int8 (needs a calibrated model);
    # unset: int8 when the model carries int8 calibration, else f32
    precision: Literal["f32", "int8"] | None = None
    thresh: float = Field(default=0.25, ge=0, le=1)
    nms: float = Field(default=0.45, ge=0, le=1)


class StreamConfig(BaseModel):
    """One stream, from the config file or `POST /v1/streams`."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=4096,
        description="file, rtsp(s)://, http(s)://, /dev/videoN or a device index",
    )
    name: str | None = Field(default=None, max_length=200)
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    fps: float | None = Field(
        default=None, gt=0, le=240, description="cap on frames processed per second"
    )
    classes: list[str] | None = Field(default=None, description="report only these class names")
    threshold: float | None = Field(default=None, ge=0, le=1)
    loop: bool = Field(default=False, description="files: start again at the end")
    enabled: bool = True
    # beyond boxes (xnoryolo.tracking): track ids, counting lines, dwell zones, motion gating
    tracking: TrackerSpec = Field(default_factory=TrackerSpec, description="on, off or options")
    lines: list[LineSpec] = Field(default=[], max_length=64, description="counting lines")
    zones: list[ZoneSpec] = Field(default=[], max_length=64, description="dwell zones")
    motion: MotionSpec = Field(default_factory=MotionSpec, description="on, off or options")

    @model_validator(mode="after")
    def _analysis_ok(self) -> StreamConfig:
        # line and zone names unique, lines and zones only with tracking, classes reported
        self.analysis().check_reported(self.classes)
        return self

    def analysis(self) -> AnalysisSpec:
        return AnalysisSpec(
            tracking=self.tracking, lines=self.lines, zones=self.zones, motion=self.motion
        )


class CaptureConfig(BaseModel):
    """How every stream's capture thread opens, supervises and reconnects its source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    open_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=5.0, gt=0)
    stall_after_s: float = Field(
        default=3.0, gt=0, description="online without a fresh frame this long: stalled"
    )
    reconnect_after_stall_s: float = Field(
        default=10.0, gt=0, description="stalled this long: drop the connection, reconnect"
    )
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    ffmpeg_options: str = DEFAULT_FFMPEG_OPTIONS


# Addresses no camera or video server lives at, denied to the API by default: "this host"
# (0/8, ::), link-local (cloud metadata services answer at 169.254.169.254 and
# fd00:ec2::254), multicast and reserved/broadcast. Loopback and private LANs stay allowed:
# restreamers on 127.0.0.1 and cameras on the LAN are the normal case.
DEFAULT_DENY_NETWORKS = (
    "0.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "fe80::/10",
    "ff00::/8",
    "fd00:ec2::254/128",
)


class SourcesConfig(BaseModel):
    """What the API may open: `POST /v1/streams` sources and `url=` jobs (`sources:` in the
    YAML file). Streams declared in the settings file are the operator's own: trusted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schemes: list[Literal["rtsp", "rtsps", "http", "https"]] = Field(
        default=["rtsp", "rtsps", "http", "https"], description="network schemes allowed"
    )
    media_roots: list[Path] = Field(
        default=[], description="folders whose video files the API may open (never data_dir)"
    )
    devices: list[str] = Field(
        default=[], description="capture devices the API may open, e.g. '0' or '/dev/video0'"
    )
    allow_networks: list[str] = Field(
        default=[], description="CIDRs a host must resolve into (empty: any not denied)"
    )
    deny_networks: list[str] = Field(
        default=list(DEFAULT_DENY_NETWORKS), description="CIDRs no resolved address may be in"
    )
    resolve_timeout_s: float = Field(default=5.0, gt=0, description="host name lookups")

    @field_validator("allow_networks", "deny_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR network (e.g. 192.168.1.0/24)") from None
        return value


class JobsConfig(BaseModel):
    """Uploaded-video jobs (`jobs:` in the YAML file, XNORYOLO_JOBS__* in the env)."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=1, ge=1, le=16, description="jobs processed at once")
    max_upload_mb: float = Field(default=1024.0, gt=0, description="largest video accepted")
    priority: Literal["live", "equal"] = Field(
        default="live",
        description="live: a job frame waits while live inference runs; equal: no waiting",
    )
    live_wait_max_s: float = Field(
        default=2.0, ge=0, description="longest a job frame waits for live inference"
    )
    max_attempts: int = Field(
        default=3, ge=1, description="a job the server died in this often is failed"
    )
    keep_input: bool = Field(default=False, description="keep the uploaded video after the job")
    h264_via_ffmpeg: bool = Field(
        default=True,
        description="where OpenCV cannot write H.264, re-encode the annotated MP4 with ffmpeg",
    )
    url_timeout_s: float = Field(default=30.0, gt=0, description="per read, for url= jobs")
    store: str = Field(
        default="sqlite",
        pattern=r"^(sqlite|postgres(ql)?://.*)$",
        description="sqlite (in data_dir, one process) or postgresql://user:pass@host/db, "
        "shared by the API and `xnoryolo worker` processes (data_dir then a shared path)",
    )
    lease_s: float = Field(
        default=30.0, gt=0, description="a running job whose worker is silent this long is rerun"
    )
    heartbeat_s: float = Field(
        default=5.0, gt=0, description="how often a worker renews its lease (and sees cancels)"
    )
    poll_s: float = Field(default=0.5, gt=0, description="how often idle workers look for jobs")


class LimitsConfig(BaseModel):
    """What one request, image or job may cost (`limits:` in the YAML file,
    XNORYOLO_LIMITS__* in the env); past a limit the answer is a clear 4xx or a failed job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pixels: int = Field(
        default=40_000_000,
        ge=1,
        description="largest image or video frame (width x height), checked before decoding",
    )
    max_body_kb: float = Field(
        default=64.0, gt=0, description="JSON and form bodies (uploads have max_upload_mb)"
    )
    max_form_fields: int = Field(default=20, ge=1, le=1000, description="fields of one form")
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="408 for an upload that sends nothing this long, or another body that "
        "takes longer in all",
    )
    max_detections: int = Field(
        default=300, ge=1, description="boxes per image or frame, the most probable kept"
    )
    download_deadline_s: float = Field(
        default=600.0, gt=0, description="url= jobs: the whole download, start to end"
    )
    download_min_kbps: float = Field(
        default=16.0, ge=0, description="url= jobs: slower than this over the window fails"
    )
    download_rate_window_s: float = Field(default=20.0, gt=0)
    download_workers: int = Field(
        default=2, ge=1, le=16, description="url= downloads at once (apart from job workers)"
    )


class AccessConfig(BaseModel):
    """Who may reach the API (`access:`); API keys are `api_keys`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_keyless_public: bool = Field(
        default=False,
        description="listen beyond loopback without api_keys (anyone who can connect may "
        "add streams, run jobs and read every result)",
    )
    allowed_origins: list[str] = Field(
        default=[],
        description="web origins (scheme://host[:port]) besides the server's own that may "
        "open WebSockets and post forms",
    )


class MqttConfig(BaseModel):
    """Events to an MQTT broker, with Home Assistant discovery (`mqtt:`; off without a host)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str | None = Field(default=None, description="the broker (none: no MQTT)")
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = Field(default=False, description="TLS to the broker (port 8883 as a rule)")
    ca_file: Path | None = Field(default=None, description="CA bundle (default: the system's)")
    username: str | None = None
    password: str | None = None
    client_id: str | None = Field(
        default=None, max_length=64, description="default: xnoryolo-<host name>"
    )
    topic_prefix: str = Field(default="xnoryolo", pattern=r"^[^#+\s]+$")
    qos: Literal[0, 1, 2] = 0
    retain: bool = Field(default=False, description="retain event messages (state always is)")
    discovery: bool = Field(default=True, description="Home Assistant MQTT discovery")
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[^#+\s]+$")
    classes: list[str] = Field(
        default=["person", "car"], description="per stream: a binary sensor and a count each"
    )
    outbox: int = Field(
        default=1000, ge=1, le=1_000_000, description="events held while the broker is away"
    )
    stats_interval_s: float = Field(default=30.0, gt=0, description="stream counters, retained")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_max_s: int = Field(default=30, ge=1, le=3600)


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="XNORYOLO_", env_nested_delimiter="__", extra="forbid"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    threads: int | None = Field(default=None, ge=1, description="detector threads")
    workers: int = Field(
        default=1, ge=1, le=64, description="inference workers shared by all streams"
    )
    model: ModelSettings = Field(default_factory=ModelSettings)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    max_streams: int = Field(default=32, ge=1, le=1024, description="streams served at once")
    streams: list[StreamConfig] = []
    api_keys: Annotated[list[str], NoDecode] = []
    max_upload_mb: float = Field(default=16.0, gt=0)
    subscriber_queue: int = Field(default=8, ge=1, le=10_000)
    ready_window_s: float = Field(default=10.0, gt=0)
    keepalive_s: float = Field(
        default=10.0, gt=0, description="SSE/JSON stream keep-alive interval"
    )
    data_dir: Path = Field(default=Path("data"), description="job records and results")
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        # Env vars carry either a JSON list or comma-separated keys.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [k.strip() for k in text.split(",")]
        return value

    @field_validator("api_keys")
    @classmethod
    def _no_empty_key(cls, value: list[str]) -> list[str]:
        # "k1,," or "," is a mistake (an unset variable in a template); read as "no keys" it
        # would switch authentication off.
        keys = [k.strip() for k in value]
        if any(not k for k in keys):
            raise ValueError("an API key is empty (check api_keys / XNORYOLO_API_KEYS)")
        return keys


MAX_CONFIG_BYTES = 1 << 20


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = read_small_file(path, MAX_CONFIG_BYTES)
    except UnreadableFile as exc:
        raise ConfigError(f"{path}: {exc}: not a settings file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text: not a YAML settings file") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: binary data: not a YAML settings file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where, problem = "", None
        if isinstance(exc, yaml.MarkedYAMLError):
            if exc.problem_mark is not None:
                where = f"line {exc.problem_mark.line + 1}: "
            problem = exc.problem
        problem = problem or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def load_settings(path: str | Path | None = None, **overrides: Any) -> ServeSettings:
    """Settings from `path` (YAML), the environment and `overrides` (None values ignored)."""
    file_data = _read_yaml(Path(path)) if path else {}
    given = {k: v for k, v in overrides.items() if v is not None}

    class _Settings(ServeSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, InitSettingsSource(settings_cls, file_data))

    try:
        settings = _Settings(**given)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ConfigError(f"{where}{problems}") from None
    except ValueError as exc:  # e.g. an env var that is not valid JSON
        raise ConfigError(str(exc).splitlines()[0]) from None
    return settings
