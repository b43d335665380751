"""The one handler that renders every error through the table in `service/errors.py`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import (
    ERROR_TABLE,
    INTERNAL,
    ErrorStatus,
    InvalidInputError,
    http_status,
    status_of,
)

log = logging.getLogger("unipelt.api")


V2_PREFIX = "/v2"  # the Open Inference Protocol's routes answer in its own error shape


def error_response(entry: ErrorStatus, detail: str, path: str = "") -> JSONResponse:
    if path == V2_PREFIX or path.startswith(f"{V2_PREFIX}/"):
        return protocol_error(entry, detail)
    body = {"error": entry.kind, "detail": _printable(detail)}
    return JSONResponse(body, status_code=entry.status, headers=entry.headers or None)


def protocol_error(entry: ErrorStatus, detail: str) -> JSONResponse:
    """The Open Inference Protocol's error body: {"error": "<kind>: <detail>"}."""
    body = {"error": f"{entry.kind}: {_printable(detail)}"}
    return JSONResponse(body, status_code=entry.status, headers=entry.headers or None)


def response_for(exc: Exception, path: str = "") -> JSONResponse:
    """The JSON error response of any exception (also used by the ASGI middlewares), in the
    protocol's shape under /v2."""
    if isinstance(exc, StarletteHTTPException):
        return error_response(http_status(exc.status_code, exc.headers), str(exc.detail), path)
    if isinstance(exc, RequestValidationError):  # FastAPI's own schema check of a request
        return error_response(ERROR_TABLE[InvalidInputError], validation_detail(exc), path)
    entry = status_of(exc)
    if entry is INTERNAL:  # never echo an unexpected exception's text
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return error_response(entry, "internal server error", path)
    if entry.status >= 500:
        log.warning("%s: %s", entry.kind, exc)
    return error_response(entry, str(exc), path)


def _printable(value: object) -> str:
    """Text that encodes as UTF-8 whatever it came from (a lone surrogate becomes an escape)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def validation_detail(exc: RequestValidationError) -> str:
    """`loc: msg` per problem. Never the rejected input: FastAPI's default handler echoes it,
    and NaN, Infinity or a lone surrogate in it made rendering the 422 itself fail (a 500)."""
    return short_errors(exc.errors())


def short_errors(errors: Sequence[Any]) -> str:
    """`loc: msg` per validation problem, on one line, without the input."""
    return "; ".join(
        ".".join(_printable(p) for p in error.get("loc", ())) + ": " + _printable(error["msg"])
        for error in errors
    )


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return response_for(exc, request.url.path)

    for error_type in (*ERROR_TABLE, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(error_type, handle)
