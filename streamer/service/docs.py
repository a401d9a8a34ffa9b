"""``GET /docs`` (Swagger UI) and ``GET /openapi.json``: the API described by itself.

Swagger UI normally comes from a CDN; here its script and stylesheet are served by the
service from the installed ``fastapi-offline`` package (a copy of swagger-ui-dist), and
its online validator is off, so the page fetches nothing from the internet: it works on
a machine without one and tells no third party that someone reads the docs.

Both paths sit behind the API token like every route but ``/healthz``. A browser cannot
add ``Authorization: Bearer`` to a page it navigates to, so a 401 on these paths asks
for HTTP Basic credentials (:data:`BASIC_CHALLENGE_PATHS`): the browser's own login
prompt, any user name, the token as the password (``streamer.service.auth.token_ok``
accepts it); the browser then sends it with the assets and with "Try it out" too. The
OpenAPI document declares the bearer scheme, so Swagger UI's "Authorize" takes the
token as well.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from streamer.service.errors import ApiError

DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"
ASSETS_PATH = "/docs/assets"
BASIC_CHALLENGE_PATHS = (DOCS_PATH, OPENAPI_PATH)

# what the page loads, and nothing else is served from the package's folder
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}


def asks_for_basic(path: str) -> bool:
    """Whether a 401 on ``path`` should ask a browser for credentials (the docs pages)."""
    return path in BASIC_CHALLENGE_PATHS or path.startswith(ASSETS_PATH + "/")


def _asset_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def add_docs(api: FastAPI, open_paths: tuple[str, ...] = ()) -> None:
    """Add ``/docs`` and its assets to ``api`` (made with ``openapi_url=OPENAPI_PATH``
    and FastAPI's own CDN pages off), and the bearer scheme to its OpenAPI document,
    required everywhere but on ``open_paths``."""

    @api.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_PATH, title=f"{api.title} API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None,
            # no badge fetched from validator.swagger.io; "Try it out" sends the browser's credentials
            swagger_ui_parameters={"validatorUrl": None, "withCredentials": True, "persistAuthorization": False},
        )

    @api.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> FileResponse:
        if name not in _ASSETS:
            raise ApiError(404, "not_found", f"no docs asset {name!r}")
        return FileResponse(_asset_dir() / name, media_type=_ASSETS[name],
                            headers={"Cache-Control": "private, max-age=86400"})

    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http", "scheme": "bearer",
                "description": "FACESTREAM_API_TOKEN or service.api_token_file; not needed when the service has none"}
            schema["security"] = [{"bearer": []}]
            for path in open_paths:
                for operation in schema.get("paths", {}).get(path, {}).values():
                    operation["security"] = []
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
