"""Versioned adapter artifacts: index in Redis, bytes in a `BlobStore`.

Write order keeps readers safe: a version number comes from INCR, a pending marker is set,
the blobs are written, and only then one MULTI/EXEC adds the record, the task and (maybe) the
live pointer while removing the marker. A crash before that transaction leaves orphan blobs
under a pending marker and nothing visible; `gc_orphans` removes them. Deletion runs the other
way round: the transaction hides the version and leaves a marker, then the blobs go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from service.store.blobs import BlobStore
from service.store.errors import (
    CorruptBlobError,
    StoreError,
    TaskNotFoundError,
    VersionConflictError,
    VersionNotFoundError,
    redis_errors,
)
from service.store.events import (
    EVENT_DELETED,
    EVENT_LIVE,
    EVENT_PUBLISHED,
    EventCallback,
    Subscription,
    encode_event,
)
from service.store.keys import BLOB_PARTS, DEFAULT_PREFIX, Keys
from service.store.records import VersionInfo, parse_manifest, sha256_hex, utc_now_iso

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_GC_GRACE_S = 3600.0
DELETING = b"0"  # pending-marker value: blobs are being (or must be) deleted


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
        self, task: str, manifest_bytes: bytes, weights_bytes: bytes, make_live: bool = True
    ) -> VersionInfo:
        """Store a new version. With `make_live`, it becomes live unless a newer one already is
        (concurrent uploads: the highest version wins)."""
        weights_sha = sha256_hex(weights_bytes)
        manifest = parse_manifest(task, manifest_bytes, weights_sha)
        stamp = repr(time.time()).encode()
        with redis_errors(f"allocating a version of {task!r}"):
            version = int(self.client.incr(self.keys.next_version(task)))
            self.client.set(self.keys.pending(task, version), stamp)
        info = VersionInfo(
            task=task,
            version=version,
            sha256=weights_sha,
            size_bytes=len(weights_bytes),
            uploaded_at=utc_now_iso(),
            manifest=manifest,
            manifest_sha256=sha256_hex(manifest_bytes),
        )
        self.blobs.put(self.keys.blob(task, version, "manifest"), manifest_bytes)
        self.blobs.put(self.keys.blob(task, version, "weights"), weights_bytes)
        became_live = self._commit(info, stamp, make_live)
        self._emit(EVENT_PUBLISHED, task, version)
        if became_live:
            self._emit(EVENT_LIVE, task, version)
        return info

    def _commit(self, info: VersionInfo, stamp: bytes, make_live: bool) -> bool:
        """The one transaction that makes `info` visible; True when it also became live."""
        task, version, k = info.task, info.version, self.keys
        pending, live_key = k.pending(task, version), k.live(task)

        def txn(pipe: Pipeline) -> bool:
            if pipe.get(pending) != stamp:
                raise VersionConflictError(
                    f"upload of {task!r} version {version} was garbage-collected before it "
                    "committed; upload again"
                )
            live = pipe.get(live_key)
            move = make_live and (live is None or int(live) < version)
            pipe.multi()
            pipe.hset(k.versions(task), str(version), info.to_json())
            pipe.sadd(k.tasks, task)
            if move:
                pipe.set(live_key, version)
            pipe.delete(pending)
            return move

        return self._transaction(f"committing {task!r} version {version}", txn, pending, live_key)

    def set_live(self, task: str, version: int) -> None:
        """Point the task at an existing version (rollback or roll forward)."""
        versions_key = self.keys.versions(task)

        def txn(pipe: Pipeline) -> None:
            if not pipe.hexists(versions_key, str(version)):
                raise self._missing(pipe, task, version)
            pipe.multi()
            pipe.set(self.keys.live(task), version)

        self._transaction(f"setting {task!r} live version to {version}", txn, versions_key)
        self._emit(EVENT_LIVE, task, version)

    def delete_version(self, task: str, version: int) -> None:
        """Delete one version. The live version can only go when it is the last one (then the
        task goes with it); otherwise set another version live first (VersionConflictError)."""
        k = self.keys
        versions_key, live_key = k.versions(task), k.live(task)

        def txn(pipe: Pipeline) -> bool:
            if not pipe.hexists(versions_key, str(version)):
                raise self._missing(pipe, task, version)
            live, count = pipe.get(live_key), int(pipe.hlen(versions_key))
            if live is not None and int(live) == version and count > 1:
                raise VersionConflictError(
                    f"version {version} of {task!r} is live; set another version live first"
                )
            pipe.multi()
            pipe.hdel(versions_key, str(version))
            pipe.set(k.pending(task, version), DELETING)
            if count == 1:
                pipe.delete(live_key)
                pipe.srem(k.tasks, task)
            return count == 1

        action = f"deleting {task!r} version {version}"
        task_gone = self._transaction(action, txn, versions_key, live_key)
        self._emit(EVENT_DELETED, task, None if task_gone else version)
        self._drop_blobs(task, [version])

    def delete_task(self, task: str) -> None:
        """Delete every version of a task. Version numbers are never reused afterwards."""
        k = self.keys
        versions_key = k.versions(task)

        def txn(pipe: Pipeline) -> list[int]:
            versions = sorted(int(v) for v in pipe.hkeys(versions_key))
            if not versions:
                raise TaskNotFoundError(task)
            pipe.multi()
            pipe.delete(versions_key, k.live(task))
            pipe.srem(k.tasks, task)
            for version in versions:
                pipe.set(k.pending(task, version), DELETING)
            return versions

        versions = self._transaction(f"deleting task {task!r}", txn, versions_key)
        self._emit(EVENT_DELETED, task, None)
        self._drop_blobs(task, versions)

    def gc_orphans(self, grace_s: float = DEFAULT_GC_GRACE_S) -> int:
        """Delete blobs of versions that never committed (older than `grace_s`) or whose
        deletion was interrupted. Returns how many versions' blobs were removed."""
        cutoff = time.time() - grace_s
        with redis_errors("scanning pending uploads"):
            markers = [m.decode() for m in self.client.scan_iter(match=self.keys.pending_pattern)]
        removed = []
        for marker in markers:
            task, version = self.keys.parse_pending(marker)
            if self._claim_orphan(marker, task, version, cutoff):
                removed.append((task, version))
        for task, version in removed:
            self._drop_blobs(task, [version])
        return len(removed)

    def _claim_orphan(self, marker: str, task: str, version: int, cutoff: float) -> bool:
        def txn(pipe: Pipeline) -> bool:
            stamp = pipe.get(marker)
            if stamp is None or float(stamp) > cutoff:
                return False
            committed = pipe.hexists(self.keys.versions(task), str(version))
            pipe.multi()
            if committed:  # cannot happen with this module's writes; heal it, keep the blobs
                pipe.delete(marker)
                return False
            pipe.set(marker, DELETING)  # any racing commit of this upload now aborts
            return True

        return self._transaction(f"claiming orphan {marker}", txn, marker)

    def _drop_blobs(self, task: str, versions: list[int]) -> None:
        """Best effort: on failure the markers stay and `gc_orphans` finishes the job."""
        try:
            for version in versions:
                for part in BLOB_PARTS:
                    self.blobs.delete(self.keys.blob(task, version, part))
                with redis_errors(f"clearing marker of {task!r} version {version}"):
                    self.client.delete(self.keys.pending(task, version))
        except StoreError as e:
            log.warning("blobs of %r %s left for gc_orphans: %s", task, versions, e)

    # -- reads ------------------------------------------------------------------------------

    def tasks(self) -> list[str]:
        with redis_errors("listing tasks"):
            members = cast("set[bytes]", self.client.smembers(self.keys.tasks))
        return sorted(t.decode() for t in members)

    def live_version(self, task: str) -> int | None:
        """The live version; None when the task exists but nothing is live."""
        with redis_errors(f"reading live version of {task!r}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(self.keys.versions(task))
            pipe.get(self.keys.live(task))
            exists, live = pipe.execute()
        if not exists:
            raise TaskNotFoundError(task)
        return None if live is None else int(live)

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
        return found["manifest"], found["weights"]

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except RedisError:
            return False

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, callback: EventCallback, wait_s: float = 2.0) -> Subscription:
        """Deliver this store's events (and "resync") to `callback` on a daemon thread."""
        return Subscription(self.client, self.keys.events, callback).start(wait_s)

    def _emit(self, event: str, task: str, version: int | None) -> None:
        """Best effort: the index is already committed; subscribers resync on reconnect."""
        try:
            self.client.publish(self.keys.events, encode_event(event, task, version))
        except RedisError as e:
            log.warning("could not publish %s event for %r: %s", event, task, e)

    def _transaction(self, action: str, func: Callable[[Pipeline], T], *watches: str) -> T:
        """WATCH `watches`, run `func` (reads, then `pipe.multi()` and writes), EXEC; retried
        when a watched key changed in between. Returns what `func` returned."""
        run = cast(Callable[..., Any], self.client.transaction)  # its stub wants -> None
        with redis_errors(action):
            return cast(T, run(func, *watches, value_from_callable=True))

    def _missing(self, client: Any, task: str, version: int) -> StoreError:
        """The right not-found error for a version absent from the index."""
        if client.exists(self.keys.versions(task)):
            return VersionNotFoundError(task, version)
        return TaskNotFoundError(task)
