"""Blob backends: where artifact bytes live, keyed by the names in `keys.py`.

A backend implements three methods (`BlobStore`). The default keeps blobs in Redis next to
the index; `FilesystemBlobStore` keeps them on a (shared) disk. An S3-compatible backend
implements the same three methods (put_object / get_object returning None on NoSuchKey /
delete_object) and needs nothing else from the store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol, cast

import redis

from service.store.errors import redis_errors, unavailable

_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_EMPTY_SEGMENT = "%"


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` (replacing it) durably before returning."""

    def get(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there are none."""

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""


class RedisBlobStore:
    """Blobs as plain Redis string values (the default)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def put(self, key: str, data: bytes) -> None:
        with redis_errors(f"writing blob {key}"):
            self.client.set(key, data)

    def get(self, key: str) -> bytes | None:
        with redis_errors(f"reading blob {key}"):
            return cast("bytes | None", self.client.get(key))

    def delete(self, key: str) -> None:
        with redis_errors(f"deleting blob {key}"):
            self.client.delete(key)


def _encode_segment(segment: str) -> str:
    """A file name made only of [A-Za-z0-9_-] and %XX escapes, so never '.', '..' or '/'."""
    if not segment:
        return _EMPTY_SEGMENT
    return "".join(
        c if c in _SAFE_CHARS else "".join(f"%{b:02X}" for b in c.encode()) for c in segment
    )


class FilesystemBlobStore:
    """Blobs as files under `root`; key `a:b:c` becomes `root/a/b/c` (each part escaped)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, key: str) -> Path:
        if not key:
            raise ValueError("blob key must be non-empty")
        path = self.root.joinpath(*(_encode_segment(s) for s in key.split(":")))
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"blob key {key!r} escapes the blob root")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self.path_for(key)
        for attempt in range(3):
            try:
                self._write_atomic(path, data)
                return
            except FileNotFoundError as e:  # a concurrent delete pruned the directory: retry
                if attempt == 2:
                    unavailable(f"cannot write blob {key}: {e.strerror}", e)
            except OSError as e:
                unavailable(f"cannot write blob {key}: {e.strerror}", e)

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        """Temp file in the same directory, fsync, rename: readers see old or new bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        path = self.path_for(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            unavailable(f"cannot read blob {key}: {e.strerror}", e)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            unavailable(f"cannot delete blob {key}: {e.strerror}", e)
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone / raced with a writer): stop
            directory = directory.parent
