"""Pages a person opens: the API docs (Swagger UI at /docs, ReDoc at /redoc) and the operator
console (/console).

The docs' scripts and styles come from the `fastapi-offline` package (Swagger UI and ReDoc
bundles) and the console is static files in `service/static/console`; both are served by the
app itself, and a Content-Security-Policy keeps every page to its own origin.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
CONSOLE_FILES = Path(__file__).resolve().parents[1] / "static" / "console"
ASSETS_URL = "/static/docs"
CONSOLE_URL = "/console"

# The docs pages start their bundles from a short inline script; the console has none.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; font-src 'self' data:"
)
CONSOLE_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

router = APIRouter(include_in_schema=False)


def _own_origin(page: HTMLResponse, policy: str) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = policy
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=None,
        # No validator badge: it would load an image from the public validator.
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False},
    )
    return _own_origin(page, DOCS_POLICY)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
    return _own_origin(page, DOCS_POLICY)


@router.get(CONSOLE_URL)
async def console_root(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{request.scope.get('root_path', '')}{CONSOLE_URL}/")


class ConsoleFiles(StaticFiles):
    """The console's files, each answered with the console's Content-Security-Policy."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Content-Security-Policy"] = CONSOLE_POLICY
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_pages(app: FastAPI) -> None:
    """The docs and console routes and their static files (FastAPI's own CDN-based docs
    pages must be off: `FastAPI(docs_url=None, redoc_url=None)`)."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount(CONSOLE_URL, ConsoleFiles(directory=CONSOLE_FILES, html=True), name="console")
