"""``/docs`` (Swagger UI) and ``/redoc`` served without a network: their JavaScript and CSS come from the
``fastapi-offline`` wheel installed with aarlab, not from a CDN (FastAPI's default pages load them from
jsDelivr and are blank offline)."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

#: Asset name -> media type; only these files are served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
PREFIX = "/docs/assets"
#: The docs pages may load nothing from anywhere but this server (ReDoc's bundle would otherwise fetch
#: a logo from its CDN); their own small inline start-up scripts and styles are allowed.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def asset_bytes(name: str) -> bytes:
    """One bundled asset's bytes. Raises ``KeyError`` for a name not in :data:`ASSETS`."""
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files("fastapi_offline").joinpath("static", name).read_bytes()


def add_offline_docs(app: FastAPI) -> None:
    """Mount ``/docs``, ``/redoc`` and their assets on an app created with ``docs_url=None`` and
    ``redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} · API"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=title,
                swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
                swagger_css_url=f"{PREFIX}/swagger-ui.css",
                swagger_favicon_url=f"{PREFIX}/favicon.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=title,
                redoc_js_url=f"{PREFIX}/redoc.standalone.js",
                redoc_favicon_url=f"{PREFIX}/favicon.png",
                with_google_fonts=False,
            )
        )

    @app.get(PREFIX + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        try:
            body = asset_bytes(name)
        except KeyError:
            raise HTTPException(404, f"no docs asset {name!r}; available: {', '.join(ASSETS)}") from None
        return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "max-age=86400"})
