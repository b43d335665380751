"""A fleet: the shipped HAProxy config in front of 3 real replicas on one real Redis.

Which replica answered is read from each response's X-Unipelt-Replica header. Health checks
run every 200 ms here (2 s shipped). The tests run in file order: the last kills a replica.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import httpx
import pytest

from adapters.config import MethodConfig
from harness.fleet import Fleet, start_fleet
from harness.haproxy_process import HAProxyProcess, haproxy_binary, start_haproxy
from harness.service_process import upload
from harness.tasks import artifact_bytes

pytestmark = [
    pytest.mark.service,
    pytest.mark.slow,
    pytest.mark.skipif(
        haproxy_binary() is None,
        reason="haproxy not installed (.ci/run installs Debian's haproxy package)",
    ),
]
TOKEN = "fleet-token"
TASKS = [f"fleet-{i}" for i in range(6)]
HOT = "fleet-hot"
REPLICA = "x-unipelt-replica"
BODY = {"inputs": "a fine, quiet film"}
CFG = MethodConfig.preset("l", lora_r=4)


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory) -> Fleet:
    env = {
        "UNIPELT_API_TOKEN": TOKEN,
        "UNIPELT_POOL_SLOTS": "8",
        "UNIPELT_HOST_CACHE_BYTES": str(32 * 2**20),
        "UNIPELT_BATCH_WINDOW_MS": "2",
    }
    fleet = start_fleet(tmp_path_factory.mktemp("fleet"), 3, redis_server.url, env)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def lb(fleet, minilm, tmp_path_factory) -> HAProxyProcess:
    balancer = start_haproxy(tmp_path_factory.mktemp("haproxy"), fleet.addresses())
    for seed, task in enumerate([*TASKS, HOT]):  # uploads through the balancer
        r = upload(balancer.url, *artifact_bytes(task, CFG, minilm, seed=seed), token=TOKEN)
        assert r.status_code == 201, r.text
    yield balancer
    balancer.stop()


def predict(url: str, task: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/{task}/predict", json=BODY, timeout=60)


def owner(url: str, task: str, times: int = 3) -> str:
    """The one replica that answers `task`'s sequential requests (fails if several do)."""
    answers = set()
    for _ in range(times):
        r = predict(url, task)
        assert r.status_code == 200, r.text
        answers.add(r.headers[REPLICA])
    assert len(answers) == 1, f"{task} answered by {answers}"
    return answers.pop()


def residents(fleet: Fleet, name: str) -> set[str]:
    body = httpx.get(f"{fleet.replicas[name].url}/residency", timeout=10).json()
    return {t["task"] for t in body["tasks"] if t["tier"] == "bank"}


def test_a_task_stays_on_one_replica(fleet, lb) -> None:
    owners = {task: owner(lb.url, task, times=4) for task in TASKS}
    assert len(set(owners.values())) >= 2, owners  # the ring spreads tasks over the fleet
    for task, name in owners.items():
        holders = {n for n in fleet.replicas if task in residents(fleet, n)}
        assert holders == {name}, f"{task}: served by {name}, resident on {holders}"


async def burst(url: str, task: str, clients: int, each: int) -> Counter:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one_client() -> list[str]:
            out = []
            for _ in range(each):
                r = await client.post(f"/v1/{task}/predict", json=BODY)
                out.append(r.headers.get(REPLICA) if r.status_code == 200 else r.status_code)
            return out

        results = await asyncio.gather(*(one_client() for _ in range(clients)))
    return Counter(a for answers in results for a in answers)


def test_a_hot_task_spreads_under_load(fleet, lb) -> None:
    home = owner(lb.url, HOT)
    answers = asyncio.run(burst(lb.url, HOT, clients=12, each=5))
    assert set(answers) <= set(fleet.replicas), answers  # every request answered 200
    assert len(answers) >= 2, answers  # past the balance factor it spilled to the next
    assert home in answers, (home, answers)  # the ring's replica keeps its share
    assert owner(lb.url, TASKS[0]) == owner(lb.url, TASKS[0])  # cold tasks did not move


def test_uploads_through_any_replica_are_served_through_the_balancer(fleet, lb, minilm) -> None:
    uploads = {f"direct-{name}": fleet.replicas[name].url for name in fleet.replicas}
    for seed, (task, url) in enumerate(uploads.items(), start=100):
        r = upload(url, *artifact_bytes(task, CFG, minilm, seed=seed), token=TOKEN)
        assert r.status_code == 201, r.text
    for task in uploads:
        r = predict(lb.url, task)
        assert r.status_code == 200 and r.json()["version"] == 1, r.text
    # A new version uploaded to a replica that is not the task's owner reaches the owner.
    task = TASKS[1]
    home = owner(lb.url, task)
    other = next(name for name in fleet.replicas if name != home)
    r = upload(fleet.replicas[other].url, *artifact_bytes(task, CFG, minilm, seed=7), token=TOKEN)
    assert r.status_code == 201 and r.json()["version"] == 2, r.text
    deadline = time.monotonic() + 10
    while (answer := predict(lb.url, task)).json()["version"] != 2:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)
    assert answer.headers[REPLICA] == home


async def traffic(url: str, tasks: list[str], workers: int, seconds: float) -> list:
    """(task, status or error, replica) of every request `workers` clients sent in turn."""
    log: list = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker(offset: int) -> None:
            n = offset
            while time.monotonic() < stop:
                task = tasks[n % len(tasks)]
                n += 1
                try:
                    r = await client.post(f"/v1/{task}/predict", json=BODY)
                    log.append((task, r.status_code, r.headers.get(REPLICA)))
                except httpx.TransportError as exc:
                    log.append((task, type(exc).__name__, None))

        await asyncio.gather(*(worker(i) for i in range(workers)))
    return log


def test_a_killed_replica_leaves_the_ring_and_its_tasks_move(fleet, lb) -> None:
    before = {task: owner(lb.url, task) for task in TASKS}
    victim = before[TASKS[0]]
    workers = 4

    async def kill_mid_traffic() -> list:
        running = asyncio.create_task(traffic(lb.url, TASKS, workers, seconds=5))
        await asyncio.sleep(1.5)
        fleet.replicas[victim].process.send_signal(signal.SIGKILL)
        return await running

    log = asyncio.run(kill_mid_traffic())
    failed = [entry for entry in log if entry[1] != 200]
    assert len(log) > 20, log
    assert len(failed) <= workers, failed  # at most those in flight on it (retries cover them)
    lb.wait_until({victim: "DOWN"}, timeout_s=5)
    survivors = set(fleet.replicas) - {victim}
    assert lb.server_states() == {**dict.fromkeys(survivors, "UP"), victim: "DOWN"}
    after = {task: owner(lb.url, task) for task in TASKS}
    for task in TASKS:
        if before[task] == victim:
            assert after[task] in survivors, (task, after[task])
        else:
            assert after[task] == before[task], f"{task} moved though its replica lives"
