"""One place that turns every typed error into its HTTP status and a JSON body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.engine.pool import PoolFullError
from service.errors import QueueFullError, ServiceError, library_error_status

log = logging.getLogger("unipelt.api")


def error_response(status: int, kind: str, detail: str, headers: dict | None = None):
    return JSONResponse({"error": kind, "detail": detail}, status_code=status, headers=headers)


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
    table = library_error_status()

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_input", validation_detail(exc))

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = (
            {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, QueueFullError) else None
        )
        return error_response(exc.status, exc.kind, str(exc), headers)

    @app.exception_handler(PoolFullError)
    async def _pool_full(request: Request, exc: PoolFullError) -> JSONResponse:
        return error_response(429, "overloaded", str(exc), {"Retry-After": "1"})

    for error_type, status, kind in table:

        async def _mapped(
            request: Request, exc: Exception, status: int = status, kind: str = kind
        ) -> JSONResponse:
            if status >= 500:
                log.warning("%s: %s", kind, exc)
            return error_response(status, kind, str(exc))

        app.add_exception_handler(error_type, _mapped)
