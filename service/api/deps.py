"""FastAPI dependencies: the engine, the settings, bearer-token checks.

All `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per
dependency per request."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Path, Request

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


def check_token(settings: Settings, authorization: str | None) -> None:
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value()
    scheme, _, token = (authorization or "").partition(" ")
    valid = scheme.lower() == "bearer" and token and expected  # an empty token never matches
    if not valid or not secrets.compare_digest(token.encode(), expected.encode()):
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


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TaskName = Annotated[
    str, Path(pattern=TASK_NAME_PATTERN, description="Task name: lowercase, digits, _ . -")
]
