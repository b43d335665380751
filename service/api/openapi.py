"""The OpenAPI document: the routes' own schema, completed with every error each operation can
answer (an example body per error kind, statuses from the one error table), the bearer scheme,
request and response examples, and the Open Inference Protocol's bodies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from service.api.deps import require_read, require_write
from service.api.openapi_errors import KIND_STATUS, DocumentedError, errors_of
from service.api.openapi_examples import EXAMPLES, INFER_BODY, INFER_HEADER, PROTOCOL_SCHEMAS

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
PROTOCOL_REF = {"$ref": "#/components/schemas/ProtocolErrorOut"}
BEARER = "bearer"
NOT_READY = {
    "description": "Not ready (backbone loading or store unreachable)",
    "content": {"application/json": {"example": {"ready": False}}},
}
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
}


def install_openapi(app: FastAPI, routes: Iterable[BaseRoute]) -> None:
    """Serve the completed document at the app's openapi_url (built once, on first use);
    `routes` are the API's routes, for which of them need the token."""
    access = _access(routes)

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(app, access)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def complete_document(app: FastAPI, access: dict[tuple[str, str], str]) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema["info"]["description"] = f"{app.description}\n\n{_error_table()}"
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(PROTOCOL_SCHEMAS)
    schemas["ErrorOut"]["properties"]["error"]["enum"] = sorted(KIND_STATUS)
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "UNIPELT_API_TOKEN: writes need it; reads too with "
            "UNIPELT_PROTECT_READS=true",
        }
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            _drop_authorization_parameter(operation)
            _document_errors(operation, errors_of(*key))
            _add_examples(operation, key)
            if key in access:
                write = access[key] == "write"
                operation["security"] = [{BEARER: []}] if write else [{}, {BEARER: []}]
    schema["paths"]["/v2/health/ready"]["get"]["responses"]["503"] = NOT_READY
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def _error_table() -> str:
    """Every status with its error kinds, as a markdown table."""
    by_status: dict[int, list[str]] = {}
    kinds = {**KIND_STATUS, "invalid_request": 400}
    for kind, status in sorted(kinds.items(), key=lambda item: item[1]):
        shown = f"`{kind}` (/v2)" if kind == "invalid_request" else f"`{kind}`"
        by_status.setdefault(status, []).append(shown)
    rows = [f"| {status} | {', '.join(kinds)} |" for status, kinds in by_status.items()]
    return "\n".join(["| status | error kinds |", "|---|---|", *rows])


def _access(routes: Iterable[BaseRoute]) -> dict[tuple[str, str], str]:
    """(method, path) -> "write" or "read", for routes that declare a token dependency."""
    out = {}
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        calls = {d.call for d in route.dependant.dependencies}
        level = "write" if require_write in calls else "read" if require_read in calls else None
        for method in route.methods or ():
            if level:
                out[(method, route.path_format)] = level
    return out


def _drop_authorization_parameter(operation: dict[str, Any]) -> None:
    """The token dependencies' `authorization` header: the bearer scheme documents it (and
    OpenAPI ignores a header parameter named Authorization)."""
    kept = [
        p
        for p in operation.get("parameters", [])
        if not (p.get("in") == "header" and p.get("name", "").lower() == "authorization")
    ]
    if kept:
        operation["parameters"] = kept
    else:
        operation.pop("parameters", None)


def _document_errors(operation: dict[str, Any], errors: dict[int, list[DocumentedError]]) -> None:
    responses = operation.setdefault("responses", {})
    if responses.get("422", {}).get("description") == "Validation Error":
        del responses["422"]  # FastAPI's default; the table below says when a 422 can come
    for status, listed in errors.items():
        old = responses.get(str(status), {})
        kinds = ", ".join(dict.fromkeys(e.kind for e in listed))
        described = f"{old['description']}. Kinds: {kinds}" if old.get("description") else kinds
        entry: dict[str, Any] = {
            "description": described,
            "content": {
                "application/json": {
                    "schema": _error_schema(listed),
                    "examples": {e.name: {"summary": e.kind, "value": e.body()} for e in listed},
                }
            },
        }
        if status in HEADERS:
            entry["headers"] = HEADERS[status]
        responses[str(status)] = entry


def _error_schema(listed: list[DocumentedError]) -> dict[str, Any]:
    shapes = {e.protocol for e in listed}
    if shapes == {True, False}:
        return {"oneOf": [ERROR_REF, PROTOCOL_REF]}
    return PROTOCOL_REF if True in shapes else ERROR_REF


def _add_examples(operation: dict[str, Any], key: tuple[str, str]) -> None:
    if key[1].endswith("/infer"):
        operation["requestBody"] = INFER_BODY
        operation.setdefault("parameters", []).append(INFER_HEADER)
        operation["responses"]["200"]["content"] = {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferResponse"}}
        }
    if key not in EXAMPLES:
        return
    request, response = EXAMPLES[key]
    if request is not None:
        for media in operation["requestBody"]["content"].values():
            media.setdefault("examples", request)
            break
    for status in ("200", "201"):
        if status in operation["responses"]:
            content = operation["responses"][status].setdefault("content", {})
            content.setdefault("application/json", {})["examples"] = response
