"""The device tier: a fixed set of bank slots with LRU eviction, and pinning.

Every slot has the same size (the largest adapter the server accepts), so the slot count,
derived from a byte budget at startup (`sizing.size_pool`), is the only bound. A resident
keeps the manifest and config only: its weights live in the bank, nowhere else.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.manifest import Manifest
from adapters.slot_image import ImageLayout, SlotImage, write_image
from service.engine.lifecycle.keys import AdapterKey
from service.errors import PoolFullError


@dataclass
class Resident:
    """An adapter living in a bank slot; `refs` pins it while requests use it."""

    key: AdapterKey
    slot: int
    manifest: Manifest
    config: MethodConfig
    nbytes: int  # the adapter's slot image (the slot itself is always slot-sized)
    layout: ImageLayout  # where the image lies in the slot (to read it back on eviction)
    refs: int = 0
    retired: bool = False  # no longer routed (or deleted): free as soon as refs drop to 0
    label_names: list[str] = field(default_factory=list)


class AdapterPool:
    """Owns the bank. Lookups pin; eviction only takes unpinned residents, least recent first.

    `on_evict` sees each resident evicted to make room, while its slot still holds it (before
    the new adapter is written, outside the lock); retired versions leave without it."""

    def __init__(self, bank: TaskBank, on_evict: Callable[[Resident], None] | None = None) -> None:
        self.bank = bank
        self.on_evict = on_evict
        self._lru: OrderedDict[AdapterKey, Resident] = OrderedDict()
        self._free = list(range(bank.slots))[::-1]
        self._lock = threading.Lock()

    @property
    def slots(self) -> int:
        return self.bank.slots

    @property
    def resident_bytes(self) -> int:
        with self._lock:
            return sum(r.nbytes for r in self._lru.values())

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, key: AdapterKey) -> bool:
        return key in self._lru

    def keys(self) -> list[AdapterKey]:
        with self._lock:
            return list(self._lru)

    def residents(self) -> list[tuple[AdapterKey, int]]:
        """(key, requests pinning it) of every resident, most recently used first."""
        with self._lock:
            return [(key, r.refs) for key, r in reversed(self._lru.items())]

    def resident_versions(self, task: str) -> list[int]:
        """Versions of `task` held in a slot (the live one, plus retiring ones still in use)."""
        with self._lock:
            return sorted(v for t, v in self._lru if t == task)

    def acquire(self, key: AdapterKey) -> Resident | None:
        """Pin and return the resident adapter for `key`, or None on a miss."""
        with self._lock:
            resident = self._lru.get(key)
            if resident is None:
                return None
            resident.retired = False  # asked for: routed, or a pin the store confirmed
            self._lru.move_to_end(key)
            resident.refs += 1
            return resident

    def insert(
        self, key: AdapterKey, manifest: Manifest, image: SlotImage, pin: bool = True
    ) -> Resident:
        """Write the adapter's slot image into a slot (evicting if needed); pinned unless
        `pin` is False.

        The slot write runs outside the lock: the slot is off the free list and in no LRU
        entry, so no batch reads it and no other insert takes it meanwhile."""
        with self._lock:
            existing = self._pin_existing(key, pin)
            if existing is not None:
                return existing
            slot, victim = self._take_slot()
        try:
            if victim is not None and self.on_evict is not None:
                self.on_evict(victim)
            write_image(self.bank, slot, image)
        except BaseException:
            with self._lock:
                self._free.append(slot)
            raise
        resident = Resident(
            key=key,
            slot=slot,
            manifest=manifest,
            config=image.config,
            nbytes=image.nbytes,
            layout=image.layout,
            refs=1 if pin else 0,
            label_names=list(manifest.label_names),
        )
        with self._lock:
            existing = self._pin_existing(key, pin)
            if existing is not None:  # inserted by someone else while we wrote: keep theirs
                self._free.append(slot)
                return existing
            self._lru[key] = resident
        return resident

    def _pin_existing(self, key: AdapterKey, pin: bool) -> Resident | None:
        existing = self._lru.get(key)
        if existing is not None:
            existing.refs += 1 if pin else 0
            existing.retired = False
            self._lru.move_to_end(key)
        return existing

    def release(self, resident: Resident) -> None:
        with self._lock:
            resident.refs -= 1
            if resident.retired and resident.refs <= 0:
                self._drop(resident)

    def retire_task(self, task: str, keep: Collection[int] = ()) -> None:
        """Versions of `task` not in `keep` go away once no request uses them."""
        with self._lock:
            for resident in list(self._lru.values()):
                if resident.key[0] != task or resident.key[1] in keep:
                    continue
                self._retire(resident)

    def retire(self, key: AdapterKey) -> None:
        """`key` goes away once no request uses it (a deleted version)."""
        with self._lock:
            resident = self._lru.get(key)
            if resident is not None:
                self._retire(resident)

    def _retire(self, resident: Resident) -> None:
        resident.retired = True
        if resident.refs <= 0:
            self._drop(resident)

    def _take_slot(self) -> tuple[int, Resident | None]:
        """A free slot, or the least recent unpinned resident's (returned as the victim)."""
        if self._free:
            return self._free.pop(), None
        victim = next((r for r in self._lru.values() if r.refs <= 0), None)
        if victim is None:
            raise PoolFullError("every adapter slot is in use by in-flight requests")
        del self._lru[victim.key]
        return victim.slot, victim

    def _drop(self, resident: Resident) -> None:
        if self._lru.pop(resident.key, None) is None:
            return
        # No request pins it and it is off the LRU: its slot is rewritten in full by the next
        # insert (bank.write zeroes what the new adapter does not use), so no clear here.
        self._free.append(resident.slot)
