"""Typed service errors and the one table that maps every error to an HTTP status."""

from __future__ import annotations

from adapters.errors import ArtifactError, BackboneMismatchError, ConfigError


class ServiceError(Exception):
    """Base of errors the API turns into a JSON error response."""

    status = 500
    kind = "internal"


class UnknownTaskError(ServiceError):
    status, kind = 404, "unknown_task"


class UnknownVersionError(ServiceError):
    status, kind = 404, "unknown_version"


class InvalidInputError(ServiceError):
    status, kind = 422, "invalid_input"


class InputTooLongError(ServiceError):
    status, kind = 422, "input_too_long"


class InvalidAdapterError(ServiceError):
    status, kind = 422, "invalid_adapter"


class AdapterTooLargeError(ServiceError):
    status, kind = 413, "adapter_too_large"


class QueueFullError(ServiceError):
    status, kind = 429, "overloaded"
    retry_after_s = 1


class StoreUnavailableServiceError(ServiceError):
    status, kind = 503, "store_unavailable"


class NotReadyError(ServiceError):
    status, kind = 503, "not_ready"


class UnauthorizedError(ServiceError):
    status, kind = 401, "unauthorized"


class NonFiniteOutputError(ServiceError):
    """The adapter gave NaN or Inf for an input: a faulty adapter, never a 200."""

    status, kind = 500, "non_finite_output"


class ShuttingDownError(ServiceError):
    status, kind = 503, "shutting_down"


# Library and store errors, mapped by type (checked in order; first match wins).
def library_error_status() -> list[tuple[type[Exception], int, str]]:
    from service.store.errors import (
        CorruptBlobError,
        InvalidArtifactError,
        StoreUnavailableError,
        TaskNotFoundError,
        VersionConflictError,
        VersionNotFoundError,
    )

    return [
        (BackboneMismatchError, 422, "backbone_mismatch"),
        (ArtifactError, 422, "invalid_adapter"),
        (ConfigError, 422, "invalid_adapter"),
        (TaskNotFoundError, 404, "unknown_task"),
        (VersionNotFoundError, 404, "unknown_version"),
        (InvalidArtifactError, 422, "invalid_adapter"),
        (VersionConflictError, 409, "version_conflict"),
        (CorruptBlobError, 502, "corrupt_adapter"),
        (StoreUnavailableError, 503, "store_unavailable"),
    ]
