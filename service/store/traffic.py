"""Traffic splits in the store: set a split, promote one version, abort.

A task's routing is its live pointer plus, optionally, a split (`split.py`) kept under
`keys.traffic`. Each change here is one WATCH/MULTI/EXEC over the routing keys that bumps the
task's generation, exactly like a rollback (`AdapterStore.set_live`), so concurrent changes
serialize and none is lost; `if_generation` lets a client make its change conditional on the
routing it read (a compare-and-set: 409 when another change came first). Every change is
announced as a `LIVE` event carrying the whole routing.

How the other writes treat a split (`adapter_store.py`): an upload commits but does not go
live while a split is set; a rollback ends the split (its target takes all traffic); a
version in the split cannot be deleted; deleting the task removes the split with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from redis.client import Pipeline

from service.store.errors import (
    InvalidTrafficError,
    TaskNotFoundError,
    VersionConflictError,
    VersionNotFoundError,
)
from service.store.records import LiveState
from service.store.split import TrafficSplit
from service.store.transaction import generation_of, read_split, run_transaction

if TYPE_CHECKING:
    from service.store.adapter_store import AdapterStore

# (routing now, retained versions) -> the routing wanted (`now` itself: no change); raises
# a typed error to refuse. Runs under WATCH, before MULTI.
Change = Callable[[LiveState, set[int]], LiveState]


def set_split(
    store: AdapterStore, task: str, split: TrafficSplit, if_generation: int | None = None
) -> LiveState:
    """Route the task's unpinned requests over `split` (the live pointer stays: it is where
    `abort` returns). Every version in it must be retained (InvalidTrafficError)."""

    def change(now: LiveState, versions: set[int]) -> LiveState:
        if if_generation is not None and if_generation != now.generation:
            raise VersionConflictError(
                f"the routing of {task!r} is at generation {now.generation}, not "
                f"{if_generation}: another change came first; read it again"
            )
        missing = sorted(set(split.versions) - versions)
        if missing:
            raise InvalidTrafficError(
                f"task {task!r} has no version {', '.join(map(str, missing))} "
                f"(retained: {', '.join(map(str, sorted(versions)))})"
            )
        return replace(now, split=split)

    return _change_routing(store, task, f"setting the traffic split of {task!r}", change)


def promote(store: AdapterStore, task: str, version: int) -> LiveState:
    """Make `version` live and end the split, in one step. During a split the version must be
    in it (VersionConflictError); without one this is the same as a rollback to `version`."""

    def change(now: LiveState, versions: set[int]) -> LiveState:
        if version not in versions:
            raise VersionNotFoundError(task, version)
        if now.split is not None and version not in now.split.versions:
            raise VersionConflictError(
                f"version {version} of {task!r} is not in the traffic split "
                f"({now.split.describe()}); promote one of its versions, or abort"
            )
        return replace(now, version=version, split=None)

    return _change_routing(store, task, f"promoting {task!r} version {version}", change)


def abort(store: AdapterStore, task: str) -> LiveState:
    """End the split: the live version takes all traffic again. Without a split, nothing
    changes (the answer is the routing as it is)."""

    def change(now: LiveState, versions: set[int]) -> LiveState:
        return replace(now, split=None)

    return _change_routing(store, task, f"ending the traffic split of {task!r}", change)


def _change_routing(store: AdapterStore, task: str, action: str, change: Change) -> LiveState:
    """Read the routing under WATCH, ask `change` for the new one, and write it with a bumped
    generation in one MULTI/EXEC (retried when a watched key moved); announce it."""
    k = store.keys
    versions_key, live_key, gen_key = k.versions(task), k.live(task), k.generation(task)
    traffic_key = k.traffic(task)

    def txn(pipe: Pipeline) -> tuple[LiveState, bool]:
        versions = {int(v) for v in pipe.hkeys(versions_key)}
        if not versions:
            raise TaskNotFoundError(task)
        raw, generation = pipe.get(live_key), generation_of(pipe, gen_key)
        live = None if raw is None else int(raw)
        now = LiveState(task, live, generation, split=read_split(pipe, traffic_key))
        wanted = change(now, versions)
        if (wanted.version, wanted.split) == (now.version, now.split):
            return now, False  # nothing to write (an empty EXEC still checks the WATCH)
        pipe.multi()
        if wanted.version is not None:
            pipe.set(live_key, wanted.version)
        if wanted.split is None:
            pipe.delete(traffic_key)
        else:
            pipe.set(traffic_key, wanted.split.to_json())
        pipe.set(gen_key, generation + 1)
        return replace(wanted, generation=generation + 1), True

    watches = (versions_key, live_key, gen_key, traffic_key)
    state, changed = run_transaction(store.client, action, txn, *watches)
    if changed:
        store.emit_routing(state)
    return state
