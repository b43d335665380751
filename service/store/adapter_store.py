"""Versioned adapter artifacts: index in Redis, bytes in a `BlobStore`.

Every change of a task's routing (live pointer or traffic split, see `traffic.py`) bumps the
task's generation in the same transaction; events and `live_state` carry it, so caches can
order what they hear (see `events.py`).

Write order keeps readers safe: a version number comes from INCR, a pending marker is set,
the blobs are written, and only then one MULTI/EXEC adds the record, the task and (maybe) the
live pointer while removing the marker. A crash before that transaction leaves orphan blobs
under a pending marker and nothing visible; `gc_orphans` removes them. Deletion runs the other
way round: the transaction hides the version and leaves a marker, then the blobs go.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from service.store.blobs import BlobStore
from service.store.errors import (
    CorruptBlobError,
    NoEarlierVersionError,
    StoreError,
    TaskNotFoundError,
    VersionConflictError,
    VersionNotFoundError,
    redis_errors,
)
from service.store.events import EventCallback, EventKind, StoreEvent, encode_event
from service.store.keys import BLOB_PARTS, DEFAULT_PREFIX, Keys
from service.store.orphans import DEFAULT_GC_GRACE_S, DELETING, drop_blobs, gc_orphans
from service.store.publish import UploadRecord, allocate, commit, replay
from service.store.records import (
    LiveState,
    Published,
    VersionInfo,
    sha256_hex,
)
from service.store.split import TrafficSplit
from service.store.subscription import Subscription
from service.store.transaction import generation_of, read_split, run_transaction

log = logging.getLogger(__name__)


class AdapterStore:
    """Publishes, lists, serves and deletes adapter versions; see the module docstring."""

    def __init__(
        self, redis_client: redis.Redis, blobs: BlobStore, prefix: str = DEFAULT_PREFIX
    ) -> None:
        if redis_client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("AdapterStore needs a Redis client with decode_responses=False")
        self.client = redis_client
        self.blobs = blobs
        self.keys = Keys(prefix)

    # -- writes -----------------------------------------------------------------------------

    def publish(
        self,
        task: str,
        manifest_bytes: bytes,
        weights_bytes: bytes,
        make_live: bool = True,
        upload_key: str | None = None,
    ) -> Published:
        """Store a new version. With `make_live`, it becomes live unless a newer one already is
        (concurrent uploads: the highest version wins) or a traffic split is set (the split
        keeps routing; promote or abort ends it); without, it is staged: stored, not live.
        With `upload_key`, an upload that already committed under that key is answered
        instead (`replayed`; see `publish.py`)."""
        if upload_key is not None:
            wanted = UploadRecord(task, 0, sha256_hex(weights_bytes), sha256_hex(manifest_bytes))
            with redis_errors(f"reading the upload key of {task!r}"):
                earlier = replay(self.client, self.keys, upload_key, wanted)
            if earlier is not None:
                return earlier
        info, stamp = self._prepare(task, manifest_bytes, weights_bytes)
        published = self._commit(info, stamp, make_live, upload_key)
        if published.version != info.version:  # the key's upload committed meanwhile
            drop_blobs(self.client, self.blobs, self.keys, task, [info.version])
            return published
        self._emit(StoreEvent(EventKind.PUBLISHED, task, info.version, published.generation))
        if published.live:
            self.emit_routing(LiveState(task, info.version, published.generation))
        return published

    def _prepare(
        self, task: str, manifest_bytes: bytes, weights_bytes: bytes
    ) -> tuple[VersionInfo, bytes]:
        """Allocate the version, then write its blobs under the pending marker."""
        info, stamp = allocate(self.client, self.keys, task, manifest_bytes, weights_bytes)
        self.blobs.put(self.keys.blob(task, info.version, "manifest"), manifest_bytes)
        self.blobs.put(self.keys.blob(task, info.version, "weights"), weights_bytes)
        return info, stamp

    def _commit(
        self, info: VersionInfo, stamp: bytes, make_live: bool, upload_key: str | None = None
    ) -> Published:
        return commit(self.client, self.keys, info, stamp, make_live, upload_key)

    def set_live(self, task: str, version: int | None = None) -> LiveState:
        """Point the task at `version`, or with None at the highest version below the live one
        (the one before it: a rollback). Atomic against the live pointer it read: concurrent
        calls serialize, so N rollbacks without a version go N versions back. A traffic split
        ends in the same transaction: the target takes all traffic."""
        k = self.keys
        versions_key, live_key, gen_key = k.versions(task), k.live(task), k.generation(task)
        traffic_key = k.traffic(task)

        def txn(pipe: Pipeline) -> LiveState:
            versions = {int(v) for v in pipe.hkeys(versions_key)}
            if not versions:
                raise TaskNotFoundError(task)
            raw = pipe.get(live_key)
            live = None if raw is None else int(raw)
            target = version if version is not None else _previous(task, versions, live)
            if target not in versions:
                raise VersionNotFoundError(task, target)
            generation = generation_of(pipe, gen_key) + 1
            pipe.multi()
            pipe.set(live_key, target)
            pipe.delete(traffic_key)
            pipe.set(gen_key, generation)
            return LiveState(task, target, generation)

        action = f"setting the live version of {task!r}"
        watches = (versions_key, live_key, gen_key, traffic_key)
        state = run_transaction(self.client, action, txn, *watches)
        self.emit_routing(state)
        return state

    def delete_version(self, task: str, version: int) -> LiveState:
        """Delete one version. The live version can only go when it is the last one (then the
        task goes with it); otherwise set another version live first. A version in the traffic
        split cannot go either: promote, abort or change the split first. Both refusals are
        VersionConflictError."""
        k = self.keys
        versions_key, live_key, gen_key = k.versions(task), k.live(task), k.generation(task)
        traffic_key = k.traffic(task)

        def txn(pipe: Pipeline) -> LiveState:
            if not pipe.hexists(versions_key, str(version)):
                raise self._missing(pipe, task, version)
            raw, count = pipe.get(live_key), int(pipe.hlen(versions_key))
            live, generation = None if raw is None else int(raw), generation_of(pipe, gen_key)
            split = read_split(pipe, traffic_key)
            if split is not None and version in split.versions:
                raise VersionConflictError(
                    f"version {version} of {task!r} is in the traffic split ({split.describe()}); "
                    "promote, abort or change the split first"
                )
            if live == version and count > 1:
                raise VersionConflictError(
                    f"version {version} of {task!r} is live; set another version live first"
                )
            pipe.multi()
            pipe.hdel(versions_key, str(version))
            pipe.set(k.pending(task, version), DELETING)
            if count > 1:
                return LiveState(task, live, generation, split=split)
            pipe.delete(live_key, traffic_key)
            pipe.srem(k.tasks, task)
            pipe.set(gen_key, generation + 1)
            return LiveState(task, None, generation + 1, exists=False)

        action = f"deleting {task!r} version {version}"
        watches = (versions_key, live_key, gen_key, traffic_key)
        state = run_transaction(self.client, action, txn, *watches)
        deleted = version if state.exists else None  # None: the whole task
        self._emit(StoreEvent(EventKind.DELETED, task, deleted, state.generation))
        self._drop_blobs(task, [version])
        return state

    def delete_task(self, task: str) -> LiveState:
        """Delete every version of a task. Version numbers are never reused afterwards."""
        k = self.keys
        versions_key, live_key, gen_key = k.versions(task), k.live(task), k.generation(task)

        def txn(pipe: Pipeline) -> tuple[list[int], int]:
            versions = sorted(int(v) for v in pipe.hkeys(versions_key))
            if not versions:
                raise TaskNotFoundError(task)
            generation = generation_of(pipe, gen_key) + 1
            pipe.multi()
            pipe.delete(versions_key, live_key, k.traffic(task))
            pipe.srem(k.tasks, task)
            pipe.set(gen_key, generation)
            for version in versions:
                pipe.set(k.pending(task, version), DELETING)
            return versions, generation

        versions, generation = run_transaction(
            self.client, f"deleting task {task!r}", txn, versions_key, live_key, gen_key
        )
        self._emit(StoreEvent(EventKind.DELETED, task, None, generation))
        self._drop_blobs(task, versions)
        return LiveState(task, None, generation, exists=False)

    def gc_orphans(self, grace_s: float = DEFAULT_GC_GRACE_S) -> int:
        """Delete blobs of versions that never committed (older than `grace_s`) or whose
        deletion was interrupted. Returns how many versions' blobs were removed."""
        return gc_orphans(self.client, self.blobs, self.keys, grace_s)

    def _drop_blobs(self, task: str, versions: list[int]) -> None:
        drop_blobs(self.client, self.blobs, self.keys, task, versions)

    # -- reads ------------------------------------------------------------------------------

    def tasks(self) -> list[str]:
        with redis_errors("listing tasks"):
            members = cast("set[bytes]", self.client.smembers(self.keys.tasks))
        return sorted(t.decode() for t in members)

    def live_state(self, task: str) -> LiveState:
        """The routing (live pointer, traffic split) and its generation, read atomically
        (MULTI/EXEC). Never raises TaskNotFoundError: a missing task is `exists=False`, which
        has a generation too."""
        k = self.keys
        with redis_errors(f"reading live version of {task!r}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.exists(k.versions(task))
            pipe.get(k.live(task))
            pipe.get(k.generation(task))
            pipe.get(k.traffic(task))
            exists, live, generation, traffic = pipe.execute()
        version = None if live is None or not exists else int(live)
        split = None if traffic is None or not exists else TrafficSplit.from_json(traffic)
        return LiveState(task, version, int(generation or 0), bool(exists), split)

    def live_version(self, task: str) -> int | None:
        """The live version; None when the task exists but nothing is live."""
        state = self.live_state(task)
        if not state.exists:
            raise TaskNotFoundError(task)
        return state.version

    def versions(self, task: str) -> list[VersionInfo]:
        with redis_errors(f"listing versions of {task!r}"):
            raw = self.client.hvals(self.keys.versions(task))
        if not raw:
            raise TaskNotFoundError(task)
        return sorted((VersionInfo.from_json(r) for r in raw), key=lambda v: v.version)

    def version_info(self, task: str, version: int) -> VersionInfo:
        with redis_errors(f"reading {task!r} version {version}"):
            raw = self.client.hget(self.keys.versions(task), str(version))
            if raw is None:
                raise self._missing(self.client, task, version)
        return VersionInfo.from_json(raw)

    def fetch(self, task: str, version: int) -> tuple[bytes, bytes]:
        """(manifest bytes, weights bytes), verified against the sha256s in the record."""
        return self.fetch_verified(task, version)[:2]

    def fetch_verified(self, task: str, version: int) -> tuple[bytes, bytes, str]:
        """`fetch` plus the weights' sha256 it verified (so a reader need not hash again)."""
        info = self.version_info(task, version)
        expected = {"manifest": info.manifest_sha256, "weights": info.sha256}
        found: dict[str, bytes] = {}
        for part in BLOB_PARTS:
            data = self.blobs.get(self.keys.blob(task, version, part))
            if data is None:
                self.version_info(task, version)  # deleted since we read it: not found
                raise CorruptBlobError(task, version, part, "is missing")
            if sha256_hex(data) != expected[part]:
                raise CorruptBlobError(task, version, part, "fails its sha256 check")
            found[part] = data
        return found["manifest"], found["weights"], info.sha256

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except RedisError:
            return False

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, callback: EventCallback, wait_s: float = 2.0) -> Subscription:
        """Deliver this store's events (and "resync") to `callback` on a daemon thread."""
        return Subscription(self.client, self.keys.events, callback).start(wait_s)

    def emit_routing(self, state: LiveState) -> None:
        """Announce a committed routing change (the whole routing, with its generation)."""
        self._emit(
            StoreEvent(EventKind.LIVE, state.task, state.version, state.generation, state.split)
        )

    def _emit(self, event: StoreEvent) -> None:
        """Best effort: the index is already committed; subscribers resync on reconnect, and
        caches re-check by generation."""
        try:
            self.client.publish(self.keys.events, encode_event(event))
        except RedisError as e:
            log.warning("could not publish %s event for %r: %s", event.kind, event.task, e)

    def _missing(self, client: Any, task: str, version: int) -> StoreError:
        """The right not-found error for a version absent from the index."""
        if client.exists(self.keys.versions(task)):
            return VersionNotFoundError(task, version)
        return TaskNotFoundError(task)


def _previous(task: str, versions: set[int], live: int | None) -> int:
    """The highest version below `live` (with nothing live: the highest version)."""
    older = [v for v in versions if live is None or v < live]
    if not older:
        raise NoEarlierVersionError(task, live)
    return max(older)
