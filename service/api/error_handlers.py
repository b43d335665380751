"""The one handler that renders every error through the table in `service/errors.py`."""

from __future__ import annotations

import logging

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


def error_response(entry: ErrorStatus, detail: str) -> JSONResponse:
    body = {"error": entry.kind, "detail": _printable(detail)}
    return JSONResponse(body, status_code=entry.status, headers=entry.headers or None)


def response_for(exc: Exception) -> JSONResponse:
    """The JSON error response of any exception (also used by the ASGI middlewares)."""
    if isinstance(exc, StarletteHTTPException):
        return error_response(http_status(exc.status_code, exc.headers), str(exc.detail))
    if isinstance(exc, RequestValidationError):  # FastAPI's own schema check of a request
        return error_response(ERROR_TABLE[InvalidInputError], validation_detail(exc))
    entry = status_of(exc)
    if entry is INTERNAL:  # never echo an unexpected exception's text
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return error_response(entry, "internal server error")
    if entry.status >= 500:
        log.warning("%s: %s", entry.kind, exc)
    return error_response(entry, str(exc))


def _printable(value: object) -> str:
    """Text that encodes as UTF-8 whatever it came from (a lone surrogate becomes an escape)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def validation_detail(exc: RequestValidationError) -> str:
    """`loc: msg` per problem. Never the rejected input: FastAPI's default handler echoes it,
    and NaN, Infinity or a lone surrogate in it made rendering the 422 itself fail (a 500)."""
    return "; ".join(
        ".".join(_printable(p) for p in error.get("loc", ())) + ": " + _printable(error["msg"])
        for error in exc.errors()
    )


def install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return response_for(exc)

    for error_type in (*ERROR_TABLE, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(error_type, handle)
