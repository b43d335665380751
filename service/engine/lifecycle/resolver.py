"""Resolve a task to its live version and a pinned resident adapter, loading on a miss.

The cache of live versions is ordered by the store's per-task generation. Updates come from
this replica's own writes, from store events and from lookups, in any order; one is applied
only when its generation is higher than the cached one, so the cache never goes back. A
lookup that *started* after the cached state was applied is authoritative even when older:
the store cannot legitimately answer below what it already committed, so it lost writes
(restored from an older snapshot) and the store wins. Missed events heal without a timer on
resync (every cached task is re-read) and, at the latest, at the TTL re-check.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from service.engine.lifecycle.loader import AdapterLoader
from service.engine.lifecycle.pool import Resident
from service.errors import UnknownTaskError
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore
from service.store.errors import StoreUnavailableError
from service.store.events import EventKind, StoreEvent
from service.store.records import LiveState

log = logging.getLogger(__name__)


@dataclass
class LiveEntry:
    version: int | None  # None: the task is gone; the entry keeps its generation
    generation: int
    applied_at: float  # monotonic time this state was cached
    checked_at: float  # monotonic time the store last confirmed it


class AdapterResolver:
    """Keeps task -> (live version, generation) and fills the pool."""

    def __init__(
        self,
        store: AdapterStore,
        loader: AdapterLoader,
        metrics: Metrics,
        ttl_s: float,
    ) -> None:
        self.store, self.loader, self.pool, self.metrics = store, loader, loader.pool, metrics
        self.ttl_s = ttl_s
        self._live: dict[str, LiveEntry] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()

    def live_version(self, task: str) -> int:
        """The task's live version. Raises UnknownTaskError.

        Cached entries answer at once; after the TTL a single background lookup re-checks
        them, so a slow or absent Redis never delays a request for a task this replica knows.
        """
        entry = self._live.get(task)
        if entry is not None and entry.version is not None:
            if time.monotonic() - entry.checked_at >= self.ttl_s:
                self._refresh_in_background(task)
            return entry.version
        version = self._lookup(task)
        if version is None:
            raise UnknownTaskError(f"no adapter is uploaded for task {task!r}")
        return version

    def _lookup(self, task: str) -> int | None:
        """Ask the store and apply its answer; the cached version afterwards."""
        started = time.monotonic()
        try:
            state = self.store.live_state(task)
        except StoreUnavailableError:
            entry = self._live.get(task)
            if entry is not None and entry.version is not None:
                entry.checked_at = started  # keep serving what we know; ask after the TTL
                return entry.version
            raise
        return self.apply(state, looked_up_at=started)

    def apply(self, state: LiveState, looked_up_at: float | None = None) -> int | None:
        """Cache `state` unless a newer generation is cached; returns the cached version.
        `looked_up_at`: when the lookup that read `state` started (None for events)."""
        now, task, lookup = time.monotonic(), state.task, looked_up_at is not None
        with self._lock:
            entry = self._live.get(task)
            if entry is None:
                if state.version is None and lookup:
                    return None  # an unknown name: cache nothing
                take = True
            else:
                take = state.generation > entry.generation or (
                    looked_up_at is not None and looked_up_at > entry.applied_at
                )
                if not take and lookup and state.generation == entry.generation:
                    entry.checked_at = now  # the store confirms what we hold
            changed = take and (entry is None or entry.version != state.version)
            if take:
                self._live[task] = LiveEntry(state.version, state.generation, now, now)
            version = self._live[task].version
        if changed:
            self.loader.forget(task, keep_version=version)
        return version

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

    def acquire(self, task: str) -> Resident:
        """A pinned resident adapter for the task's live version. Caller must release it."""
        return self.loader.acquire((task, self.live_version(task)))

    def acquire_cached(self, task: str) -> Resident | None:
        """The pinned resident when the live version is cached and in the bank, else None.

        Never blocks on the store or a load, so the event loop may call it."""
        entry = self._live.get(task)
        if entry is None or entry.version is None:
            return None
        if time.monotonic() - entry.checked_at >= self.ttl_s:
            self._refresh_in_background(task)
        resident = self.pool.acquire((task, entry.version))
        if resident is not None:
            self.metrics.cache_hits.inc()
        return resident

    def release(self, resident: Resident) -> None:
        self.pool.release(resident)

    def on_event(self, event: StoreEvent) -> None:
        """Store pub/sub: apply live-pointer changes by generation; on resync, re-read."""
        if event.kind is EventKind.RESYNC:
            self.resync()
        elif event.kind is EventKind.LIVE or event.task_gone:
            self.apply(LiveState(event.task, event.version, event.generation))

    def resync(self) -> None:
        """Events may have been missed: every cached task is re-read from the store now
        (in the background); until then cached versions keep serving."""
        with self._lock:
            tasks = list(self._live)
            for entry in self._live.values():
                entry.checked_at = float("-inf")
        for task in tasks:
            self._refresh_in_background(task)
