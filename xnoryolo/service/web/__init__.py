"""The box's web page: one HTML page at `/` and its scripts and styles under `/ui/`, shipped
in the package (plain ES modules and CSS, nothing fetched from elsewhere). The page calls
the JSON API like any other client."""

from .page import ASSETS_PATH, PublicPageMiddleware, page_app

__all__ = ["ASSETS_PATH", "PublicPageMiddleware", "page_app"]
