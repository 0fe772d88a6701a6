"""The interactive API docs (`/docs`, Swagger UI), its script and styles served from this box
(the `fastapi-offline` package ships them), so the page works on a box with no Internet. There
is no ReDoc page: ReDoc always loads its logo from its CDN. With API keys the page is opened as
`/docs?api_key=KEY`; it fetches `/openapi.json` and its assets with that same key, which the
browser could not otherwise send."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastapi_offline
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse

from .auth import QUERY_KEY

router = APIRouter(include_in_schema=False)

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
# Only these files are served: the package directory holds its Python modules as well.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def _with_key(request: Request, url: str) -> str:
    # Only a key that matched one of the configured keys is handed on, percent-encoded, so
    # nothing the client wrote reaches the page as markup or script.
    key = request.scope.get("state", {}).get(QUERY_KEY)
    return f"{url}?api_key={quote(key, safe='')}" if key else url


def _openapi(request: Request) -> str:
    return _with_key(request, request.app.openapi_url or "/openapi.json")


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_openapi(request),
        title=f"{request.app.title} - API docs",
        swagger_js_url=_with_key(request, "/docs/assets/swagger-ui-bundle.js"),
        swagger_css_url=_with_key(request, "/docs/assets/swagger-ui.css"),
        swagger_favicon_url=_with_key(request, "/docs/assets/favicon.png"),
        # Swagger UI would otherwise send the document to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, "no such asset")
    return FileResponse(
        ASSETS_DIR / name, media_type=media_type, headers={"Cache-Control": "max-age=86400"}
    )


def declare_api_key(app: FastAPI) -> None:
    """Declare the API key in the OpenAPI document, so that the docs page's "Authorize"
    button sends it with each "Try it out" request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            }
            schema["security"] = [{"ApiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
