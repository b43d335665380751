"""Adapter store: versioned UniPELT artifacts indexed in Redis, bytes in a blob backend."""

from service.store.adapter_store import AdapterStore
from service.store.blobs import BlobStore, FilesystemBlobStore, RedisBlobStore
from service.store.embedded import EmbeddedRedis, find_redis_server, start_embedded_redis
from service.store.errors import (
    CorruptBlobError,
    InvalidArtifactError,
    InvalidTrafficError,
    NoEarlierVersionError,
    StoreError,
    StoreUnavailableError,
    TaskNotFoundError,
    VersionConflictError,
    VersionNotFoundError,
)
from service.store.events import EventKind, StoreEvent
from service.store.factory import connect, make_client
from service.store.keys import DEFAULT_PREFIX, Keys
from service.store.records import LiveState, Published, VersionInfo
from service.store.split import MAX_SPLIT_VERSIONS, TrafficSplit
from service.store.subscription import Subscription

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_SPLIT_VERSIONS",
    "AdapterStore",
    "BlobStore",
    "CorruptBlobError",
    "EmbeddedRedis",
    "EventKind",
    "FilesystemBlobStore",
    "InvalidArtifactError",
    "InvalidTrafficError",
    "Keys",
    "LiveState",
    "NoEarlierVersionError",
    "Published",
    "RedisBlobStore",
    "StoreError",
    "StoreEvent",
    "StoreUnavailableError",
    "Subscription",
    "TaskNotFoundError",
    "TrafficSplit",
    "VersionConflictError",
    "VersionInfo",
    "VersionNotFoundError",
    "connect",
    "find_redis_server",
    "make_client",
    "start_embedded_redis",
]
