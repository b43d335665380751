"""Concurrent writes to the live pointer, over real HTTP, with two replicas on one real Redis:
whatever order the writes commit in, every replica serves the version the store says is live.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from adapters.config import MethodConfig
from harness.service_process import start_service
from harness.tasks import artifact_bytes
from service.store.adapter_store import AdapterStore
from service.store.blobs import RedisBlobStore
from service.store.factory import make_client

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "tok"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SMALL = MethodConfig.preset("l", lora_r=2)


@pytest.fixture(scope="module")
def store(redis_server) -> AdapterStore:
    """The replicas' store, written directly to set up many versions quickly."""
    client = make_client(redis_server.url)
    return AdapterStore(client, RedisBlobStore(client))


@pytest.fixture(scope="module")
def replicas(redis_server, tmp_path_factory):
    env = {"REDIS_URL": redis_server.url, "UNIPELT_API_TOKEN": TOKEN}
    a = start_service(tmp_path_factory.mktemp("a"), env)
    b = start_service(tmp_path_factory.mktemp("b"), env)
    yield a, b
    for s in (a, b):
        s.stop()


def live_in_store(url: str, task: str) -> int:
    r = httpx.get(f"{url}/adapters/{task}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["live_version"]


def served(url: str, task: str) -> int:
    r = httpx.post(f"{url}/v1/{task}/predict", json={"inputs": "a film"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["version"]


def assert_serves_live(url: str, task: str, within_s: float = 3.0) -> None:
    """Predicts answer the live version (events may take a moment; the live-cache TTL of
    30 s is far longer than `within_s`, so a wrong version held in a cache fails here)."""
    deadline = time.monotonic() + within_s
    while (live := live_in_store(url, task)) != (answer := served(url, task)):
        assert time.monotonic() < deadline, f"{url}: live is {live}, predicts answer {answer}"
        time.sleep(0.05)


def rollback(client: httpx.Client, url: str, task: str, body: dict) -> httpx.Response:
    return client.post(f"{url}/adapters/{task}/rollback", json=body, headers=AUTH)


def test_concurrent_rollbacks_leave_every_replica_serving_the_live_version(replicas, store, minilm):
    a, b = replicas
    task = "flip"
    for seed in (1, 2):
        store.publish(task, *artifact_bytes(task, SMALL, minilm, seed=seed))
    for url in (a.url, b.url):
        assert_serves_live(url, task)  # both replicas now cache the task
    bodies = [{"version": 1}, {"version": 2}] * 3
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(len(bodies)) as pool:
        for _ in range(40):
            start = threading.Barrier(len(bodies))

            def send(body: dict, start: threading.Barrier = start) -> int:
                start.wait()
                return rollback(client, a.url, task, body).status_code

            assert set(pool.map(send, bodies)) == {200}
            assert_serves_live(a.url, task)
            assert_serves_live(b.url, task)


def test_concurrent_rollbacks_without_a_version_each_go_one_back(replicas, store, minilm):
    """Six `rollback {}` at once from live 20: they serialize on the live pointer, so the
    answers are 19..14 (each one back from the live version it committed against)."""
    a, b = replicas
    task = "back"
    manifest, weights = artifact_bytes(task, SMALL, minilm, seed=3)
    for _ in range(20):
        store.publish(task, manifest, weights)
    assert store.live_version(task) == 20
    start = threading.Barrier(6)

    def send(_: int) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            start.wait()
            return rollback(client, a.url, task, {})

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(send, range(6)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == list(range(14, 20))
    assert store.live_version(task) == 14
    for url in (a.url, b.url):
        assert_serves_live(url, task)
        assert served(url, task) == 14
