"""Warm on publish: load a new version of a task this replica holds before switching to it.

Store events pass through here on their way to the resolver. An event that publishes or
makes live a version of a task held in the bank (or sets a traffic split over versions it does
not hold) is queued: one background thread loads those versions (host tier or store, then a
slot), and only then hands the event on, so the first request after the swap finds them
resident. Later events of a task with queued work wait behind
it, so each task's events keep their order. Loads are bounded (`max_loads` queued, one at a
time): past the bound an event goes straight through and the version loads on first use, so a
burst of uploads cannot take the CPU from predictions.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from service.engine.lifecycle.loader import AdapterLoader
from service.metrics import Metrics
from service.store.events import EventKind, StoreEvent

log = logging.getLogger("unipelt.warm")
WARM_EVENTS = (EventKind.PUBLISHED, EventKind.LIVE)


@dataclass(frozen=True)
class _Item:
    event: StoreEvent
    versions: tuple[int, ...]  # to load before the event goes on

    @property
    def load(self) -> bool:
        return bool(self.versions)


class Warmer:
    def __init__(
        self,
        loader: AdapterLoader,
        apply: Callable[[StoreEvent], None],
        metrics: Metrics,
        max_loads: int,
    ) -> None:
        self.loader, self.apply, self.metrics = loader, apply, metrics
        self.max_loads = max_loads
        self._queue: deque[_Item] = deque()
        self._pending: Counter[str] = Counter()  # queued items per task
        self._loads = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="warm", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def on_event(self, event: StoreEvent) -> None:
        """The store subscription's callback."""
        task = event.task
        with self._cond:
            if event.kind is EventKind.RESYNC:  # for every task at once
                self.apply(event)
                return
            versions = self._wanted(event)
            if not versions and not self._pending[task]:
                self.apply(event)  # nothing to wait for: at once, in order
                return
            self._loads += bool(versions)
            self._queue.append(_Item(event, versions))
            self._pending[task] += 1
            self._cond.notify()

    def _wanted(self, event: StoreEvent) -> tuple[int, ...]:
        """Versions to load before `event` applies: those it routes to that a task held in
        the bank lacks."""
        if event.kind not in WARM_EVENTS or self._closed:
            return ()
        if event.split is not None:
            routed: tuple[int, ...] = event.split.versions
        else:
            routed = () if event.version is None else (event.version,)
        held = self.loader.pool.resident_versions(event.task)
        missing = tuple(v for v in routed if v not in held) if held else ()
        if missing and self._loads >= self.max_loads:
            self.metrics.warm_loads.labels(result="skipped").inc()
            return ()
        return missing

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item = self._queue.popleft()
            task = item.event.task
            for version in item.versions:
                self._load(task, version)
            try:
                self.apply(item.event)
            except Exception:  # never lose the worker; the TTL re-check heals the cache
                log.exception("applying %s failed", item.event)
            with self._cond:
                self._pending[task] -= 1
                if self._pending[task] <= 0:
                    del self._pending[task]
                if item.load:
                    self._loads -= 1

    def _load(self, task: str, version: int) -> None:
        try:
            self.loader.warm((task, version))
            self.metrics.warm_loads.labels(result="loaded").inc()
        except Exception as exc:  # it loads on first use instead
            self.metrics.warm_loads.labels(result="failed").inc()
            log.warning("background load of %s v%s failed: %s", task, version, exc)
