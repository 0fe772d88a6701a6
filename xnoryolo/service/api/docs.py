"""The interactive API docs (`/docs`, Swagger UI). With API keys the page is opened as
`/docs?api_key=KEY`; it fetches `/openapi.json` with that same key, which the browser could not
otherwise send."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from .auth import QUERY_KEY

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    # Only a key that matched one of the configured keys is handed on, percent-encoded, so
    # nothing the client wrote reaches the page as markup or script.
    key = request.scope.get("state", {}).get(QUERY_KEY)
    openapi = request.app.openapi_url or "/openapi.json"
    if key:
        openapi += f"?api_key={quote(key, safe='')}"
    return get_swagger_ui_html(openapi_url=openapi, title=f"{request.app.title} - API docs")


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
