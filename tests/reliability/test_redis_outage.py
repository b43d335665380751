"""Redis goes away under load and comes back: resident adapters keep serving, everything that
needs the store fails fast with 503, and the service recovers by itself (no restart).

Two outages, each run once (module fixtures) and then checked by several tests: Redis stopped
(SHUTDOWN SAVE, connections refused) and restarted on the same data, and Redis frozen
(SIGSTOP: connections hang, only timeouts tell) and resumed.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.reliability.harness import (
    AUTH,
    task_artifact,
    upload_files,
)

pytestmark = [pytest.mark.service, pytest.mark.slow]
FAST_FAIL_S = 5.0  # the longest any request may take while Redis is away
PROBES = ("readyz", "hot_predict", "miss_predict", "upload", "list")


@pytest.fixture(scope="module")
def hot(slot, minilm) -> str:
    """A task predicted once, so its adapter is resident."""
    url = slot.get().url
    files = upload_files(*task_artifact(minilm, "hot"))
    assert httpx.put(f"{url}/adapters", files=files, headers=AUTH).status_code == 201
    assert httpx.post(f"{url}/v1/hot/predict", json={"inputs": "warm"}).status_code == 200
    return "hot"


class Hammer:
    """`clients` threads predicting one task until stopped (each at most `limit` requests);
    records (start time, seconds, status) of every request."""

    def __init__(self, url: str, task: str, clients: int, limit: int = 2000) -> None:
        self.url, self.task, self.limit = url, task, limit
        self.calls: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for _ in range(self.limit):
                if self._stop.is_set():
                    return
                started = time.monotonic()
                r = client.post(f"/v1/{self.task}/predict", json={"inputs": ["fine", "bad"]})
                self.calls.append((started, time.monotonic() - started, r.status_code))

    def statuses(self) -> Counter[int]:
        return Counter(status for _, _, status in self.calls)

    def latencies_between(self, start: float, end: float) -> list[float]:
        return [took for at, took, _ in self.calls if start <= at < end]


def timed(call: Callable[[], httpx.Response]) -> tuple[int, float, str]:
    started = time.monotonic()
    response = call()
    return response.status_code, time.monotonic() - started, response.text[:200]


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> float | None:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            return None
        time.sleep(0.1)
    return time.monotonic() - started


def run_outage(url: str, minilm, cold: str, outage, restore, clients: int) -> dict:
    """Upload `cold` (never predicted: not resident); hammer `hot` from `clients` threads;
    `outage()`; probe every kind of request; `restore()`; probe recovery. Returns figures."""
    files = upload_files(*task_artifact(minilm, cold, 1))
    assert httpx.put(f"{url}/adapters", files=files, headers=AUTH).status_code == 201
    new_files = upload_files(*task_artifact(minilm, cold, 2))
    figures: dict = {}
    with Hammer(url, "hot", clients) as hammer, httpx.Client(base_url=url, timeout=30) as client:
        time.sleep(0.5)
        outage()
        down_at = time.monotonic()
        time.sleep(0.5)  # past the live-version TTL
        probes = {
            "readyz": lambda: client.get("/readyz"),
            "hot_predict": lambda: client.post("/v1/hot/predict", json={"inputs": "still"}),
            "miss_predict": lambda: client.post(f"/v1/{cold}/predict", json={"inputs": "x"}),
            "upload": lambda: client.put("/adapters", files=new_files, headers=AUTH),
            "list": lambda: client.get("/adapters"),
        }
        with ThreadPoolExecutor(len(probes)) as pool:  # concurrently: each may wait a timeout
            futures = {name: pool.submit(timed, call) for name, call in probes.items()}
            figures["down"] = {name: future.result() for name, future in futures.items()}
        figures["healthz_down"] = client.get("/healthz").status_code
        time.sleep(1.0)  # the hammer keeps going through the outage
        up_at = time.monotonic()
        restore()
        figures["ready_after_s"] = wait_until(lambda: client.get("/readyz").status_code == 200, 15)
        figures["miss_served_after_s"] = wait_until(
            lambda: client.post(f"/v1/{cold}/predict", json={"inputs": "x"}).status_code == 200,
            10,
        )
        up = client.put("/adapters", files=new_files, headers=AUTH)
        figures["upload_after"] = up.status_code
        r = client.post(f"/v1/{cold}/predict", json={"inputs": "new version"})
        figures["new_version_served"] = (
            r.status_code == 200 and up.status_code == 201
        ) and r.json()["version"] == up.json()["version"]
        time.sleep(0.3)
    figures["hot_statuses"] = dict(hammer.statuses())
    figures["hot_during_outage_s"] = hammer.latencies_between(down_at, up_at)
    return figures


@pytest.fixture(scope="module")
def frozen(slot, redis_server, hot, minilm) -> dict:
    try:
        return run_outage(
            slot.get().url, minilm, "cold-frozen", redis_server.freeze, redis_server.thaw, 3
        )
    finally:
        redis_server.thaw()


@pytest.fixture(scope="module")
def stopped(slot, redis_server, hot, minilm) -> dict:
    try:
        return run_outage(
            slot.get().url, minilm, "cold-stopped", redis_server.halt, redis_server.start, 4
        )
    finally:
        if not redis_server.server.running:
            redis_server.start()


def check_outage(figures: dict) -> None:
    down = figures["down"]
    expected = {"readyz": 503, "hot_predict": 200, "miss_predict": 503, "upload": 503}
    expected["list"] = 503
    for probe, status in expected.items():
        got, took, body = down[probe]
        assert got == status, (probe, body)
        assert took < FAST_FAIL_S, f"{probe} took {took:.1f}s while Redis was away"
    assert '"store_unavailable"' in down["miss_predict"][2]
    assert '"store_unavailable"' in down["upload"][2]
    assert figures["healthz_down"] == 200
    assert set(figures["hot_statuses"]) == {200}, figures["hot_statuses"]
    assert figures["hot_during_outage_s"], "no prediction was served during the outage"


def check_recovery(figures: dict) -> None:
    assert figures["ready_after_s"] is not None, "/readyz never 200 again"
    assert figures["miss_served_after_s"] is not None, "cache misses never served again"
    assert figures["upload_after"] == 201
    assert figures["new_version_served"]


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
def test_resident_adapters_serve_and_the_rest_fails_fast(outage, request):
    figures = request.getfixturevalue(outage)
    check_outage(figures)
    latencies = figures["hot_during_outage_s"]
    print(
        f"redis {outage}: {len(latencies)} resident predictions served during the outage, "
        f"max {max(latencies):.2f}s; probes {figures['down']}"
    )


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
def test_recovers_without_restart(outage, request):
    figures = request.getfixturevalue(outage)
    check_recovery(figures)
    print(f"redis {outage}: ready again {figures['ready_after_s']:.2f}s after it came back")


@pytest.mark.xfail(
    strict=True,
    reason="resolver re-asks a hung Redis on every request once the live TTL has passed "
    "(2 s socket timeout each, on a 6-thread executor); see docs/reliability.md",
)
def test_frozen_redis_does_not_slow_resident_predictions(frozen):
    """While Redis hangs, a resident adapter's prediction should not wait for Redis at all
    (beyond one probe per TTL). Today nearly every one waits the 2 s socket timeout."""
    latencies = frozen["hot_during_outage_s"]
    slow = [t for t in latencies if t > 1.0]
    assert len(slow) <= max(2, len(latencies) // 10), (
        f"{len(slow)}/{len(latencies)} resident predictions took > 1 s "
        f"(median {statistics.median(latencies):.2f}s)"
    )
