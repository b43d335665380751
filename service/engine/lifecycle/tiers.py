"""The one wiring of the adapter tiers: the device pool over a bank, the host tier, the loader
that fills them from the store, the resolver of routings and the router in front. The engine
builds its tiers here, and so do the benchmarks that measure loads without the rest of the
service."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from adapters.backbone import Backbone
from adapters.bank import TaskBank
from service.engine.lifecycle.host_tier import HostCache
from service.engine.lifecycle.loader import AdapterLoader
from service.engine.lifecycle.pool import AdapterPool, Resident
from service.engine.lifecycle.resolver import AdapterResolver
from service.engine.lifecycle.routing import Router
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore

log = logging.getLogger("unipelt.engine")


@dataclass(frozen=True)
class AdapterTiers:
    pool: AdapterPool  # the device tier (owns the bank)
    host: HostCache  # the host tier
    loader: AdapterLoader  # store -> host tier -> bank, one load per version at a time
    resolver: AdapterResolver  # task -> routing (live version, traffic split)
    router: Router  # request -> the version that serves it -> a pinned resident

    @property
    def bank(self) -> TaskBank:
        return self.pool.bank


def build_tiers(
    store: AdapterStore,
    backbone: Backbone,
    metrics: Metrics,
    bank: TaskBank,
    host_bytes: int,
    *,
    pin_host: bool = False,
    live_cache_ttl_s: float = 60.0,
) -> AdapterTiers:
    """Tiers over `bank` with a host tier of `host_bytes` (0: none; `pin_host` pins its memory,
    for CUDA copies). An adapter the bank evicts is counted and kept in the host tier."""
    pool = AdapterPool(bank)
    loader = AdapterLoader(store, pool, HostCache(host_bytes, pin=pin_host), backbone, metrics)

    def evicted(resident: Resident) -> None:
        metrics.cache_evictions.inc()
        log.debug("evicted adapter %s v%s from slot %s", *resident.key, resident.slot)
        loader.evicted(resident)

    pool.on_evict = evicted
    resolver = AdapterResolver(store, loader, metrics, live_cache_ttl_s)
    router = Router(resolver, loader, store, metrics)
    return AdapterTiers(pool, loader.host, loader, resolver, router)
