"""Who may call the API.

API keys: with keys configured, every route except the health probes needs one, in the
`X-API-Key` header, `Authorization: Bearer`, or the `api_key` query parameter (EventSource
and <img> cannot set headers). The query parameter, however it is spelled (`api%5Fkey`), is
taken out of the request once read, so that neither the routes nor the access log see it.

Origins: a browser tells where a request comes from in `Origin`. A WebSocket handshake and any
request that changes something (POST, PUT, PATCH, DELETE) from a page of another origin than
the server's own (or one in `access.allowed_origins`) is refused with 403: otherwise any web
page a user on the LAN opens could add streams or submit jobs to a keyless box (CSRF)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from urllib.parse import unquote_plus, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Set in scope["state"] for the routes: whether the caller gave a valid key (or none is
# needed), and the key given in the query string (the docs page hands it on).
AUTHENTICATED = "xnoryolo_authenticated"
QUERY_KEY = "xnoryolo_query_key"


def _origin(value: str) -> str | None:
    """scheme://host[:port] of an origin, lower case, default ports dropped; None if bad."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _netloc(origin: str) -> str:
    return origin.split("://", 1)[1]


def _take_query_keys(scope: Scope) -> list[bytes]:
    """The `api_key` values of the query string, removed from it (in place)."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return []
    keys: list[bytes] = []
    kept: list[bytes] = []
    for piece in raw.split(b"&"):
        name, _, value = piece.partition(b"=")
        if unquote_plus(name.decode("latin-1")).strip() == "api_key":
            keys.append(unquote_plus(value.decode("latin-1")).encode("latin-1", "replace"))
        else:
            kept.append(piece)
    if keys:
        scope["query_string"] = b"&".join(kept)
    return keys


class ApiKeyMiddleware:
    def __init__(
        self, app: ASGIApp, keys: Iterable[str], allowed_origins: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys if k]
        self.origins = {o for o in (_origin(x) for x in allowed_origins) if o}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query_keys = _take_query_keys(scope)
        valid = self._valid(scope, query_keys)
        state = scope.setdefault("state", {})
        state[AUTHENTICATED] = valid
        state[QUERY_KEY] = next((k.decode() for k in query_keys if self._known(k)), None)
        if not self._same_origin(scope):
            await self._refuse(scope, send, 403, "requests from other web origins are refused")
        elif valid or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
        else:
            await self._refuse(scope, send, 401, "a valid API key is required")

    def _known(self, key: bytes) -> bool:
        # Constant-time comparison against every key.
        return any(hmac.compare_digest(key, k) for k in self.keys)

    def _valid(self, scope: Scope, query_keys: list[bytes]) -> bool:
        if not self.keys:
            return True
        given = list(query_keys)
        for name, value in scope.get("headers", []):
            if name == b"x-api-key":
                given.append(value.strip())
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                given.append(value[7:].strip())
        return any(self._known(g) for g in given)

    def _same_origin(self, scope: Scope) -> bool:
        if scope["type"] == "http" and scope.get("method") not in UNSAFE_METHODS:
            return True
        headers = dict(scope.get("headers", []))
        given = headers.get(b"origin")
        if given is None:  # not a browser: nothing to forge
            return True
        origin = _origin(given.decode("latin-1"))
        if origin is None:  # "null" (sandboxed pages, file://) or garbage
            return False
        if origin in self.origins:
            return True
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        own = _origin(f"http://{host}")  # the port normalised as in the origin
        return own is not None and _netloc(own) == _netloc(
            _origin(f"http://{_netloc(origin)}") or ""
        )

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accept makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
