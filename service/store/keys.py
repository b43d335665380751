"""Every Redis key pattern and the event channel, under one configurable prefix.

Layout (prefix ``p``, default ``unipelt:``):

- ``{p}tasks``                          set: task names with at least one committed version
- ``{p}task:{task}:versions``           hash: version number -> JSON `VersionInfo`
- ``{p}task:{task}:live``               string: the live version number
- ``{p}task:{task}:next_version``       counter (INCR); never reset, so numbers are not reused
- ``{p}task:{task}:traffic``            string: JSON traffic split ``{"7": 90, "8": 10}``;
                                        absent when one live version takes all traffic
- ``{p}task:{task}:generation``         counter bumped in the transaction of every routing
                                        change (live pointer or split); never reset (kept when
                                        the task is deleted)
- ``{p}pending:{task}:{version}``       string: unix time; blobs exist but are not (or no
                                        longer) indexed; `AdapterStore.gc_orphans` removes them
- ``{p}blob:{task}:{version}:manifest`` blob key (also the file key of a non-Redis blob store)
- ``{p}blob:{task}:{version}:weights``  blob key
- ``{p}upload:{key}``                   string: JSON of what the upload with this client key
                                        committed (task, version, checksums); expires
- ``{p}events``                         pub/sub channel of JSON events
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_PREFIX = "unipelt:"

BlobPart = Literal["manifest", "weights"]
BLOB_PARTS: tuple[BlobPart, ...] = ("manifest", "weights")


@dataclass(frozen=True)
class Keys:
    """Key builder for one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c.isspace() for c in self.prefix):
            raise ValueError(
                f"key prefix must be non-empty without whitespace, got {self.prefix!r}"
            )

    @property
    def tasks(self) -> str:
        return f"{self.prefix}tasks"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    def versions(self, task: str) -> str:
        return f"{self.prefix}task:{task}:versions"

    def live(self, task: str) -> str:
        return f"{self.prefix}task:{task}:live"

    def traffic(self, task: str) -> str:
        return f"{self.prefix}task:{task}:traffic"

    def generation(self, task: str) -> str:
        return f"{self.prefix}task:{task}:generation"

    def next_version(self, task: str) -> str:
        return f"{self.prefix}task:{task}:next_version"

    def pending(self, task: str, version: int) -> str:
        return f"{self.prefix}pending:{task}:{version}"

    @property
    def pending_pattern(self) -> str:
        return f"{self.prefix}pending:*"

    def parse_pending(self, key: str) -> tuple[str, int]:
        """(task, version) of a key built by `pending`."""
        task, _, version = key.removeprefix(f"{self.prefix}pending:").rpartition(":")
        return task, int(version)

    def upload(self, upload_key: str) -> str:
        return f"{self.prefix}upload:{upload_key}"

    def blob(self, task: str, version: int, part: BlobPart) -> str:
        return f"{self.prefix}blob:{task}:{version}:{part}"
