"""A task's traffic split: weights in percent per version, validated on construction.

A split routes each unpinned request to one of its versions with the probability of its
weight; weights are non-negative integers that sum to 100, over 1 to `MAX_SPLIT_VERSIONS`
versions. `version_at(bucket)` maps a bucket in [0, 100) onto the versions in ascending order,
so raising the newest version's weight only moves buckets onto it (a sticky user on the canary
stays there while it ramps up).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.store.errors import InvalidTrafficError

MAX_SPLIT_VERSIONS = 4
PERCENT = 100


@dataclass(frozen=True)
class TrafficSplit:
    """(version, weight) pairs in ascending version order; weights sum to 100."""

    weights: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        count = len(self.weights)
        if not 1 <= count <= MAX_SPLIT_VERSIONS:
            raise InvalidTrafficError(
                f"a split names 1 to {MAX_SPLIT_VERSIONS} versions, got {count}"
            )
        versions = [v for v, _ in self.weights]
        if versions != sorted(set(versions)):
            raise InvalidTrafficError(f"split versions must be distinct, got {versions}")
        for version, weight in self.weights:
            if not _is_int(version) or version < 1:
                raise InvalidTrafficError(f"version {version!r} is not a positive integer")
            if not _is_int(weight) or not 0 <= weight <= PERCENT:
                raise InvalidTrafficError(
                    f"weight of version {version} must be an integer from 0 to {PERCENT}, "
                    f"got {weight!r}"
                )
        total = sum(w for _, w in self.weights)
        if total != PERCENT:
            raise InvalidTrafficError(f"weights sum to {total}, not {PERCENT}")

    @classmethod
    def parse(cls, raw: Any) -> TrafficSplit:
        """From a mapping of version (a number or its decimal string) to weight."""
        if not isinstance(raw, Mapping):
            raise InvalidTrafficError(f"a split is an object of version: weight, got {raw!r}")
        pairs = [(_version(key), weight) for key, weight in raw.items()]
        versions = [v for v, _ in pairs]
        if len(set(versions)) != len(versions):
            raise InvalidTrafficError(f"a version is named twice in {dict(raw)!r}")
        return cls(tuple(sorted(pairs)))

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(v for v, _ in self.weights)

    def as_dict(self) -> dict[str, int]:
        return {str(v): w for v, w in self.weights}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> TrafficSplit:
        return cls.parse(json.loads(raw))

    def version_at(self, bucket: int) -> int:
        """The version that owns `bucket` (0..99): cumulative weights in version order."""
        if not 0 <= bucket < PERCENT:
            raise ValueError(f"bucket {bucket} is outside [0, {PERCENT})")
        upper = 0
        for version, weight in self.weights:
            upper += weight
            if bucket < upper:
                return version
        raise AssertionError("weights sum to 100, so every bucket has a version")

    def describe(self) -> str:
        return " ".join(f"{v}={w}" for v, w in self.weights)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _version(key: Any) -> int:
    if _is_int(key):
        return key
    if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 18:
        return int(key)
    raise InvalidTrafficError(f"version {key!r} is not a positive integer")
