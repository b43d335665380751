"""Optimistic Redis transactions (WATCH / MULTI / EXEC) with typed errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from redis.client import Pipeline

from service.store.errors import redis_errors
from service.store.split import TrafficSplit

T = TypeVar("T")


def run_transaction(
    client: redis.Redis, action: str, func: Callable[[Pipeline], T], *watches: str
) -> T:
    """WATCH `watches`, run `func` (reads, then `pipe.multi()` and writes), EXEC; retried
    when a watched key changed in between. Returns what `func` returned."""
    run = cast(Callable[..., Any], client.transaction)  # its stub wants -> None
    with redis_errors(action):
        return cast(T, run(func, *watches, value_from_callable=True))


def generation_of(pipe: Pipeline, key: str) -> int:
    """A generation counter read inside a transaction (0 when never set)."""
    raw = pipe.get(key)
    return 0 if raw is None else int(raw)


def read_split(pipe: Pipeline, key: str) -> TrafficSplit | None:
    """A task's traffic split read inside a transaction (None: no split)."""
    raw = pipe.get(key)
    return None if raw is None else TrafficSplit.from_json(raw)
