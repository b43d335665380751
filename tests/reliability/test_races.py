"""Races between readers and writers, made deterministic: a store read that meets a deletion
halfway, and a live-version lookup that meets a newer version's event halfway."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection

import pytest

from harness.reliability import redis_store, task_artifact
from service.engine.lifecycle.resolver import AdapterResolver
from service.errors import UnknownTaskError
from service.metrics import Metrics
from service.store.errors import StoreError, TaskNotFoundError
from service.store.events import RESYNC, EventKind, StoreEvent
from service.store.records import LiveState

pytestmark = [pytest.mark.service]


class DeleteOnFirstRead:
    """A blob store that deletes the task right before the first read: the reader has
    already seen the version in the index, then finds its blobs gone."""

    def __init__(self, store, task: str) -> None:
        self.store, self.task, self.inner = store, task, store.blobs
        self.fired = False

    def get(self, key: str) -> bytes | None:
        if not self.fired:
            self.fired = True
            self.store.blobs = self.inner
            self.store.delete_task(self.task)
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_fetch_racing_a_delete_reports_not_found_not_corrupt(redis_server, minilm):
    """A cache miss that loses the race against DELETE /adapters/{task} must be a 404 (the
    task is gone), not a 500 corrupt_adapter (nothing is corrupt)."""
    store = redis_store(redis_server.url)
    task = "race-delete"
    info = store.publish(task, *task_artifact(minilm, task))
    store.blobs = DeleteOnFirstRead(store, task)
    with pytest.raises(StoreError) as caught:
        store.fetch(task, info.version)
    assert isinstance(caught.value, TaskNotFoundError), repr(caught.value)


class SlowStore:
    """`live_state` reads the index, then stalls until released (a slow Redis reply)."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.read = threading.Event()
        self.release = threading.Event()

    def live_state(self, task: str) -> LiveState:
        seen = LiveState(task, self.version, generation=self.version)
        self.read.set()
        self.release.wait(5)
        return seen


class NoLoader:
    pool = None

    def forget(self, task: str, keep: Collection[int] = ()) -> None:
        pass


def test_a_slow_lookup_does_not_overwrite_a_newer_live_event():
    """Lookup reads live=1 from the store; meanwhile version 2 goes live and its event
    arrives; the lookup then returns. The resolver must keep 2, not cache 1 for a TTL."""
    store = SlowStore(version=1)
    resolver = AdapterResolver(store, NoLoader(), Metrics(), ttl_s=60)
    lookup = threading.Thread(target=resolver.live_version, args=("t",))
    lookup.start()
    assert store.read.wait(5)
    store.version = 2
    resolver.on_event(StoreEvent(EventKind.LIVE, "t", 2, generation=2))
    store.release.set()
    lookup.join(5)
    assert resolver.live_version("t") == 2


class StoreSays:
    """A store whose live pointer is whatever the test sets (pure resolver logic)."""

    def __init__(self, state: LiveState) -> None:
        self.state = state

    def live_state(self, task: str) -> LiveState:
        return self.state


def test_events_in_any_order_leave_the_newest_generation():
    store = StoreSays(LiveState("t", 2, generation=6))
    resolver = AdapterResolver(store, NoLoader(), Metrics(), ttl_s=60)
    resolver.on_event(StoreEvent(EventKind.LIVE, "t", 2, generation=6))
    resolver.on_event(StoreEvent(EventKind.LIVE, "t", 1, generation=5))  # late, older
    assert resolver.live_version("t") == 2
    resolver.on_event(StoreEvent(EventKind.DELETED, "t", None, generation=7))
    resolver.on_event(StoreEvent(EventKind.LIVE, "t", 2, generation=6))  # must not resurrect
    store.state = LiveState("t", None, generation=7, exists=False)
    with pytest.raises(UnknownTaskError):
        resolver.live_version("t")


def test_a_lookup_started_after_the_cached_state_wins_even_when_older():
    """The store answering below what this replica saw it commit means it lost writes (an
    older snapshot): the store is the truth, so the re-check heals instead of sticking."""
    store = StoreSays(LiveState("t", 1, generation=3))
    resolver = AdapterResolver(store, NoLoader(), Metrics(), ttl_s=60)
    resolver.on_event(StoreEvent(EventKind.LIVE, "t", 2, generation=6))
    resolver.resync()
    deadline = time.monotonic() + 5
    while resolver.live_version("t") != 1:
        assert time.monotonic() < deadline, "resync never re-read the store"
        time.sleep(0.01)


def test_a_replica_that_missed_events_converges_on_resync(redis_server, minilm):
    """Real Redis: another writer rolls back while this resolver hears nothing (its events
    were lost); the resync after a reconnection re-reads the store and serves the live one."""
    store = redis_store(redis_server.url)
    task = "race-missed"
    for index in range(2):
        store.publish(task, *task_artifact(minilm, task, index))
    resolver = AdapterResolver(store, NoLoader(), Metrics(), ttl_s=60)
    assert resolver.live_version(task) == 2
    store.set_live(task, 1)  # no subscription: the event never reaches the resolver
    assert resolver.live_version(task) == 2  # cached, within the TTL
    resolver.on_event(RESYNC)
    deadline = time.monotonic() + 5
    while resolver.live_version(task) != 1:
        assert time.monotonic() < deadline, "resync did not re-read the store"
        time.sleep(0.01)
    store.delete_task(task)
