"""The host tier keeps what the bank evicts, over real HTTP: one uvicorn replica on a real
Redis (seeded through the store API), real MiniLM, a bank and a host tier of two adapters each.

A task that stayed hot in the bank while others were loaded has long left a host tier
ordered by load time; when the bank evicts it, it becomes the host tier's most recent entry
(read back from its slot), so its next request is a copy, not a store fetch."""

from __future__ import annotations

import httpx
import pytest

from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from adapters.slot_image import prepare_image
from harness.service_process import start_service
from harness.tasks import artifact_bytes, random_task
from service.store import AdapterStore, RedisBlobStore, make_client, start_embedded_redis

pytestmark = [pytest.mark.service, pytest.mark.slow]
APL = MethodConfig.preset("apl", lora_r=8, bottleneck=48, prefix_length=10)
STORE = 'unipelt_adapter_load_source_seconds_count{source="store"}'
HOST = 'unipelt_adapter_load_source_seconds_count{source="host"}'


def metrics(url: str) -> dict[str, float]:
    lines = httpx.get(f"{url}/metrics", timeout=10).text.splitlines()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line[:1] != "#"
    }
    return {name: values.get(name, 0.0) for name in (STORE, HOST)}


def predict(url: str, task: str) -> list:
    r = httpx.post(f"{url}/v1/{task}/predict", json={"inputs": "a fine film"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def test_an_adapter_evicted_from_the_bank_is_a_host_hit_next(tmp_path, minilm):
    redis = start_embedded_redis(tmp_path / "redis")
    client = make_client(redis.url)
    service = None
    try:
        store = AdapterStore(client, RedisBlobStore(client))
        tasks = [f"victim-{i}" for i in range(4)]
        for i, task in enumerate(tasks):
            store.publish(task, *artifact_bytes(task, APL, minilm, seed=30 + i))
        bank = TaskBank.allocate(1, minilm.dims, BankSizes(), lazy=True)
        size = prepare_image(bank, APL, random_task(APL, minilm, 2), "cpu").nbytes
        env = {
            "REDIS_URL": redis.url,
            "UNIPELT_POOL_SLOTS": "2",
            "UNIPELT_HOST_CACHE_BYTES": str(2 * size + size // 2),  # two adapters
        }
        service = start_service(tmp_path / "service", env)
        url = service.url
        hot, first = tasks[0], predict(service.url, tasks[0])
        for task in (tasks[1], hot, tasks[2], tasks[3]):  # the bank evicts tasks[1], then hot
            predict(url, task)
        assert httpx.get(f"{url}/adapters/{hot}").json()["resident_versions"] == []
        before = metrics(url)
        assert predict(url, hot) == first  # the copy read back from the slot is exact
        after = metrics(url)
        assert after[HOST] - before[HOST] == 1 and after[STORE] == before[STORE]
        assert before[STORE] == 4  # each task fetched once
    finally:
        if service is not None:
            service.stop()
        client.close()
        redis.stop()
