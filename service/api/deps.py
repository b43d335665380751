"""FastAPI dependencies: the engine, the settings, bearer-token checks.

All `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per
dependency per request."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from pydantic import SecretStr

from adapters.constants import TASK_NAME_PATTERN
from service.engine.engine import Engine
from service.errors import NotReadyError, UnauthorizedError
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise NotReadyError("the engine is still starting")
    return engine


def check_token(
    settings: Settings, authorization: str | None, also: SecretStr | None = None
) -> None:
    """The API token (or `also`) must be the bearer token; nothing to check without a token."""
    tokens = [t.get_secret_value() for t in (settings.api_token, also) if t is not None]
    if not tokens:
        return
    scheme, _, given = (authorization or "").partition(" ")
    bearer = scheme.lower() == "bearer" and given
    # compare_digest with every token, so the time does not tell which one nearly matched
    matches = [bool(t) and secrets.compare_digest(given.encode(), t.encode()) for t in tokens]
    if not bearer or not any(matches):  # an empty configured token never matches
        raise UnauthorizedError("a valid bearer token is required (Authorization: Bearer ...)")


async def require_write(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    check_token(settings, authorization)


async def require_read(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    if settings.protect_reads:
        check_token(settings, authorization)


async def require_metrics(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """/metrics names tasks: it needs a token when reads are protected or a metrics token is
    set (which opens /metrics and nothing else)."""
    if settings.protect_reads or settings.metrics_token is not None:
        check_token(settings, authorization, also=settings.metrics_token)


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StickyHeader = Annotated[
    str | None,
    Header(
        alias="X-Sticky-Key",
        max_length=256,
        description="Hashed onto a traffic split: one key, one version (while the split stands)",
    ),
]
TaskName = Annotated[
    str, Path(pattern=TASK_NAME_PATTERN, description="Task name: lowercase, digits, _ . -")
]
