"""Which version serves a request, chosen once, and the resident pinned for it.

A request names a task and, optionally, a version (a pin). Unpinned, the task's cached routing
decides: its live version or, while a split is set, one of the split's versions, drawn with
the probability of its weight, or, given a sticky key, the version that owns the bucket the
key hashes onto, so one key keeps one version while the split stands (`TrafficSplit`). The
choice is made once; the resident pinned for it computes the whole answer, which names it.

A pinned version must be retained. A routable one is (the store refuses to delete it); any
other is confirmed with the store once, then remembered until its deletion is heard (or a
resync). A pinned version loads like any other (bank, host tier, store) within the same
budgets.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from service.engine.lifecycle.loader import AdapterLoader
from service.engine.lifecycle.pool import AdapterKey, Resident
from service.engine.lifecycle.resolver import AdapterResolver, LiveEntry
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore
from service.store.events import EventKind, StoreEvent
from service.store.split import PERCENT


@dataclass(frozen=True)
class Target:
    """What a request asks for: a task, and a version when it pins one."""

    task: str
    version: int | None = None


@dataclass(frozen=True)
class Route:
    """The version chosen for a target."""

    task: str
    version: int
    pinned: bool

    @property
    def key(self) -> AdapterKey:
        return (self.task, self.version)


def sticky_bucket(task: str, sticky_key: str) -> int:
    """The bucket (0..99) a sticky key owns for a task; the same on every replica."""
    digest = hashlib.sha256(f"{task}\x00{sticky_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % PERCENT


def choose(
    entry: LiveEntry,
    task: str,
    sticky_key: str | None,
    draw: Callable[[int], int] = random.randrange,
) -> int:
    """The version an unpinned request gets from `entry` (which has a routable version)."""
    if entry.split is None:
        assert entry.version is not None
        return entry.version
    bucket = sticky_bucket(task, sticky_key) if sticky_key is not None else draw(PERCENT)
    return entry.split.version_at(bucket)


class Router:
    """Chooses each target's version and pins its resident."""

    def __init__(
        self,
        resolver: AdapterResolver,
        loader: AdapterLoader,
        store: AdapterStore,
        metrics: Metrics,
    ) -> None:
        self.resolver, self.loader, self.store, self.metrics = resolver, loader, store, metrics
        self.pool = loader.pool
        self._confirmed: dict[str, set[int]] = {}  # task -> pinned versions the store confirmed
        self._lock = threading.Lock()

    def route_cached(self, target: Target, sticky_key: str | None) -> Route | None:
        """The route from what this replica knows, or None when the task's routing is not
        cached. Never blocks."""
        if target.version is not None:
            return Route(target.task, target.version, pinned=True)
        entry = self.resolver.cached_routing(target.task)
        if entry is None:
            return None
        return Route(target.task, choose(entry, target.task, sticky_key), pinned=False)

    def acquire_cached(self, route: Route) -> Resident | None:
        """The pinned resident when it is in the bank (and a pin is known retained), else
        None. Never blocks, so the event loop may call it."""
        if route.pinned and not self._known(route):
            return None
        resident = self.pool.acquire(route.key)
        if resident is not None:
            self.metrics.cache_hits.inc()
        return resident

    def acquire(
        self, target: Target, route: Route | None = None, sticky_key: str | None = None
    ) -> Resident:
        """The pinned resident for `route` (chosen now from the store's routing when None),
        loading on a miss. Blocks; the caller must release it. Raises UnknownTaskError, or
        VersionNotFoundError (404 unknown_version) for a pin that is not retained."""
        if route is None:
            entry = self.resolver.routing(target.task)
            route = Route(target.task, choose(entry, target.task, sticky_key), pinned=False)
        if route.pinned and not self._known(route):
            self.store.version_info(route.task, route.version)  # raises when not retained
            with self._lock:
                self._confirmed.setdefault(route.task, set()).add(route.version)
        return self.loader.acquire(route.key)

    def release(self, resident: Resident) -> None:
        self.pool.release(resident)

    def routable(self, task: str) -> frozenset[int]:
        """Versions this replica routes to or keeps for `task` (live and split)."""
        entry = self.resolver.cached(task)
        return frozenset() if entry is None else entry.keep

    def deleted(self, task: str, version: int | None) -> None:
        """A version (None: the whole task) was deleted: forget its pin and its tiers."""
        with self._lock:
            if version is None:
                self._confirmed.pop(task, None)
            else:
                self._confirmed.get(task, set()).discard(version)
        if version is not None:
            self.loader.forget_version((task, version))

    def on_event(self, event: StoreEvent) -> None:
        """Store events: deletions end confirmed pins; the resolver takes the rest."""
        if event.kind is EventKind.DELETED:
            self.deleted(event.task, event.version)
        elif event.kind is EventKind.RESYNC:
            with self._lock:
                self._confirmed.clear()  # deletions may have been missed: confirm again
        self.resolver.on_event(event)

    def _known(self, route: Route) -> bool:
        """True when `route`'s pinned version is known retained without asking the store."""
        if route.version in self.routable(route.task):
            return True
        with self._lock:
            return route.version in self._confirmed.get(route.task, ())
