"""Publishing one version, and telling an upload's outcome when its answer was lost.

`allocate` takes a version number (INCR) and sets the pending marker (the blobs are written
next); `commit` is the one transaction that makes the version visible (and maybe live).

An upload may carry a key of the client's choosing (`Idempotency-Key`). Its commit records
key -> (task, version, checksums) in the same transaction, kept for `UPLOAD_KEY_TTL_S`; an
upload with a key already recorded answers that version instead of adding one (`replayed`),
and a key reused for other bytes is a conflict. So a client whose upload got a 503 or a
dropped connection at the commit, which may have committed all the same, retries with the
same key and learns the truth. A transaction rerun after a lost EXEC reply (redis-py reruns
it on a dropped connection) finds its own record committed: that is this upload, not a race.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis
from redis.client import Pipeline

from service.store.errors import VersionConflictError, redis_errors
from service.store.keys import Keys
from service.store.records import Published, VersionInfo, parse_manifest, sha256_hex, utc_now_iso
from service.store.transaction import generation_of, read_split, run_transaction

UPLOAD_KEY_TTL_S = 24 * 3600


@dataclass(frozen=True)
class UploadRecord:
    """What an upload key committed."""

    task: str
    version: int
    sha256: str
    manifest_sha256: str

    @classmethod
    def of(cls, info: VersionInfo) -> UploadRecord:
        return cls(info.task, info.version, info.sha256, info.manifest_sha256)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> UploadRecord:
        data = json.loads(raw)
        return cls(str(data["task"]), int(data["version"]), data["sha256"], data["manifest_sha256"])

    def same_bytes(self, other: UploadRecord) -> bool:
        return (self.task, self.sha256, self.manifest_sha256) == (
            other.task,
            other.sha256,
            other.manifest_sha256,
        )


def allocate(
    client: redis.Redis, keys: Keys, task: str, manifest_bytes: bytes, weights_bytes: bytes
) -> tuple[VersionInfo, bytes]:
    """(the new version's record, its pending stamp); the caller writes the blobs next."""
    weights_sha = sha256_hex(weights_bytes)
    manifest = parse_manifest(task, manifest_bytes, weights_sha)
    stamp = repr(time.time()).encode()
    with redis_errors(f"allocating a version of {task!r}"):
        version = int(client.incr(keys.next_version(task)))
        client.set(keys.pending(task, version), stamp)
    info = VersionInfo(
        task=task,
        version=version,
        sha256=weights_sha,
        size_bytes=len(weights_bytes),
        uploaded_at=utc_now_iso(),
        manifest=manifest,
        manifest_sha256=sha256_hex(manifest_bytes),
    )
    return info, stamp


def replay(
    pipe: redis.Redis | Pipeline, keys: Keys, upload_key: str, wanted: UploadRecord
) -> Published | None:
    """The version `upload_key` committed (None if none, or if it was deleted since);
    VersionConflictError when the key committed other bytes."""
    raw = pipe.get(keys.upload(upload_key))
    if raw is None:
        return None
    prior = UploadRecord.from_json(raw)
    if not prior.same_bytes(wanted):
        raise VersionConflictError(
            f"upload key {upload_key!r} was used for another upload ({prior.task!r} "
            f"version {prior.version}); use a new key for new bytes"
        )
    stored = pipe.hget(keys.versions(prior.task), str(prior.version))
    if stored is None:
        return None
    return _published(pipe, keys, VersionInfo.from_json(stored))


def _published(pipe: redis.Redis | Pipeline, keys: Keys, info: VersionInfo) -> Published:
    """An earlier commit as a replayed answer; `live`: whether it is live now."""
    live = pipe.get(keys.live(info.task))
    generation = generation_of(pipe, keys.generation(info.task))  # type: ignore[arg-type]
    split = read_split(pipe, keys.traffic(info.task))  # type: ignore[arg-type]
    live_now = live == str(info.version).encode()
    return Published(info, live_now, generation, split, replayed=True)


def commit(
    client: redis.Redis,
    keys: Keys,
    info: VersionInfo,
    stamp: bytes,
    make_live: bool,
    upload_key: str | None,
) -> Published:
    """The one transaction that makes `info` visible (and live, unless a newer version is or
    a traffic split is set), or the earlier commit of the same upload."""
    task, version, k = info.task, info.version, keys
    pending, live_key, gen_key = k.pending(task, version), k.live(task), k.generation(task)
    traffic_key = k.traffic(task)
    watches = [pending, live_key, gen_key, traffic_key]
    watches += [k.upload(upload_key)] if upload_key else []

    def txn(pipe: Pipeline) -> Published:
        if upload_key is not None:
            earlier = replay(pipe, k, upload_key, UploadRecord.of(info))
            if earlier is not None:
                return earlier
        if pipe.get(pending) != stamp:
            mine = pipe.hget(k.versions(task), str(version))
            if mine is not None and VersionInfo.from_json(mine) == info:
                return _published(pipe, k, info)  # this transaction ran; its reply was lost
            raise VersionConflictError(
                f"upload of {task!r} version {version} was garbage-collected before it "
                "committed; upload again"
            )
        live, split = pipe.get(live_key), read_split(pipe, traffic_key)
        move = make_live and split is None and (live is None or int(live) < version)
        generation = generation_of(pipe, gen_key)
        pipe.multi()
        pipe.hset(k.versions(task), str(version), info.to_json())
        pipe.sadd(k.tasks, task)
        if move:
            generation += 1
            pipe.set(live_key, version)
            pipe.set(gen_key, generation)
        pipe.delete(pending)
        if upload_key is not None:
            pipe.set(k.upload(upload_key), UploadRecord.of(info).to_json(), ex=UPLOAD_KEY_TTL_S)
        return Published(info, move, generation, split)

    action = f"committing {task!r} version {version}"
    return run_transaction(client, action, txn, *watches)
