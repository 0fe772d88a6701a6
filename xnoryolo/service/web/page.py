"""The page and its static files, served by a middleware in front of the API-key check: they
hold nothing of the box (no stream, result or setting), and the page must load to ask for the
key that every call it then makes carries."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PATH = "/ui"

# Everything the page loads comes from this box ('self'), pictures also from data: URLs. A
# page that tried to reach another host is stopped by the browser itself.
CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


async def index(request: Request) -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )


def page_app() -> Starlette:
    """`/` (the page) and `/ui/…` (its scripts and styles)."""
    return Starlette(
        routes=[
            Route("/", index, methods=["GET", "HEAD"]),
            Mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="assets"),
        ]
    )


def _public(path: str) -> bool:
    return path == "/" or path.startswith(ASSETS_PATH + "/")


class PublicPageMiddleware:
    """GET and HEAD of the page and its assets are answered by the page's own app, before
    the API-key check; every other request goes on to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.page = page_app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in ("GET", "HEAD")
            and _public(scope["path"])
        ):
            await self.page(scope, receive, send)
        else:
            await self.app(scope, receive, send)
