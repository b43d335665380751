"""`build_tiers`, the one wiring of pool, host tier, loader, resolver and router, on a real Redis: a
miss loads from the store, an adapter the bank evicts is counted and kept in the host tier, and
its next miss is a host copy, not a fetch."""

from __future__ import annotations

import pytest

from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.engine.lifecycle.routing import Target
from service.engine.lifecycle.tiers import build_tiers
from service.metrics import Metrics
from service.store import AdapterStore, RedisBlobStore, make_client

pytestmark = [pytest.mark.service]


def test_built_tiers_load_evict_into_the_host_tier_and_copy_back(redis_server, tiny_bert):
    client = make_client(redis_server.url)
    store = AdapterStore(client, RedisBlobStore(client), prefix="tiers-builder")
    for i, task in enumerate(("first", "second")):
        store.publish(task, *artifact_bytes(task, MethodConfig.preset("apl"), tiny_bert, seed=i))
    metrics = Metrics()
    bank = TaskBank.allocate(1, tiny_bert.dims, BankSizes(), lazy=True)
    tiers = build_tiers(store, tiny_bert, metrics, bank, host_bytes=2**30)
    assert tiers.bank is bank and tiers.loader.pool is tiers.pool
    assert tiers.resolver.loader is tiers.loader and tiers.loader.host is tiers.host
    assert tiers.router.resolver is tiers.resolver and tiers.router.loader is tiers.loader

    def load(task: str) -> None:
        resident = tiers.router.acquire(Target(task))
        assert resident.key == (task, 1) and resident.manifest.task == task
        tiers.router.release(resident)

    sample = metrics.registry.get_sample_value
    source = "unipelt_adapter_load_source_seconds_count"
    load("first")
    tiers.host.drop_task("first")  # the host tier lost it: the eviction must read it back
    load("second")  # one slot: evicts "first" into the host tier
    assert sample("unipelt_adapter_cache_evictions_total") == 1
    assert tiers.host.get(("first", 1)) is not None
    load("first")  # a host copy, not a store fetch
    assert sample(source, {"source": "store"}) == 2
    assert sample(source, {"source": "host"}) == 1
    client.close()
