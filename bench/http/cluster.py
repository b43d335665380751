"""End to end over HTTP: two real uvicorn replicas on one Redis, N uploaded adapters, an async
httpx client at high concurrency against replica A (replica B serves the hot-swap check)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.tasks import TaskSet
from bench.workload import Request
from harness.service_process import ServiceProcess, start_service, upload
from service.store.embedded import start_embedded_redis


def task_name(task: int) -> str:
    return f"task-{task:03d}"


class Cluster:
    """An embedded Redis plus two service replicas sharing it; a context manager."""

    def __init__(self, batch: int, slots: int, threads: int) -> None:
        self.env = {
            "UNIPELT_TORCH_THREADS": str(threads),
            "UNIPELT_MAX_BATCH_SIZE": str(batch),
            "UNIPELT_BATCH_POLICY": "mixed",
            "UNIPELT_BATCH_WINDOW_MS": "5",
            "UNIPELT_POOL_SLOTS": str(slots),
            "UNIPELT_TRUNCATE": "true",
            "UNIPELT_MAX_LENGTH": "128",
            "UNIPELT_MAX_QUEUE": "8192",
        }
        self.replicas: list[ServiceProcess] = []

    def __enter__(self) -> Cluster:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-http-")
        root = Path(self._tmp.name)
        self.redis = start_embedded_redis(root / "redis")
        self.env["REDIS_URL"] = self.redis.url
        started: dict[int, ServiceProcess | Exception] = {}

        def start(i: int) -> None:
            try:
                started[i] = start_service(root / f"replica-{i}", self.env)
            except Exception as exc:  # reported below, after both attempts
                started[i] = exc

        threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.replicas = [s for s in started.values() if isinstance(s, ServiceProcess)]
        errors = [s for s in started.values() if isinstance(s, Exception)]
        if errors:
            self.__exit__()
            raise errors[0]
        return self

    def __exit__(self, *exc: object) -> None:
        for replica in self.replicas:
            replica.stop()
        self.redis.stop()
        self._tmp.cleanup()


def upload_tasks(url: str, tasks: TaskSet, n: int) -> None:
    for task in range(n):
        r = upload(url, *tasks.artifact(task, task_name(task)))
        if r.status_code != 201:
            raise RuntimeError(f"upload of {task_name(task)} failed: {r.status_code} {r.text}")


def warm(url: str, n: int) -> None:
    """One request per task, so every adapter is resident before measuring."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for task in range(n):
            r = client.post(f"/v1/{task_name(task)}/predict", json={"inputs": "warm up"})
            r.raise_for_status()


def drive(
    url: str, requests: list[Request], concurrency: int, max_seconds: float
) -> tuple[int, float, list[float], Counter]:
    """Send `requests` (one text each) with `concurrency` in flight, stopping at `max_seconds`.

    Returns (completed, elapsed seconds, latencies of the successful ones, status counts)."""
    return asyncio.run(_drive(url, requests, concurrency, max_seconds))


async def _drive(
    url: str, requests: list[Request], concurrency: int, max_seconds: float
) -> tuple[int, float, list[float], Counter]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    statuses: Counter = Counter()
    queue = iter(requests)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            for r in queue:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                resp = await client.post(
                    f"/v1/{task_name(r.task)}/predict", json={"inputs": r.text}
                )
                statuses[resp.status_code] += 1
                if resp.status_code == 200:
                    latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies), elapsed, latencies, statuses
