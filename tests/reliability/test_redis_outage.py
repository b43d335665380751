"""Redis goes away under load and comes back: resident adapters keep serving, everything that
needs the store fails fast with 503, and the service recovers by itself (no restart).

Two outages, each run once (module fixtures) and then checked by several tests: Redis stopped
(SHUTDOWN SAVE, connections refused) and restarted on the same data, and Redis frozen
(SIGSTOP: connections hang, only timeouts tell) and resumed.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.faults import (
    make_resident,
    outage_problems,
    recovery_problems,
    run_outage,
)

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.fixture(scope="module")
def hot(slot, minilm) -> str:
    """A task predicted once, so its adapter is resident."""
    make_resident(slot.get().url, minilm, "hot")
    return "hot"


@pytest.fixture(scope="module")
def frozen(slot, redis_server, hot, minilm) -> dict:
    try:
        url = slot.get().url
        return run_outage(
            url,
            redis_server.url,
            minilm,
            hot,
            "cold-frozen",
            redis_server.freeze,
            redis_server.thaw,
            3,
        )
    finally:
        redis_server.thaw()


@pytest.fixture(scope="module")
def stopped(slot, redis_server, hot, minilm) -> dict:
    try:
        url = slot.get().url
        return run_outage(
            url,
            redis_server.url,
            minilm,
            hot,
            "cold-stopped",
            redis_server.halt,
            redis_server.start,
            4,
        )
    finally:
        if not redis_server.server.running:
            redis_server.start()


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
def test_resident_adapters_serve_and_the_rest_fails_fast(outage, request):
    figures = request.getfixturevalue(outage)
    assert outage_problems(figures) == []
    latencies = figures["hot_during_outage_s"]
    print(
        f"redis {outage}: {len(latencies)} resident predictions served during the outage, "
        f"max {max(latencies):.2f}s; probes {figures['down']}"
    )


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
def test_recovers_without_restart(outage, request):
    figures = request.getfixturevalue(outage)
    assert recovery_problems(figures) == []
    print(f"redis {outage}: ready again {figures['ready_after_s']:.2f}s after it came back")


def test_frozen_redis_does_not_slow_resident_predictions(frozen):
    """While Redis hangs, a resident adapter's prediction should not wait for Redis at all
    (beyond one probe per TTL). Today nearly every one waits the 2 s socket timeout."""
    latencies = frozen["hot_during_outage_s"]
    slow = [t for t in latencies if t > 1.0]
    assert len(slow) <= max(2, len(latencies) // 10), (
        f"{len(slow)}/{len(latencies)} resident predictions took > 1 s "
        f"(median {statistics.median(latencies):.2f}s)"
    )


def _ended(method: str, url: str, **kwargs) -> tuple[int, float]:
    """(status, monotonic time the answer arrived); 0 for a transport error."""
    try:
        status = httpx.request(method, url, timeout=60, **kwargs).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.monotonic()


def test_a_stalled_store_never_delays_requests_for_resident_adapters(slot, redis_server, hot):
    """With Redis frozen and a dozen requests waiting on it (more than any pool has threads),
    /v1 and /v2 inference, /v2 metadata and fan-out for a resident task are all answered
    before the first store-bound request is: they never queue behind the store."""
    url = slot.get().url
    inference = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["ok"]}]}
    resident_calls = {
        "v1 predict": ("POST", f"{url}/v1/{hot}/predict", {"json": {"inputs": "ok"}}),
        "v2 infer": ("POST", f"{url}/v2/models/{hot}/infer", {"json": inference}),
        "v2 metadata": ("GET", f"{url}/v2/models/{hot}", {}),
        "v2 ready": ("GET", f"{url}/v2/models/{hot}/ready", {}),
        "fan-out": ("POST", f"{url}/v1/predict", {"json": {"tasks": [hot], "inputs": "ok"}}),
    }
    for method, call_url, kwargs in resident_calls.values():  # all resident, all 200
        assert _ended(method, call_url, **kwargs)[0] == 200
    redis_server.freeze()
    try:
        with ThreadPoolExecutor(12) as pool:
            store_bound = [pool.submit(_ended, "GET", f"{url}/adapters/{hot}") for _ in range(12)]
            time.sleep(0.5)  # all of them are inside the service, waiting on Redis
            answered = {name: _ended(m, u, **kw) for name, (m, u, kw) in resident_calls.items()}
            first_store_answer = min(f.result()[1] for f in store_bound)
    finally:
        redis_server.thaw()
    late = {n: s for n, (s, t) in answered.items() if s != 200 or t >= first_store_answer}
    assert not late, f"resident requests that waited behind the store: {late}"
