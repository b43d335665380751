"""Typed store errors, and the one place Redis client exceptions become them.

HTTP mapping (done by the API's error table, not here): `StoreUnavailableError` -> 503,
`TaskNotFoundError` / `VersionNotFoundError` -> 404, `VersionConflictError` -> 409,
`InvalidArtifactError` / `InvalidTrafficError` -> 422, `CorruptBlobError` -> 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from redis.exceptions import RedisError, WatchError

log = logging.getLogger(__name__)
_last_logged = float("-inf")


class StoreError(Exception):
    """Base class of every adapter-store error."""


class StoreUnavailableError(StoreError):
    """Redis (or the blob backend) is unreachable, timing out, loading or refusing writes."""


class TaskNotFoundError(StoreError):
    def __init__(self, task: str) -> None:
        super().__init__(f"task {task!r} not found")
        self.task = task


class VersionNotFoundError(StoreError):
    def __init__(self, task: str, version: int) -> None:
        super().__init__(f"task {task!r} has no version {version}")
        self.task = task
        self.version = version


class NoEarlierVersionError(VersionNotFoundError):
    """A rollback without a version when the live version is the oldest."""

    def __init__(self, task: str, live: int | None) -> None:
        StoreError.__init__(self, f"task {task!r} has no version before {live}")
        self.task = task
        self.version = live if live is not None else 0


class VersionConflictError(StoreError):
    """The request contradicts the current index (deleting the live version, a lost race)."""


class InvalidArtifactError(StoreError):
    """The bytes handed to `publish` are not a storable artifact (bad name, no JSON manifest)."""


class InvalidTrafficError(StoreError):
    """A traffic split that breaks a rule: weights, version count, or versions not retained."""


class CorruptBlobError(StoreError):
    """Stored bytes are missing or fail their sha256: they are never served."""

    def __init__(self, task: str, version: int, part: str, detail: str) -> None:
        super().__init__(f"task {task!r} version {version}: {part} blob {detail}")
        self.task = task
        self.version = version
        self.part = part


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Re-raise Redis client errors raised while doing `action` as `StoreUnavailableError`.

    Its message names the action and the kind of failure only: the client's own text holds
    the socket path or address (clients must not learn it), so that goes to the log."""
    try:
        yield
    except WatchError:
        raise
    except RedisError as e:
        unavailable(f"adapter store unavailable while {action}: {type(e).__name__}", e)


def unavailable(message: str, cause: BaseException) -> NoReturn:
    """Raise StoreUnavailableError(message); the cause, with its paths, goes to the log
    (at most once a second, an outage fails many calls)."""
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= 1.0:
        _last_logged = now
        log.warning("%s (%s)", message, cause)
    raise StoreUnavailableError(message) from cause
