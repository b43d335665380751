"""Fill the device bank from the host tier, and the host tier from the store.

A bank miss is served by the host tier when it can (copies into a slot), otherwise by a store
fetch, checksum and full validation, whose slot image the host tier then keeps. One load
per adapter at a time: concurrent misses of the same version wait for the first. An adapter
evicted from the bank becomes the host tier's most recent entry (read back from its slot if
the host tier had dropped it), so the host tier holds what left the bank last, and its next
miss is a copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection

from torch import Tensor

from adapters.artifact import parse_artifact
from adapters.backbone import Backbone
from adapters.manifest import Manifest
from adapters.slot_image import prepare_image, read_image
from service.engine.lifecycle.host_tier import HostAdapter, HostCache
from service.engine.lifecycle.keys import AdapterKey
from service.engine.lifecycle.pool import AdapterPool, Resident
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore

log = logging.getLogger("unipelt.loader")


class AdapterLoader:
    def __init__(
        self,
        store: AdapterStore,
        pool: AdapterPool,
        host: HostCache,
        backbone: Backbone,
        metrics: Metrics,
    ) -> None:
        self.store, self.pool, self.host = store, pool, host
        self.backbone, self.metrics = backbone, metrics
        self._lock = threading.Lock()
        self._loading: dict[AdapterKey, threading.Lock] = {}

    def acquire(self, key: AdapterKey) -> Resident:
        """A pinned resident for `key`, loading it on a miss. Caller must release it."""
        resident = self.pool.acquire(key)
        if resident is not None:
            self.metrics.cache_hits.inc()
            return resident
        return self._load(key, pin=True, count=True)

    def warm(self, key: AdapterKey) -> None:
        """Make `key` resident without pinning it (a background load)."""
        if key in self.pool:
            return
        self._load(key, pin=False, count=False)

    def preload(self, key: AdapterKey, manifest: Manifest, weights: dict[str, Tensor]) -> None:
        """Keep an adapter validated elsewhere (an upload) in the host tier, and in the bank
        when this replica holds another version of its task."""
        image = prepare_image(self.pool.bank, manifest.method_config, weights, "cpu")
        entry = self.host.put(key, manifest, image)
        if self.pool.resident_versions(key[0]):
            self.pool.insert(key, entry.manifest, entry.image, pin=False)
        self.update_gauges()

    def _load(self, key: AdapterKey, pin: bool, count: bool) -> Resident:
        with self._lock:
            load_lock = self._loading.setdefault(key, threading.Lock())
        try:
            with load_lock:  # one load per key; concurrent misses wait for it
                resident = self.pool.acquire(key) if pin else None
                if resident is not None:
                    self.metrics.cache_hits.inc()
                    return resident
                if count:
                    self.metrics.cache_misses.inc()
                started = time.perf_counter()
                entry, source = self._host_entry(key)
                resident = self.pool.insert(key, entry.manifest, entry.image, pin=pin)
                seconds = time.perf_counter() - started
                self.metrics.adapter_load.observe(seconds)
                self.metrics.adapter_load_by_source.labels(source=source).observe(seconds)
        finally:  # also when the load failed: no lock left behind per failed key
            with self._lock:
                self._loading.pop(key, None)
        self.update_gauges()
        return resident

    def _host_entry(self, key: AdapterKey) -> tuple[HostAdapter, str]:
        entry = self.host.get(key)
        if entry is not None:
            return entry, "host"
        manifest_bytes, weights, digest = self.store.fetch_verified(*key)
        artifact = parse_artifact(manifest_bytes, weights, self.backbone, weights_sha256=digest)
        image = prepare_image(self.pool.bank, artifact.config, artifact.weights, "cpu")
        return self.host.put(key, artifact.manifest, image), "store"

    def loading(self) -> list[AdapterKey]:
        """Adapters whose load into the bank is under way (requests wait for them)."""
        with self._lock:
            return list(self._loading)

    def evicted(self, resident: Resident) -> None:
        """`resident` leaves the bank (its slot still holds it): keep it in the host tier."""
        if self.host.max_bytes <= 0 or self.host.get(resident.key) is not None:
            return  # the lookup made it the host tier's most recent entry
        try:
            image = read_image(self.pool.bank, resident.slot, resident.config, resident.layout)
            self.host.put(resident.key, resident.manifest, image)
        except (RuntimeError, MemoryError) as exc:  # best effort: its next miss is a fetch
            log.warning("could not keep evicted adapter %s v%s: %s", *resident.key, exc)

    def forget(self, task: str, keep: Collection[int] = ()) -> None:
        """Versions of `task` not in `keep` leave both tiers (once unused)."""
        self.pool.retire_task(task, keep)
        self.host.drop_task(task, keep)
        self.update_gauges()

    def forget_version(self, key: AdapterKey) -> None:
        """One version leaves both tiers (once unused): it was deleted."""
        self.pool.retire(key)
        self.host.drop(key)
        self.update_gauges()

    def update_gauges(self) -> None:
        self.metrics.resident_adapters.set(len(self.pool))
        self.metrics.pool_free_slots.set(self.pool.slots - len(self.pool))
        self.metrics.resident_bytes.set(self.pool.resident_bytes)
        self.metrics.host_adapters.set(len(self.host))
        self.metrics.host_bytes.set(self.host.nbytes)
