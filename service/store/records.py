"""The index record of one stored adapter version."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from adapters.constants import TASK_NAME_PATTERN
from service.store.errors import InvalidArtifactError
from service.store.split import TrafficSplit

TASK_NAME = re.compile(TASK_NAME_PATTERN)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class VersionInfo:
    """What the index knows about one version; the blobs hold the bytes.

    `sha256` / `size_bytes` describe the weights blob, `manifest_sha256` the manifest blob.
    """

    task: str
    version: int
    sha256: str
    size_bytes: int
    uploaded_at: str
    manifest: dict[str, Any] = field(hash=False, compare=True)
    manifest_sha256: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> VersionInfo:
        data = json.loads(raw)
        return cls(
            task=str(data["task"]),
            version=int(data["version"]),
            sha256=str(data["sha256"]),
            size_bytes=int(data["size_bytes"]),
            uploaded_at=str(data["uploaded_at"]),
            manifest=dict(data["manifest"]),
            manifest_sha256=str(data["manifest_sha256"]),
        )


@dataclass(frozen=True)
class LiveState:
    """A task's routing read in one transaction: the live pointer (`version`, None when
    nothing is live; `exists` False: the task is gone) and the traffic split, if one is set
    (then unpinned requests follow the split, and the live version is where `abort` returns).
    `generation` orders states of the same task."""

    task: str
    version: int | None
    generation: int
    exists: bool = True
    split: TrafficSplit | None = None

    @property
    def routable(self) -> tuple[int, ...]:
        """The versions an unpinned request can get: the split's, else the live one."""
        if self.split is not None:
            return self.split.versions
        return () if self.version is None else (self.version,)


@dataclass(frozen=True)
class Published:
    """What `AdapterStore.publish` committed: `live` is True when this version became live
    in its commit (False when staged, when a newer version was live already, or when a traffic
    split was set: `split`)."""

    info: VersionInfo
    live: bool
    generation: int
    split: TrafficSplit | None = None
    replayed: bool = False  # an earlier commit of the same upload (its key, or a lost reply)

    @property
    def version(self) -> int:
        return self.info.version


def parse_manifest(task: str, manifest_bytes: bytes, weights_sha256: str) -> dict[str, Any]:
    """The manifest as a dict, after checking the two keys the store relies on."""
    if not TASK_NAME.match(task):
        raise InvalidArtifactError(f"task name {task!r} does not match {TASK_NAME_PATTERN}")
    try:
        manifest = json.loads(manifest_bytes)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArtifactError(f"manifest of {task!r} is not JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise InvalidArtifactError(f"manifest of {task!r} is not a JSON object")
    if manifest.get("task") != task:
        raise InvalidArtifactError(f"manifest names task {manifest.get('task')!r}, not {task!r}")
    if manifest.get("weights_sha256") != weights_sha256:
        raise InvalidArtifactError(f"manifest weights_sha256 of {task!r} does not match weights")
    return manifest
