"""Blobs of uploads that never committed, or of deletions that were interrupted.

A pending marker (``keys.pending``) guards such blobs: set before an upload writes them, and
by the deleting transaction. `gc_orphans` claims old markers in a transaction (so a racing
commit aborts) and removes their blobs.
"""

from __future__ import annotations

import logging
import time

import redis
from redis.client import Pipeline

from service.store.blobs import BlobStore
from service.store.errors import StoreError, redis_errors
from service.store.keys import BLOB_PARTS, Keys
from service.store.transaction import run_transaction

log = logging.getLogger(__name__)

DEFAULT_GC_GRACE_S = 3600.0
DELETING = b"0"  # pending-marker value: blobs are being (or must be) deleted


def gc_orphans(client: redis.Redis, blobs: BlobStore, keys: Keys, grace_s: float) -> int:
    """Delete blobs of versions that never committed (older than `grace_s`) or whose
    deletion was interrupted. Returns how many versions' blobs were removed."""
    cutoff = time.time() - grace_s
    with redis_errors("scanning pending uploads"):
        markers = [m.decode() for m in client.scan_iter(match=keys.pending_pattern)]
    removed = []
    for marker in markers:
        task, version = keys.parse_pending(marker)
        if _claim_orphan(client, keys, marker, task, version, cutoff):
            removed.append((task, version))
    for task, version in removed:
        drop_blobs(client, blobs, keys, task, [version])
    return len(removed)


def _claim_orphan(
    client: redis.Redis, keys: Keys, marker: str, task: str, version: int, cutoff: float
) -> bool:
    def txn(pipe: Pipeline) -> bool:
        stamp = pipe.get(marker)
        if stamp is None or float(stamp) > cutoff:
            return False
        committed = pipe.hexists(keys.versions(task), str(version))
        pipe.multi()
        if committed:  # cannot happen with the store's writes; heal it, keep the blobs
            pipe.delete(marker)
            return False
        pipe.set(marker, DELETING)  # any racing commit of this upload now aborts
        return True

    return run_transaction(client, f"claiming orphan {marker}", txn, marker)


def drop_blobs(
    client: redis.Redis, blobs: BlobStore, keys: Keys, task: str, versions: list[int]
) -> None:
    """Best effort: on failure the markers stay and `gc_orphans` finishes the job."""
    try:
        for version in versions:
            for part in BLOB_PARTS:
                blobs.delete(keys.blob(task, version, part))
            with redis_errors(f"clearing marker of {task!r} version {version}"):
                client.delete(keys.pending(task, version))
    except StoreError as e:
        log.warning("blobs of %r %s left for gc_orphans: %s", task, versions, e)
