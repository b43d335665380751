"""Fault scenarios shared by the reliability tests and `python -m bench.http.faults`: each one
injects a fault into the live service or its Redis, returns its figures, and has a function
that lists what went wrong ([] when the service behaved)."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from harness.reliability import (
    AUTH,
    KillOnCommand,
    orphan_blob_keys,
    redis_store,
    store_problems,
    task_artifact,
    upload_files,
)
from service.store.errors import TaskNotFoundError

FAST_FAIL_S = 5.0  # the longest any request may take while Redis is away
# What each probe must answer while Redis is away.
OUTAGE_EXPECTED = {"readyz": 503, "hot_predict": 200, "miss_predict": 503, "upload": 503}
OUTAGE_EXPECTED["list"] = 503
# (Redis command, text in its key): the publish sequence of `AdapterStore.publish`, in order.
PUBLISH_STEPS = [
    ("INCRBY", ":next_version"),  # redis-py sends INCR as INCRBY key 1
    ("SET", "pending:"),
    ("SET", ":manifest"),
    ("SET", ":weights"),
    ("WATCH", "pending:"),
    ("EXEC", ""),
    ("PUBLISH", "events"),
]


# ---- Redis outage ------------------------------------------------------------------------
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


def make_resident(url: str, backbone, task: str) -> None:
    files = upload_files(*task_artifact(backbone, task))
    httpx.put(f"{url}/adapters", files=files, headers=AUTH, timeout=60).raise_for_status()
    httpx.post(f"{url}/v1/{task}/predict", json={"inputs": "warm"}).raise_for_status()


def run_outage(
    url: str, redis_url: str, backbone, hot: str, cold: str, outage, restore, clients: int
) -> dict:
    """Publish `cold` straight to the store (this replica never held it: an upload through it
    would keep the adapter in its host tier); hammer the resident `hot` from `clients`
    threads; `outage()`; probe every kind of request at once; `restore()`; probe recovery."""
    redis_store(redis_url).publish(cold, *task_artifact(backbone, cold, 1))
    new_files = upload_files(*task_artifact(backbone, cold, 2))
    figures: dict = {}
    with Hammer(url, hot, clients) as hammer, httpx.Client(base_url=url, timeout=30) as client:
        time.sleep(0.5)
        outage()
        down_at = time.monotonic()
        time.sleep(0.5)  # past the live-version TTL: the resolver meets the outage too
        probes = {
            "readyz": lambda: client.get("/readyz"),
            "hot_predict": lambda: client.post(f"/v1/{hot}/predict", json={"inputs": "still"}),
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


def outage_problems(figures: dict) -> list[str]:
    """What went wrong while Redis was away."""
    problems = []
    for probe, status in OUTAGE_EXPECTED.items():
        got, took, body = figures["down"][probe]
        if got != status:
            problems.append(f"{probe}: {got} instead of {status}: {body}")
        if took >= FAST_FAIL_S:
            problems.append(f"{probe} took {took:.1f}s while Redis was away")
    for probe in ("miss_predict", "upload"):
        if '"store_unavailable"' not in figures["down"][probe][2]:
            problems.append(f"{probe}: no store_unavailable error kind")
    if figures["healthz_down"] != 200:
        problems.append(f"/healthz {figures['healthz_down']} while Redis was away")
    if set(figures["hot_statuses"]) != {200}:
        problems.append(f"resident predictions got {figures['hot_statuses']}")
    if not figures["hot_during_outage_s"]:
        problems.append("no resident prediction was served during the outage")
    return problems


def recovery_problems(figures: dict) -> list[str]:
    """What did not come back by itself once Redis did."""
    checks = {
        "/readyz never 200 again": figures["ready_after_s"] is not None,
        "cache misses never served again": figures["miss_served_after_s"] is not None,
        f"upload after recovery: {figures['upload_after']}": figures["upload_after"] == 201,
        "the version uploaded after recovery is not served": figures["new_version_served"],
    }
    return [problem for problem, ok in checks.items() if not ok]


# ---- SIGKILL mid-upload ------------------------------------------------------------------
def live_or_none(store, task: str) -> int | None:
    try:
        return store.live_version(task)
    except TaskNotFoundError:
        return None


def kill_mid_upload(slot, redis_server, backbone, task: str, step: tuple[str, str], seed: int):
    """Upload a new version of `task`; SIGKILL the service right after Redis executes `step`
    (later writes wait in Redis until it is dead). Returns figures."""
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
    if not fired:  # the step never came (a refused upload?): end this process all the same
        service.process.kill()
    returncode = service.process.wait(30)
    killer.stop()
    sender.join(60)
    return {
        "step": step,
        "fired": fired,
        "returncode": returncode,
        "response": response,
        "before": before,
        "after": live_or_none(store, task),
        "problems": store_problems(store),
        "orphans": orphan_blob_keys(store),
    }


def half_version_problems(figures: dict, slot, redis_server, task: str) -> list[str]:
    """After the kill: the store is sound, an acknowledged upload is durable, orphan blobs
    (only of the interrupted version) are collectable, and a fresh process serves the live
    version (starting it is part of the check)."""
    if not figures["fired"]:
        return [f"{figures['step']} never reached Redis; upload got {figures['response']}"]
    problems = list(figures["problems"])
    if figures["returncode"] != -signal.SIGKILL:
        problems.append(f"exit status {figures['returncode']}, not SIGKILL")
    before, after, response = figures["before"], figures["after"], figures["response"]
    if not (after == before or (after is not None and (before is None or after > before))):
        problems.append(f"live version went from {before} to {after}")
    if response.get("status") == 201 and after != response["body"]["version"]:
        problems.append(f"acknowledged v{response['body']['version']} but live is {after}")
    problems += [f"orphan blob of another task: {k}" for k in figures["orphans"] if task not in k]
    store = redis_store(redis_server.url)
    store.gc_orphans(grace_s=0)
    problems += [f"left after gc: {k}" for k in orphan_blob_keys(store)]
    service = slot.get()  # a fresh process on the same store
    r = httpx.post(f"{service.url}/v1/{task}/predict", json={"inputs": "after the crash"})
    expected = 404 if after is None else 200
    if r.status_code != expected or (after is not None and r.json()["version"] != after):
        problems.append(f"after restart: {r.status_code} {r.text[:200]} (live {after})")
    return problems


# ---- SIGTERM drain -----------------------------------------------------------------------
def gauge(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def drain_on_sigterm(service, backbone, task: str, clients: int = 11, rows: int = 8) -> dict:
    """`clients` concurrent predicts of `rows` long inputs each (under max_queue rows in all);
    SIGTERM as soon as rows are queued; wait for everything. Returns figures."""
    make_resident(service.url, backbone, task)
    text = " ".join(["a long and winding sentence about a film"] * 10)  # ~100 tokens
    results: list[int | str] = []

    def predict() -> None:
        try:
            r = httpx.post(
                f"{service.url}/v1/{task}/predict", json={"inputs": [text] * rows}, timeout=60
            )
            results.append(r.status_code)
        except httpx.HTTPError as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=predict) for _ in range(clients)]
    for thread in threads:
        thread.start()
    # SIGTERM once the server has received every request (and none has been answered yet, or
    # some have): a request still connecting when the listener closes was never accepted, so
    # it is not drained. Received = counted in flight by the app, or answered already.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        received = gauge(service.url, "unipelt_predict_requests_in_flight") + len(results)
        if received >= clients:
            break
        time.sleep(0.01)
    service.process.send_signal(signal.SIGTERM)
    pending_at_signal = clients - len(results)
    for thread in threads:
        thread.join(60)
    returncode = service.process.wait(30)
    return {
        "pending_at_signal": pending_at_signal,
        "results": results,
        "returncode": returncode,
        "clean_shutdown": "Application shutdown complete" in service.log(),
    }


def drain_problems(figures: dict, clients: int = 11) -> list[str]:
    problems = []
    if figures["pending_at_signal"] == 0:
        problems.append("every request finished before SIGTERM: nothing to drain")
    if figures["results"] != [200] * clients:
        problems.append(f"requests in flight at SIGTERM got {figures['results']}")
    # uvicorn re-raises SIGTERM after a clean shutdown, so -15 is a graceful exit too.
    if figures["returncode"] not in (0, -signal.SIGTERM) or not figures["clean_shutdown"]:
        problems.append(f"unclean exit {figures['returncode']}")
    return problems
