"""Config fields a method declares: name, default and a check that names the wrong value."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Field:
    """A config field: name, default, and a check that returns what is wrong (or None)."""

    name: str
    default: Any
    check: Callable[[Any], str | None]


def flag(name: str, default: bool) -> Field:
    def check(v: Any) -> str | None:
        return None if isinstance(v, bool) else f"{name} must be true or false, got {v!r}"

    return Field(name, default, check)


def positive_int(name: str, default: int, most: int) -> Field:
    def check(v: Any) -> str | None:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            return f"{name} must be a positive integer, got {v!r}"
        return f"{name}={v} is too large (at most {most})" if v > most else None

    return Field(name, default, check)


def positive_number(name: str, default: float) -> Field:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        return None if ok else f"{name} must be a positive number, got {v!r}"

    return Field(name, default, check)


def choice(name: str, default: str, choices: Sequence[str]) -> Field:
    def check(v: Any) -> str | None:
        return None if v in choices else f"{name} must be one of {tuple(choices)}, got {v!r}"

    return Field(name, default, check)
