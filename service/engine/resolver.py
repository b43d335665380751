"""Resolve a task to its live version and a pinned resident adapter, loading on a miss."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from service.engine.loader import AdapterLoader
from service.engine.pool import Resident
from service.errors import UnknownTaskError
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore
from service.store.errors import StoreUnavailableError, TaskNotFoundError


@dataclass
class LiveEntry:
    version: int
    checked_at: float


class AdapterResolver:
    """Keeps task -> live version (invalidated by store events) and fills the pool."""

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

        Cached entries answer at once; store events keep them current, and after the TTL a
        single background lookup re-checks them, so a slow or absent Redis never delays a
        request for a task this replica already knows.
        """
        entry = self._live.get(task)
        if entry is not None:
            if time.monotonic() - entry.checked_at >= self.ttl_s:
                self._refresh_in_background(task, entry)
            return entry.version
        version = self._lookup(task, entry)
        if version is None:
            raise UnknownTaskError(f"no adapter is uploaded for task {task!r}")
        return version

    def _lookup(self, task: str, entry: LiveEntry | None) -> int | None:
        """Ask the store; cache the answer unless an event changed the entry meanwhile."""
        now = time.monotonic()
        try:
            version = self.store.live_version(task)
        except TaskNotFoundError:
            version = None
        except StoreUnavailableError:
            if entry is not None:  # keep serving what we know; ask again after the TTL
                entry.checked_at = now
                return entry.version
            raise
        with self._lock:
            current = self._live.get(task)
            if current is not entry and current is not None:
                return current.version  # an event set a newer version while we asked
            if current is entry:  # otherwise an event dropped it meanwhile: do not re-cache
                if version is None:
                    self._live.pop(task, None)
                else:
                    self._live[task] = LiveEntry(version, now)
        return version

    def _refresh_in_background(self, task: str, entry: LiveEntry) -> None:
        with self._lock:
            if task in self._refreshing:
                return
            self._refreshing.add(task)

        def refresh() -> None:
            try:
                self._lookup(task, entry)
            except Exception:  # a failed re-check keeps the cached entry
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
        if entry is None:
            return None
        if time.monotonic() - entry.checked_at >= self.ttl_s:
            self._refresh_in_background(task, entry)
        resident = self.pool.acquire((task, entry.version))
        if resident is not None:
            self.metrics.cache_hits.inc()
        return resident

    def release(self, resident: Resident) -> None:
        self.pool.release(resident)

    def on_event(self, event: dict) -> None:
        """Store pub/sub: drop cached live versions so every replica switches at once."""
        kind, task, version = event.get("event"), event.get("task"), event.get("version")
        if kind == "resync" or task is None:
            with self._lock:
                self._live.clear()
            return
        with self._lock:
            self._live.pop(task, None)
            if kind == "live" and version is not None:
                self._live[task] = LiveEntry(int(version), time.monotonic())
        if kind == "live" and version is not None:
            self.loader.forget(task, keep_version=int(version))
        elif kind == "deleted" and version is None:
            self.loader.forget(task)
