"""Typed service errors and the one table that maps every error to an HTTP status.

Errors are raised deep down (library, store, pool, engine) and carry no HTTP knowledge;
`ERROR_TABLE` gives each type its status and error kind, and the API's handlers and
middlewares render every one of them as ``{"error": kind, "detail": message}``. A subclass
not in the table takes its nearest listed base class; anything else is a 500 ``internal``.
This module imports no web framework and nothing of the engine: every layer may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.errors import ArtifactError, BackboneMismatchError, ConfigError
from service.store.errors import (
    CorruptBlobError,
    InvalidArtifactError,
    InvalidTrafficError,
    StoreUnavailableError,
    TaskNotFoundError,
    VersionConflictError,
    VersionNotFoundError,
)


class ServiceError(Exception):
    """Base of errors the service itself raises."""


class UnauthorizedError(ServiceError):
    """Missing or wrong bearer token."""


class UnknownTaskError(ServiceError):
    """No adapter is uploaded for the task."""


class InvalidInputError(ServiceError):
    """A predict request the schema accepts but the service cannot serve."""


class InputTooLongError(ServiceError):
    """An input over the token limit (with truncation off)."""


class InvalidAdapterError(ServiceError):
    """An upload that parses but fails a server check (limits, canary)."""


class AdapterTooLargeError(ServiceError):
    """An upload body over UNIPELT_MAX_UPLOAD_BYTES."""


class RequestTooLargeError(ServiceError):
    """Any other request body over its limit."""


class QueueFullError(ServiceError):
    """The batcher's queue is full."""


class PoolFullError(ServiceError):
    """Every adapter slot is pinned by in-flight requests."""


class NonFiniteOutputError(ServiceError):
    """The adapter gave NaN or Inf for an input: a faulty adapter, never a 200."""


class NotReadyError(ServiceError):
    """The engine is still starting."""


class ShuttingDownError(ServiceError):
    """The service is draining for shutdown."""


class ForwardUnavailableError(ServiceError):
    """The forward process stopped while running a batch (a new one is starting)."""


@dataclass(frozen=True)
class ErrorStatus:
    status: int
    kind: str
    headers: dict[str, str] = field(default_factory=dict)


RETRY = {"Retry-After": "1"}

ERROR_TABLE: dict[type[Exception], ErrorStatus] = {
    UnauthorizedError: ErrorStatus(401, "unauthorized", {"WWW-Authenticate": "Bearer"}),
    UnknownTaskError: ErrorStatus(404, "unknown_task"),
    TaskNotFoundError: ErrorStatus(404, "unknown_task"),
    VersionNotFoundError: ErrorStatus(404, "unknown_version"),
    VersionConflictError: ErrorStatus(409, "version_conflict"),
    AdapterTooLargeError: ErrorStatus(413, "adapter_too_large"),
    RequestTooLargeError: ErrorStatus(413, "request_too_large"),
    InvalidInputError: ErrorStatus(422, "invalid_input"),
    InputTooLongError: ErrorStatus(422, "input_too_long"),
    InvalidAdapterError: ErrorStatus(422, "invalid_adapter"),
    InvalidArtifactError: ErrorStatus(422, "invalid_adapter"),
    InvalidTrafficError: ErrorStatus(422, "invalid_traffic"),
    ArtifactError: ErrorStatus(422, "invalid_adapter"),
    ConfigError: ErrorStatus(422, "invalid_adapter"),
    BackboneMismatchError: ErrorStatus(422, "backbone_mismatch"),
    QueueFullError: ErrorStatus(429, "overloaded", RETRY),
    PoolFullError: ErrorStatus(429, "overloaded", RETRY),
    # Stored bytes that fail their checksum: the service's own data is damaged (not a
    # gateway's fault, and retrying does not help), so 500, not 502 or 503.
    CorruptBlobError: ErrorStatus(500, "corrupt_adapter"),
    NonFiniteOutputError: ErrorStatus(500, "non_finite_output"),
    StoreUnavailableError: ErrorStatus(503, "store_unavailable"),
    NotReadyError: ErrorStatus(503, "not_ready"),
    ShuttingDownError: ErrorStatus(503, "shutting_down"),
    ForwardUnavailableError: ErrorStatus(503, "forward_unavailable", RETRY),
}
INTERNAL = ErrorStatus(500, "internal")

# Errors the HTTP layer raises with a status of its own (routing, body parsing).
HTTP_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def status_of(exc: BaseException) -> ErrorStatus:
    """The table entry of `exc`'s type or its nearest listed base class."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return INTERNAL


def http_status(status: int, headers: Mapping[str, str] | None = None) -> ErrorStatus:
    """An HTTP-layer error (a route not found, a body that does not parse)."""
    return ErrorStatus(status, HTTP_KINDS.get(status, "http_error"), dict(headers or {}))
