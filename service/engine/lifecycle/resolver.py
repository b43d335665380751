"""Cache each task's routing (live version and traffic split), ordered by generation.

The cache is ordered by the store's per-task generation, which every routing change bumps.
Updates come from this replica's own writes, from store events and from lookups, in any
order; one is applied only when its generation is higher than the cached one, so the cache
never goes back. A
lookup that *started* after the cached state was applied is authoritative even when older:
the store cannot legitimately answer below what it already committed, so it lost writes
(restored from an older snapshot) and the store wins. Missed events heal without a timer on
resync (every cached task is re-read) and, at the latest, at the TTL re-check. Which version
serves a request is chosen from this cache by `routing.Router`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from service.engine.lifecycle.loader import AdapterLoader
from service.errors import UnknownTaskError
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore
from service.store.errors import StoreUnavailableError
from service.store.events import EventKind, StoreEvent
from service.store.records import LiveState
from service.store.split import TrafficSplit

log = logging.getLogger(__name__)


@dataclass
class LiveEntry:
    version: int | None  # None: nothing live (staged only, or the task is gone)
    generation: int
    applied_at: float  # monotonic time this state was cached
    checked_at: float  # monotonic time the store last confirmed it
    split: TrafficSplit | None = None  # set: unpinned requests follow it
    exists: bool = True  # False: the task is gone

    @property
    def routable(self) -> tuple[int, ...]:
        """The versions an unpinned request can get."""
        if self.split is not None:
            return self.split.versions
        return () if self.version is None else (self.version,)

    @property
    def keep(self) -> frozenset[int]:
        """The versions this replica keeps loaded: the routable ones and the live one (where
        an abort returns)."""
        live = () if self.version is None else (self.version,)
        return frozenset((*self.routable, *live))


class AdapterResolver:
    """Keeps task -> (live version, split, generation)."""

    def __init__(
        self,
        store: AdapterStore,
        loader: AdapterLoader,
        metrics: Metrics,
        ttl_s: float,
    ) -> None:
        self.store, self.loader, self.metrics = store, loader, metrics
        self.ttl_s = ttl_s
        self._live: dict[str, LiveEntry] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()

    def live_version(self, task: str) -> int:
        """The task's live version. Raises UnknownTaskError (also when nothing is live)."""
        version = self.routing(task).version
        if version is None:
            raise UnknownTaskError(f"task {task!r} has no live version")
        return version

    def routing(self, task: str) -> LiveEntry:
        """The task's routing, with at least one routable version. Raises UnknownTaskError.

        Cached entries answer at once; after the TTL a single background lookup re-checks
        them, so a slow or absent Redis never delays a request for a task this replica knows.
        """
        entry = self.cached_routing(task)
        if entry is not None:
            return entry
        entry = self._lookup(task)
        if entry is None or not entry.routable:
            raise UnknownTaskError(_unroutable(task, entry))
        return entry

    def cached_routing(self, task: str) -> LiveEntry | None:
        """The cached routing when it has a routable version, else None. Never blocks on the
        store (a due re-check runs in the background), so the event loop may call it."""
        entry = self._live.get(task)
        if entry is None or not entry.routable:
            return None
        if time.monotonic() - entry.checked_at >= self.ttl_s:
            self._refresh_in_background(task)
        return entry

    def cached(self, task: str) -> LiveEntry | None:
        return self._live.get(task)

    def _lookup(self, task: str) -> LiveEntry | None:
        """Ask the store and apply its answer; the cached entry afterwards."""
        started = time.monotonic()
        try:
            state = self.store.live_state(task)
        except StoreUnavailableError:
            entry = self._live.get(task)
            if entry is not None and entry.routable:
                entry.checked_at = started  # keep serving what we know; ask after the TTL
                return entry
            raise
        self.apply(state, looked_up_at=started)
        return self._live.get(task)

    def apply(self, state: LiveState, looked_up_at: float | None = None) -> int | None:
        """Cache `state` unless a newer generation is cached; returns the cached live version.
        `looked_up_at`: when the lookup that read `state` started (None for events)."""
        now, task, lookup = time.monotonic(), state.task, looked_up_at is not None
        with self._lock:
            entry = self._live.get(task)
            if entry is None:
                if not state.exists and lookup:
                    return None  # an unknown name: cache nothing
                take = True
            else:
                take = state.generation > entry.generation or (
                    looked_up_at is not None and looked_up_at > entry.applied_at
                )
                if not take and lookup and state.generation == entry.generation:
                    entry.checked_at = now  # the store confirms what we hold
            changed = take and (
                entry is None or (entry.version, entry.split) != (state.version, state.split)
            )
            if take:
                self._live[task] = LiveEntry(
                    state.version, state.generation, now, now, state.split, state.exists
                )
            current = self._live[task]
        if changed:
            self.loader.forget(task, current.keep)
        return current.version

    def _refresh_in_background(self, task: str) -> None:
        with self._lock:
            if task in self._refreshing:
                return
            self._refreshing.add(task)

        def refresh() -> None:
            try:
                self._lookup(task)
            except Exception as e:  # a failed re-check keeps the cached entry
                log.warning("re-checking the live version of %r failed: %s", task, e)
                entry = self._live.get(task)
                if entry is not None:
                    entry.checked_at = time.monotonic()
            finally:
                with self._lock:
                    self._refreshing.discard(task)

        threading.Thread(target=refresh, name=f"refresh-{task}", daemon=True).start()

    def on_event(self, event: StoreEvent) -> None:
        """Store pub/sub: apply routing changes by generation; on resync, re-read."""
        if event.kind is EventKind.RESYNC:
            self.resync()
        elif event.kind is EventKind.LIVE:
            state = LiveState(event.task, event.version, event.generation, split=event.split)
            self.apply(state)
        elif event.task_gone:
            self.apply(LiveState(event.task, None, event.generation, exists=False))

    def resync(self) -> None:
        """Events may have been missed: every cached task is re-read from the store now
        (in the background); until then cached versions keep serving. Versions outside each
        task's routing leave the tiers (a deletion may have been missed)."""
        with self._lock:
            entries = list(self._live.items())
            for _, entry in entries:
                entry.checked_at = float("-inf")
        for task, entry in entries:
            self.loader.forget(task, entry.keep)
            self._refresh_in_background(task)


def _unroutable(task: str, entry: LiveEntry | None) -> str:
    if entry is None or not entry.exists:
        return f"no adapter is uploaded for task {task!r}"
    return (
        f"task {task!r} has no live version (its versions are staged): pin a version, or "
        "promote one"
    )
