"""Concurrent writes to the routing, over real HTTP, with two replicas on one real Redis:
whatever order the writes commit in, every replica serves what the store says is routable
(the live version, or a version of the traffic split), and no answer names a version that was
not routable at some moment during its request.
"""

from __future__ import annotations

import random
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


# ---- traffic splits across the two replicas ------------------------------------------------


def put_traffic(client: httpx.Client, url: str, task: str, body: dict) -> httpx.Response:
    return client.put(f"{url}/adapters/{task}/traffic", json=body, headers=AUTH)


def served_by(url: str, task: str, sticky: str | None = None) -> int:
    headers = {"X-Sticky-Key": sticky} if sticky else {}
    r = httpx.post(
        f"{url}/v1/{task}/predict", json={"inputs": "a film"}, headers=headers, timeout=30
    )
    assert r.status_code == 200, r.text
    return r.json()["version"]


def eventually(check, within_s: float = 3.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "the other replica never saw the change"
        time.sleep(0.05)


def test_a_split_set_on_one_replica_routes_the_other(replicas, store, minilm):
    """Set on a, served by b within the hot-swap time; a sticky key gets the same version on
    both replicas (the hash is the same everywhere); an abort on a ends it on b."""
    a, b = replicas
    task = "spread"
    for seed in (1, 2):
        store.publish(task, *artifact_bytes(task, SMALL, minilm, seed=seed), make_live=seed == 1)
    assert served_by(b.url, task) == 1  # b caches the task
    with httpx.Client(timeout=30) as client:
        assert put_traffic(client, a.url, task, {"split": {"2": 100}}).status_code == 200
        eventually(lambda: served_by(b.url, task) == 2)
        assert put_traffic(client, a.url, task, {"split": {"1": 50, "2": 50}}).status_code == 200
        eventually(lambda: {served_by(b.url, task) for _ in range(12)} == {1, 2})
        for key in (f"user-{i}" for i in range(6)):
            assert served_by(a.url, task, key) == served_by(b.url, task, key)
        assert client.post(f"{a.url}/adapters/{task}/abort", headers=AUTH).status_code == 200
    eventually(lambda: {served_by(b.url, task) for _ in range(6)} == {1})


def test_concurrent_traffic_changes_serialize(replicas, store, minilm):
    """Six splits written at once through both replicas: each commits at its own generation,
    one after another, and the last one committed is the split that stands. With the same
    if_generation, exactly one wins and the others get 409 (no lost update)."""
    a, b = replicas
    task = "serial"
    for seed in (1, 2, 3):
        store.publish(task, *artifact_bytes(task, SMALL, minilm, seed=seed), make_live=seed == 1)
    splits = [{"1": 100 - w, "2": w} for w in (10, 20, 30, 40, 50, 60)]
    start = threading.Barrier(len(splits))

    def send(i: int, body_of) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            start.wait()
            return put_traffic(client, (a.url, b.url)[i % 2], task, body_of(i))

    with ThreadPoolExecutor(len(splits)) as pool:
        answers = list(pool.map(lambda i: send(i, lambda i: {"split": splits[i]}), range(6)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    generations = sorted(r.json()["generation"] for r in answers)
    assert generations == list(range(generations[0], generations[0] + 6))
    last = max(answers, key=lambda r: r.json()["generation"]).json()["split"]
    assert httpx.get(f"{b.url}/adapters/{task}/traffic", timeout=30).json()["split"] == last
    seen = httpx.get(f"{a.url}/adapters/{task}/traffic", timeout=30).json()["generation"]
    conditional = [{"split": {"1": 50, "3": 50}, "if_generation": seen}] * 6
    with ThreadPoolExecutor(len(splits)) as pool:
        answers = list(pool.map(lambda i: send(i, lambda i: conditional[i]), range(6)))
    assert sorted(r.status_code for r in answers) == [200] + [409] * 5, [r.text for r in answers]


def test_promote_under_traffic_never_serves_outside_the_split_or_after_it(replicas, store, minilm):
    """Predicts run on both replicas while a promotes the canary: every answer names a version
    of the split; on a, every request started after the promote returned names the promoted
    one, and so does b within the hot-swap time."""
    a, b = replicas
    task = "promote"
    for seed in (1, 2, 3):
        store.publish(task, *artifact_bytes(task, SMALL, minilm, seed=seed), make_live=seed == 1)
    with httpx.Client(timeout=30) as client:
        assert put_traffic(client, a.url, task, {"split": {"1": 50, "2": 50}}).status_code == 200
    for url in (a.url, b.url):
        eventually(lambda url=url: {served_by(url, task) for _ in range(12)} == {1, 2})
    answers: list[tuple[str, float, int]] = []  # (replica, start, version)
    failures: list[str] = []
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                r = client.post(f"{url}/v1/{task}/predict", json={"inputs": "a film"})
                if r.status_code != 200:
                    failures.append(r.text)
                    return
                answers.append((url, started, r.json()["version"]))

    threads = [threading.Thread(target=hammer, args=(u,)) for u in (a.url, b.url) * 2]
    for t in threads:
        t.start()
    time.sleep(0.5)
    r = httpx.post(f"{a.url}/adapters/{task}/promote", json={"version": 2}, headers=AUTH)
    promoted = time.monotonic()
    assert r.status_code == 200 and r.json()["split"] is None, r.text
    time.sleep(2.5)
    stop.set()
    for t in threads:
        t.join(30)
    assert not failures
    assert {v for _, _, v in answers} <= {1, 2}  # never 3, which was never routable
    after_on_a = [v for url, t, v in answers if url == a.url and t > promoted]
    assert after_on_a and set(after_on_a) == {2}
    late_on_b = [v for url, t, v in answers if url == b.url and t > promoted + 1.5]
    assert late_on_b and set(late_on_b) == {2}


def test_answers_name_a_version_routable_during_the_request(replicas, store, minilm):
    """The consistency probe: random routing changes (splits, promotes, aborts, rollbacks)
    from one writer while readers predict on the same replica. Each answer's version must be
    routable in some routing state in effect at a moment between the request's start and end
    (a state is in effect from the start of its write to the end of the next one)."""
    a, _ = replicas
    task = "probe"
    for seed in (1, 2, 3, 4):
        store.publish(task, *artifact_bytes(task, SMALL, minilm, seed=seed), make_live=seed == 1)
    rng = random.Random(7)
    states: list[tuple[float, float, frozenset[int]]] = []  # (write start, write end, routable)
    answers: list[tuple[float, float, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def routable(body: dict) -> frozenset[int]:
        split = body["split"]
        return frozenset(int(v) for v in split) if split else frozenset({body["live_version"]})

    def write(client: httpx.Client) -> None:
        base = f"{a.url}/adapters/{task}"
        versions = rng.sample([1, 2, 3, 4], 2)
        kind = rng.choice(["split", "split", "promote", "abort", "rollback"])
        started = time.monotonic()
        if kind == "split":
            w = rng.randrange(0, 101)
            r = client.put(
                f"{base}/traffic",
                json={"split": {str(versions[0]): w, str(versions[1]): 100 - w}},
                headers=AUTH,
            )
        elif kind == "promote":
            split = client.get(f"{base}/traffic").json()["split"]
            version = int(rng.choice(list(split))) if split else versions[0]
            r = client.post(f"{base}/promote", json={"version": version}, headers=AUTH)
        elif kind == "abort":
            r = client.post(f"{base}/abort", headers=AUTH)
        else:
            r = client.post(f"{base}/rollback", json={"version": versions[0]}, headers=AUTH)
            r = client.get(f"{base}/traffic") if r.status_code == 200 else r
        assert r.status_code == 200, r.text
        states.append((started, time.monotonic(), routable(r.json())))

    def read() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                r = client.post(f"{a.url}/v1/{task}/predict", json={"inputs": "a film"})
                if r.status_code != 200:
                    failures.append(r.text)
                    return
                answers.append((started, time.monotonic(), r.json()["version"]))

    with httpx.Client(timeout=30) as client:
        first = client.get(f"{a.url}/adapters/{task}/traffic").json()
        states.append((0.0, time.monotonic(), routable(first)))
        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for _ in range(25):
            write(client)
            time.sleep(0.05)
        stop.set()
        for t in readers:
            t.join(30)
    assert not failures and len(answers) > 25
    ends = [end for _, end, _ in states[1:]] + [float("inf")]
    for started, ended, version in answers:
        assert any(
            version in versions and s_start <= ended and started <= until
            for (s_start, _, versions), until in zip(states, ends)
        ), f"version {version} answered at [{started}, {ended}] was never routable then"
