"""The host tier: validated, parsed adapters in host memory, LRU under a byte budget.

It sits between the device bank and the store: a bank miss that hits here is one copy into a
slot, with no fetch, checksum or parse. Entries are immutable; eviction only drops the
cache's reference, so a copy already under way keeps its tensors. On a CUDA device the
tensors are pinned, so the copy into the bank is a direct DMA; with a half-precision bank they
are kept in that precision (what the slot would hold anyway), at half the host memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from adapters.manifest import Manifest

AdapterKey = tuple[str, int]


@dataclass(frozen=True)
class HostAdapter:
    key: AdapterKey
    manifest: Manifest
    weights: dict[str, Tensor]
    nbytes: int


class HostCache:
    def __init__(
        self, max_bytes: int, pin: bool = False, dtype: torch.dtype = torch.float32
    ) -> None:
        self.max_bytes = max_bytes
        self.pin = pin
        self.dtype = dtype  # the bank's: wider tensors are narrowed here, as the slot write would
        self._entries: OrderedDict[AdapterKey, HostAdapter] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: AdapterKey) -> HostAdapter | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: AdapterKey, manifest: Manifest, weights: dict[str, Tensor]) -> HostAdapter:
        """Keep the adapter (evicting least recent ones); one larger than the whole budget is
        returned but not kept."""
        weights = {k: _host_tensor(t, self.pin, self.dtype) for k, t in weights.items()}
        entry = HostAdapter(key, manifest, weights, sum(_nbytes(t) for t in weights.values()))
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

    def drop_task(self, task: str, keep_version: int | None = None) -> None:
        """Forget versions of `task` other than `keep_version` (deleted or superseded)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == task and k[1] != keep_version]:
                self._bytes -= self._entries.pop(key).nbytes


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


def _host_tensor(t: Tensor, pin: bool, dtype: torch.dtype) -> Tensor:
    t = t.detach().cpu()
    if t.is_floating_point() and t.element_size() > dtype.itemsize:
        t = t.to(dtype)
    t = t.contiguous()
    return t.pin_memory() if pin else t
