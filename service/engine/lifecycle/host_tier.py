"""The host tier: validated adapters in host memory, ready for a slot, LRU under a byte budget.

It sits between the device bank and the store. Entries are slot images (`SlotImage`: fused,
at the task's own sizes, in the stored dtype when it is narrower than the bank's), so a bank
miss that hits here is plain copies into a slot, with no fetch, checksum, parse or fusing.
Entries are immutable; eviction only drops the cache's reference, so a copy already under way
keeps its tensors. On a CUDA device the images are pinned, so the copy into the bank is a
direct DMA.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from adapters.manifest import Manifest
from adapters.slot_image import SlotImage
from service.engine.lifecycle.keys import AdapterKey


@dataclass(frozen=True)
class HostAdapter:
    key: AdapterKey
    manifest: Manifest
    image: SlotImage
    nbytes: int


class HostCache:
    def __init__(self, max_bytes: int, pin: bool = False) -> None:
        self.max_bytes = max_bytes
        self.pin = pin
        self._entries: OrderedDict[AdapterKey, HostAdapter] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def versions(self, task: str) -> list[int]:
        """Versions of `task` held here."""
        with self._lock:
            return sorted(v for t, v in self._entries if t == task)

    def recent(self) -> list[AdapterKey]:
        """Every entry's key, most recently used first."""
        with self._lock:
            return list(reversed(self._entries))

    def get(self, key: AdapterKey) -> HostAdapter | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: AdapterKey, manifest: Manifest, image: SlotImage) -> HostAdapter:
        """Keep the adapter (evicting least recent ones); one larger than the whole budget is
        returned but not kept."""
        image = image.pinned() if self.pin else image
        entry = HostAdapter(key, manifest, image, image.nbytes)
        if entry.nbytes > self.max_bytes:
            return entry
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            while self._entries and self._bytes + entry.nbytes > self.max_bytes:
                _, victim = self._entries.popitem(last=False)
                self._bytes -= victim.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
        return entry

    def drop_task(self, task: str, keep: Collection[int] = ()) -> None:
        """Forget versions of `task` not in `keep` (deleted or no longer routed)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == task and k[1] not in keep]:
                self._bytes -= self._entries.pop(key).nbytes

    def drop(self, key: AdapterKey) -> None:
        """Forget one version (deleted)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry.nbytes
