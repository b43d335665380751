"""A fixed pool of adapter slots with LRU eviction under a byte budget, and pinning."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.artifact import Artifact
from adapters.bank import TaskBank

AdapterKey = tuple[str, int]  # (task, version)


@dataclass
class Resident:
    """An adapter living in a bank slot; `refs` pins it while requests use it."""

    key: AdapterKey
    slot: int
    artifact: Artifact
    nbytes: int
    refs: int = 0
    retired: bool = False  # a newer version went live: free as soon as refs drop to 0
    label_names: list[str] = field(default_factory=list)


class PoolFullError(RuntimeError):
    """Every slot is pinned by in-flight requests (or the adapter exceeds the byte budget)."""


class AdapterPool:
    """Owns the bank. Lookups pin; eviction only takes unpinned residents, least recent first."""

    def __init__(
        self,
        bank: TaskBank,
        max_bytes: int,
        on_evict: Callable[[Resident], None] | None = None,
    ) -> None:
        self.bank = bank
        self.max_bytes = max_bytes
        self.on_evict = on_evict
        self._lru: OrderedDict[AdapterKey, Resident] = OrderedDict()
        self._free = list(range(bank.slots))[::-1]
        self._lock = threading.Lock()

    @property
    def resident_bytes(self) -> int:
        return sum(r.nbytes for r in self._lru.values())

    def __len__(self) -> int:
        return len(self._lru)

    def keys(self) -> list[AdapterKey]:
        with self._lock:
            return list(self._lru)

    def acquire(self, key: AdapterKey) -> Resident | None:
        """Pin and return the resident adapter for `key`, or None on a miss."""
        with self._lock:
            resident = self._lru.get(key)
            if resident is None:
                return None
            resident.retired = False  # the resolver only asks for the live version
            self._lru.move_to_end(key)
            resident.refs += 1
            return resident

    def insert(self, key: AdapterKey, artifact: Artifact) -> Resident:
        """Write `artifact` into a slot (evicting if needed) and return it pinned."""
        nbytes = artifact.nbytes
        if nbytes > self.max_bytes:
            raise PoolFullError(
                f"adapter needs {nbytes} bytes, the pool budget is {self.max_bytes}"
            )
        with self._lock:
            existing = self._lru.get(key)
            if existing is not None:  # loaded meanwhile by another request
                existing.refs += 1
                existing.retired = False
                self._lru.move_to_end(key)
                return existing
            self._make_room(nbytes)
            slot = self._free.pop()
            # The slot is free, so no batch reads it while we write.
            self.bank.write(slot, artifact.config, artifact.weights)
            resident = Resident(
                key=key,
                slot=slot,
                artifact=artifact,
                nbytes=nbytes,
                refs=1,
                label_names=list(artifact.manifest.label_names),
            )
            self._lru[key] = resident
            return resident

    def release(self, resident: Resident) -> None:
        with self._lock:
            resident.refs -= 1
            if resident.retired and resident.refs <= 0:
                self._drop(resident)

    def retire_task(self, task: str, keep_version: int | None = None) -> None:
        """Versions of `task` other than `keep_version` go away once no request uses them."""
        with self._lock:
            for resident in list(self._lru.values()):
                if resident.key[0] != task or resident.key[1] == keep_version:
                    continue
                resident.retired = True
                if resident.refs <= 0:
                    self._drop(resident)

    def _make_room(self, nbytes: int) -> None:
        while not self._free or self.resident_bytes + nbytes > self.max_bytes:
            victim = next((r for r in self._lru.values() if r.refs <= 0), None)
            if victim is None:
                raise PoolFullError("every adapter slot is in use by in-flight requests")
            self._drop(victim)

    def _drop(self, resident: Resident) -> None:
        if self._lru.pop(resident.key, None) is None:
            return
        self.bank.clear(resident.slot)
        self._free.append(resident.slot)
        if self.on_evict is not None:
            self.on_evict(resident)
