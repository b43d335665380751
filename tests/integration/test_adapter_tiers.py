"""The tiered pool over real HTTP: two uvicorn replicas on one real Redis, real MiniLM.

A pool sized by bytes (refused at startup when too small), the versions each replica holds,
bank misses served by the host tier without a store fetch, and new versions warmed in the
background so the first request after a hot swap is a hit on every replica."""

from __future__ import annotations

import time

import httpx
import pytest

from adapters.config import MethodConfig
from harness.service_process import start_service, upload
from harness.tasks import artifact_bytes
from service.store.embedded import start_embedded_redis

pytestmark = [pytest.mark.service, pytest.mark.slow]
APL = MethodConfig.preset("apl", lora_r=8, bottleneck=48, prefix_length=10)
SLOTS = 3


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    redis = start_embedded_redis(tmp_path_factory.mktemp("redis"))
    env = {"REDIS_URL": redis.url, "UNIPELT_POOL_SLOTS": str(SLOTS), "UNIPELT_BATCH_WINDOW_MS": "2"}
    services = [start_service(tmp_path_factory.mktemp(name), env) for name in ("a", "b")]
    yield services
    for s in services:
        s.stop()
    redis.stop()


def predict(url: str, task: str, text: str = "a fine film") -> dict:
    r = httpx.post(f"{url}/v1/{task}/predict", json={"inputs": text}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def metric(url: str, name: str) -> float:
    """The value of one sample line of /metrics (0 when absent)."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def put(url: str, task: str, minilm, seed: int) -> int:
    r = upload(url, *artifact_bytes(task, APL, minilm, seed=seed))
    assert r.status_code == 201, r.text
    return r.json()["version"]


def test_budget_too_small_for_one_adapter_is_refused_at_startup(tmp_path):
    with pytest.raises(RuntimeError, match=r"UNIPELT_POOL_MAX_BYTES=100000 cannot hold one"):
        start_service(tmp_path / "small", {"UNIPELT_POOL_MAX_BYTES": "100000"}, timeout_s=60)


def test_over_limit_upload_names_the_setting(replicas, minilm):
    r = upload(
        replicas[0].url, *artifact_bytes("wide", MethodConfig.preset("l", lora_r=32), minilm)
    )
    assert r.status_code == 422 and "UNIPELT_POOL_MAX_LORA_RANK" in r.json()["detail"]


def test_readyz_and_adapter_status_show_the_pool(replicas, minilm):
    a, b = replicas
    pool = httpx.get(f"{a.url}/readyz").json()["pool"]
    assert pool["slots"] == SLOTS and pool["slot_bytes"] * SLOTS <= pool["budget_bytes"]
    version = put(a.url, "status", minilm, seed=1)
    assert httpx.get(f"{a.url}/adapters/status").json()["resident_versions"] == []
    predict(a.url, "status")
    assert httpx.get(f"{a.url}/adapters/status").json()["resident_versions"] == [version]
    assert httpx.get(f"{b.url}/adapters/status").json()["resident_versions"] == []


def test_bank_misses_are_served_by_the_host_tier(replicas, minilm):
    _, b = replicas
    tasks = [f"host-{i}" for i in range(SLOTS + 1)]  # one more than the bank holds
    for i, task in enumerate(tasks):
        put(replicas[0].url, task, minilm, seed=10 + i)
    store_before = metric(b.url, 'unipelt_adapter_load_source_seconds_count{source="store"}')
    host_before = metric(b.url, 'unipelt_adapter_load_source_seconds_count{source="host"}')
    first = {task: predict(b.url, task)["predictions"] for task in tasks}
    for _ in range(2):  # cycling 4 tasks through 3 slots: every request misses the bank
        for task in tasks:
            assert predict(b.url, task)["predictions"] == first[task]
    store = metric(b.url, 'unipelt_adapter_load_source_seconds_count{source="store"}')
    host = metric(b.url, 'unipelt_adapter_load_source_seconds_count{source="host"}')
    assert store - store_before == len(tasks)  # each fetched and parsed once
    assert host - host_before == 2 * len(tasks)  # every later miss was a copy


def test_new_version_is_warm_on_every_replica_before_the_swap(replicas, minilm):
    a, b = replicas
    v1 = put(a.url, "swap", minilm, seed=20)
    for s in replicas:
        assert predict(s.url, "swap")["version"] == v1  # both replicas hold it
    misses = [metric(s.url, "unipelt_adapter_cache_misses_total") for s in replicas]
    v2 = put(a.url, "swap", minilm, seed=21)
    assert predict(a.url, "swap")["version"] == v2  # the uploading replica: at once
    started = time.monotonic()
    while predict(b.url, "swap")["version"] != v2:
        assert time.monotonic() - started < 1.0, "replica B did not switch within 1 s"
        time.sleep(0.005)
    after = [metric(s.url, "unipelt_adapter_cache_misses_total") for s in replicas]
    assert after == misses  # the first request after the swap was a hit on both
    assert metric(b.url, 'unipelt_warm_loads_total{result="loaded"}') >= 1
    for s in replicas:
        status = httpx.get(f"{s.url}/adapters/swap").json()
        assert status["resident_versions"] == [v2]  # the old version left the bank
