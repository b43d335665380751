"""The service dies mid-upload (SIGKILL) or is asked to stop (SIGTERM).

SIGKILL lands at a chosen point of the publish sequence (INCR, pending marker, blob writes,
the commit transaction, the events), triggered by a Redis MONITOR: whatever got done, no
version may be half-published and the next process serves the live version. SIGTERM lands
while predictions are queued: every one of them completes with 200 before the process exits.
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time

import httpx
import pytest

from service.store.errors import TaskNotFoundError
from tests.reliability.harness import (
    AUTH,
    KillOnCommand,
    orphan_blob_keys,
    redis_store,
    store_problems,
    task_artifact,
    upload_files,
)

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.kills_service]

# (Redis command, text in its key): the publish sequence of `AdapterStore.publish`, in order.
PUBLISH_STEPS = [
    ("INCR", ":next_version"),
    ("SET", "pending:"),
    ("SET", ":manifest"),
    ("SET", ":weights"),
    ("WATCH", "pending:"),
    ("EXEC", ""),
    ("PUBLISH", "events"),
]
# CI: between the two blob writes (marker and manifest written, nothing indexed) and right
# after the commit (indexed and live, no event sent yet).
CI_STEPS = [("SET", ":manifest"), ("EXEC", "")]


def live_or_none(store, task: str) -> int | None:
    try:
        return store.live_version(task)
    except TaskNotFoundError:
        return None


def kill_mid_upload(slot, redis_server, backbone, task: str, step: tuple[str, str], seed: int):
    """Upload a new version of `task` and SIGKILL the service at `step`. Returns figures."""
    service = slot.get()
    store = redis_store(redis_server.url)
    before = live_or_none(store, task)
    killer = KillOnCommand(redis_server.url, service.process.pid, *step, pause_writes=True)
    response: dict = {}

    def send() -> None:
        files = upload_files(*task_artifact(backbone, task, seed))
        try:
            r = httpx.put(f"{service.url}/adapters", files=files, headers=AUTH, timeout=60)
            response.update(status=r.status_code, body=r.json())
        except httpx.HTTPError as e:
            response["error"] = type(e).__name__

    sender = threading.Thread(target=send)
    sender.start()
    fired = killer.fired.wait(60)
    returncode = service.process.wait(10)
    killer.stop()
    sender.join(60)
    after = live_or_none(store, task)
    return {
        "step": step,
        "fired": fired,
        "returncode": returncode,
        "response": response,
        "before": before,
        "after": after,
        "problems": store_problems(store),
        "orphans": orphan_blob_keys(store),
        "store": store,
    }


def check_no_half_version(figures: dict, slot, task: str) -> None:
    assert figures["fired"], f"{figures['step']} never reached Redis"
    assert figures["returncode"] == -signal.SIGKILL
    assert figures["problems"] == [], figures["problems"]
    before, after, response = figures["before"], figures["after"], figures["response"]
    assert after == before or (after is not None and (before is None or after > before))
    if response.get("status") == 201:  # acknowledged before the kill: must be durable
        assert after == response["body"]["version"]
    store = figures["store"]
    for key in figures["orphans"]:  # blobs of the interrupted version only, never indexed
        assert f":{task}:" in key
    store.gc_orphans(grace_s=0)
    assert orphan_blob_keys(store) == []
    service = slot.get()  # a fresh process on the same store
    r = httpx.post(f"{service.url}/v1/{task}/predict", json={"inputs": "after the crash"})
    if after is None:
        assert r.status_code == 404, r.text
    else:
        assert r.status_code == 200 and r.json()["version"] == after, r.text


@pytest.mark.parametrize("step", CI_STEPS, ids=[f"{c}-{k.strip(':')}" for c, k in CI_STEPS])
def test_sigkill_mid_upload_leaves_no_half_version(slot, redis_server, minilm, step):
    task = f"crash-{step[0].lower()}"
    figures = kill_mid_upload(slot, redis_server, minilm, task, step, seed=0)
    check_no_half_version(figures, slot, task)
    print(
        f"killed after {step}: live {figures['before']} -> {figures['after']}, "
        f"{len(figures['orphans'])} orphan blobs collected"
    )


@pytest.mark.soak
def test_sigkill_at_random_points_of_many_uploads(slot, redis_server, minilm):
    """Repeated kills at random publish steps against one task with prior versions."""
    rng = random.Random(7)
    task = "crash-loop"
    service = slot.get()
    files = upload_files(*task_artifact(minilm, task))
    assert httpx.put(f"{service.url}/adapters", files=files, headers=AUTH).status_code == 201
    outcomes = []
    for i in range(12):
        step = rng.choice(PUBLISH_STEPS)
        figures = kill_mid_upload(slot, redis_server, minilm, task, step, seed=i)
        check_no_half_version(figures, slot, task)
        outcomes.append((step[0], figures["before"], figures["after"]))
    print(f"{len(outcomes)} kills: {outcomes}")


def queue_depth(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(r"^unipelt_queue_depth (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_sigterm_drains_queued_predictions(slot, minilm):
    service = slot.get()
    files = upload_files(*task_artifact(minilm, "drain"))
    assert httpx.put(f"{service.url}/adapters", files=files, headers=AUTH).status_code == 201
    assert httpx.post(f"{service.url}/v1/drain/predict", json={"inputs": "x"}).status_code == 200
    text = " ".join(["a long and winding sentence about a film"] * 10)  # ~100 tokens
    results: list[int | str] = []

    def predict() -> None:
        try:
            r = httpx.post(
                f"{service.url}/v1/drain/predict", json={"inputs": [text] * 8}, timeout=60
            )
            results.append(r.status_code)
        except httpx.HTTPError as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=predict) for _ in range(11)]  # 88 rows: under max_queue
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while queue_depth(service.url) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    service.process.send_signal(signal.SIGTERM)
    pending_at_signal = len(threads) - len(results)
    for thread in threads:
        thread.join(60)
    returncode = service.process.wait(30)
    assert pending_at_signal > 0, "every request finished before SIGTERM: nothing to drain"
    assert results == [200] * len(threads), results
    # uvicorn re-raises SIGTERM after a clean shutdown, so -15 is a graceful exit too.
    assert returncode in (0, -signal.SIGTERM), service.log()
    assert "Application shutdown complete" in service.log()
    print(f"SIGTERM with {pending_at_signal}/{len(threads)} requests in flight: all 200")
