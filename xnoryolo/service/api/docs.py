"""The interactive API docs (`/docs`, Swagger UI). With API keys the page is opened as
`/docs?api_key=KEY`; it fetches `/openapi.json` with that same key, which the browser could not
otherwise send."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
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
