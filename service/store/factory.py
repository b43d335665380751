"""Build an `AdapterStore` from settings: Redis URL (or an embedded server) and blob backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from service.store.adapter_store import AdapterStore
from service.store.blobs import BlobStore, FilesystemBlobStore, RedisBlobStore
from service.store.embedded import EmbeddedRedis, start_embedded_redis
from service.store.keys import DEFAULT_PREFIX

BlobBackend = Literal["redis", "filesystem"]
BLOB_BACKENDS: tuple[BlobBackend, ...] = ("redis", "filesystem")
EMBEDDED_DIR = "redis"
BLOBS_DIR = "blobs"
SOCKET_TIMEOUT_S = 2.0


def make_client(url: str, socket_timeout_s: float = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A bytes client that fails fast: short socket timeouts, one quick retry on a refused or
    dropped connection and none on a timeout (a hung server costs one timeout, not three)."""
    retry = Retry(
        ExponentialBackoff(cap=0.2, base=0.05), retries=1, supported_errors=(RedisConnectionError,)
    )
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=retry,
        health_check_interval=30,
    )


def connect(
    url: str | None,
    data_dir: Path,
    blob_backend: BlobBackend = "redis",
    prefix: str = DEFAULT_PREFIX,
    on_restart: Callable[[], None] | None = None,
) -> tuple[AdapterStore, EmbeddedRedis | None]:
    """The store, plus the embedded server it started when `url` is None (caller stops it);
    that server is supervised: restarted whenever it dies (`on_restart` each time)."""
    if blob_backend not in BLOB_BACKENDS:
        raise ValueError(f"blob_backend must be one of {BLOB_BACKENDS}, got {blob_backend!r}")
    data_dir = Path(data_dir)
    embedded = None
    if url is None:
        embedded = start_embedded_redis(
            data_dir / EMBEDDED_DIR, supervise=True, on_restart=on_restart
        )
    client = make_client(embedded.url if embedded else str(url))
    blobs: BlobStore = (
        RedisBlobStore(client)
        if blob_backend == "redis"
        else FilesystemBlobStore(data_dir / BLOBS_DIR)
    )
    return AdapterStore(client, blobs, prefix), embedded
