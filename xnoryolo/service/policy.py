"""The source policy: what an API client may make the service open (stream sources and the
URLs of video jobs). Streams declared in the operator's settings file are trusted and never
checked here.

- schemes: rtsp, rtsps, http, https (as configured); FFmpeg's other protocols never;
- hosts: every address the name resolves to must be outside the denied networks (and inside
  the allowed ones, where given); resolution is time-bounded and done here, once per check,
  with IPv4-mapped and NAT64 IPv6 forms checked as the IPv4 address they carry;
- local files: only regular files under `media_roots` (after resolving symlinks), never
  under `data_dir` (other jobs' uploads and results);
- devices: only those listed.

Refusals are `SourceRefused` with a message fit for an API client: it names the rule, never
an internal address or path the client did not give."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .redact import AmbiguousCredentials, split_credentials
from .settings import ServeSettings, SourcesConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to; raises OSError (socket.gaierror) when none.
Resolver = Callable[[str, int], Sequence[str]]

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class SourceRefused(ValueError):
    """The policy does not allow this source; the message is safe to show the client."""


class HostNotFound(LookupError):
    """The host name did not resolve (in time); the message names the host only."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _forms(addr: Address) -> list[Address]:
    """The address and the IPv4 address it carries (IPv4-mapped or NAT64 IPv6), if any."""
    forms: list[Address] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            forms.append(addr.ipv4_mapped)
        elif addr in _NAT64:
            forms.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return forms


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class NetworkPolicy:
    """Which addresses may be contacted: none in `deny`; all in `allow` when it is given."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = field(default_factory=lambda: _networks(_default_deny()))
    resolve_timeout_s: float = 5.0
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: SourcesConfig, resolver: Resolver | None = None) -> NetworkPolicy:
        return cls(
            _networks(config.allow_networks),
            _networks(config.deny_networks),
            config.resolve_timeout_s,
            resolver or system_resolver,
        )

    def check_address(self, address: str, shown: str = "the address") -> None:
        """SourceRefused unless `address` may be contacted; `shown` names it in the message
        (a resolved address of an internal name is not the client's business)."""
        try:
            addr = ipaddress.ip_address(address.split("%", 1)[0])  # no IPv6 zone id
        except ValueError:
            raise SourceRefused(f"{shown} is not an IP address") from None
        forms = _forms(addr)
        if any(f in net for f in forms for net in self.deny if net.version == f.version):
            raise SourceRefused(f"the source policy denies {shown} (sources.deny_networks)")
        if self.allow and not any(
            f in net for f in forms for net in self.allow if net.version == f.version
        ):
            raise SourceRefused(
                f"{shown} is outside the networks the source policy allows (sources.allow_networks)"
            )

    def check_host(self, host: str, port: int) -> tuple[str, ...]:
        """Every address `host` resolves to, each checked: SourceRefused if any is not allowed,
        HostNotFound if none came within the resolve timeout."""
        host = host.strip("[]")
        try:
            addresses: Sequence[str] = [str(ipaddress.ip_address(host.split("%", 1)[0]))]
            shown = f"the address {host}"
        except ValueError:
            addresses = self._resolve(host, port)
            shown = f"an address of {host}"
        if not addresses:
            raise HostNotFound(f"unknown host {host}")
        for address in addresses:
            self.check_address(address, shown)
        return tuple(addresses)

    def _resolve(self, host: str, port: int) -> Sequence[str]:
        # getaddrinfo cannot be interrupted: it runs on its own thread, abandoned at the
        # deadline (it ends by itself when the system resolver gives up).
        result: list[Sequence[str]] = []
        failed: list[BaseException] = []

        def work() -> None:
            try:
                result.append(self.resolver(host, port))
            except Exception as exc:  # any failure means "not found"
                failed.append(exc)

        thread = threading.Thread(target=work, name=f"resolve-{host[:40]}", daemon=True)
        thread.start()
        thread.join(self.resolve_timeout_s)
        if not result:
            why = "did not resolve" if failed else f"no answer in {self.resolve_timeout_s:g} s"
            raise HostNotFound(f"unknown host {host} ({why})")
        return result[0]

    def check_url(self, url: str, schemes: Iterable[str] = ("http", "https")) -> str:
        """`url` checked (scheme, parsable credentials, every address of its host): answers
        its host, SourceRefused / HostNotFound otherwise."""
        try:
            bare, _ = split_credentials(url)
        except AmbiguousCredentials as exc:
            raise SourceRefused(str(exc)) from None
        parts = urlsplit(bare)
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            allowed = ", ".join(f"{s}://" for s in schemes)
            raise SourceRefused(f"the source policy allows only {allowed} URLs")
        host = parts.hostname
        if not host:
            raise SourceRefused("the URL names no host")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise SourceRefused("the URL's port is not a number from 0 to 65535") from None
        self.check_host(host, port)
        return host


def redirect_refusal(exc: SourceRefused | HostNotFound) -> str:
    """Why a redirect was not followed, without the target a server named (it may be an
    internal host the client has no business learning about)."""
    if isinstance(exc, HostNotFound):
        return "redirected to a host that does not resolve"
    return "redirected to a URL the source policy does not allow"


def _default_deny() -> list[str]:
    return list(SourcesConfig().deny_networks)


def check_url(policy: NetworkPolicy, url: str) -> str:
    """The http(s) `url` of a video job checked against `policy` (also each redirect's
    target): answers its host; SourceRefused or HostNotFound otherwise."""
    return policy.check_url(url, ("http", "https"))


class CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, each followed only to an http(s) URL `policy` allows
    (SourceRefused or HostNotFound from the opener otherwise)."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_url(self.policy, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True)
class SourcePolicy:
    """What `POST /v1/streams` may open."""

    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    schemes: frozenset[str] = frozenset(("rtsp", "rtsps", "http", "https"))
    media_roots: tuple[Path, ...] = ()
    forbidden_roots: tuple[Path, ...] = ()
    devices: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls, settings: ServeSettings, resolver: Resolver | None = None
    ) -> SourcePolicy:
        config = settings.sources
        return cls(
            NetworkPolicy.from_config(config, resolver),
            frozenset(config.schemes),
            tuple(Path(os.path.realpath(r)) for r in config.media_roots),
            (Path(os.path.realpath(settings.data_dir)),),
            frozenset(config.devices),
        )

    def check_network(self, url: str) -> str:
        return self.network.check_url(url, sorted(self.schemes))

    def check_device(self, device: str) -> None:
        if device not in self.devices:
            raise SourceRefused(
                "the source policy does not allow this device (sources.devices lists those "
                "the API may open)"
            )

    def check_file(self, path: str | Path) -> Path:
        """The real path of `path` (symlinks resolved) if a client may open it."""
        if not self.media_roots:
            raise SourceRefused(
                "the source policy allows no local files (sources.media_roots names the "
                "folders the API may open)"
            )
        real = Path(os.path.realpath(path))
        if any(_is_under(real, root) for root in self.forbidden_roots) or not any(
            _is_under(real, root) for root in self.media_roots
        ):
            raise SourceRefused("the file is outside the media folders the source policy allows")
        return real
