"""Bounded load on the real service: predictions across many tasks at the engine's saturation,
with new versions uploaded and tasks deleted (and re-uploaded) while it runs. Driven by
test_load.py and by `python -m bench.http.load_test`.

Loopback only (127.0.0.1), bounded by time and by a request count; it stops by itself.
Statuses are sorted into served (200), expected (429 under overload, 404 for a task that was
deleted while the request was out) and unexpected (everything else, including a 200 older than
an acknowledged upload). Memory is the service's RSS from /proc/<pid>/status.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from harness.reliability import (
    AUTH,
    redis_store,
    require_loopback,
    rss_kib,
    store_problems,
    task_artifact,
    upload_files,
)

WORDS = ("the", "a", "film", "plot", "actor", "scene", "great", "awful", "boring", "slow", "funny")


@dataclass
class LoadConfig:
    duration_s: float = 180.0
    tasks: int = 24
    concurrency: int = 48
    max_requests: int = 2_000_000
    upload_every_s: float = 2.0
    delete_every_s: float = 6.0
    reupload_after_s: float = 1.5
    retry_after_cap_s: float = 0.2  # clients honour Retry-After, capped to keep the pressure on
    timeout_s: float = 30.0
    seed: int = 0


@dataclass
class LoadReport:
    duration_s: float = 0.0
    requests: int = 0
    served: int = 0
    expected_429: int = 0
    expected_404: int = 0
    unexpected: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    uploads: Counter = field(default_factory=Counter)
    deletes: Counter = field(default_factory=Counter)
    acknowledged: dict[str, int] = field(default_factory=dict)  # task -> last 201 version
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    rss_peak_kib: int = 0
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, KiB)
    store_problems: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def rss_growth_second_half_kib(self) -> int:
        """RSS growth over the second half of the run: ~0 once memory has plateaued."""
        if not self.rss_samples:
            return 0
        half = self.duration_s / 2
        middle = next((kib for t, kib in self.rss_samples if t >= half), self.rss_end_kib)
        return self.rss_end_kib - middle

    def summary(self) -> dict:
        return {
            "duration_s": round(self.duration_s, 1),
            "requests": self.requests,
            "served_200": self.served,
            "throughput_rps": round(self.served / max(self.duration_s, 1e-9), 1),
            "expected_429": self.expected_429,
            "expected_404_deleted": self.expected_404,
            "unexpected": dict(self.unexpected),
            "latency_ms": {f"p{q}": round(self.percentile(q), 1) for q in (50, 95, 99)},
            "uploads": dict(self.uploads),
            "deletes": dict(self.deletes),
            "rss_mib": {
                "start": round(self.rss_start_kib / 1024, 1),
                "end": round(self.rss_end_kib / 1024, 1),
                "peak": round(self.rss_peak_kib / 1024, 1),
                "growth": round((self.rss_end_kib - self.rss_start_kib) / 1024, 1),
                "growth_second_half": round(self.rss_growth_second_half_kib() / 1024, 1),
            },
            "store_problems": self.store_problems,
        }


class TaskBook:
    """Which tasks are live, and a generation counter bumped by every deletion."""

    def __init__(self, tasks: list[str]) -> None:
        self.tasks = tasks
        self.gone: set[str] = set()
        self.generation = Counter[str]()

    def snapshot(self, task: str) -> tuple[bool, int]:
        return task in self.gone, self.generation[task]

    def deleted_during(self, task: str, before: tuple[bool, int]) -> bool:
        return before[0] or task in self.gone or self.generation[task] != before[1]


def task_names(n: int) -> list[str]:
    return [f"load-{i:03d}" for i in range(n)]


async def seed_tasks(client: httpx.AsyncClient, backbone, tasks: list[str]) -> dict[str, int]:
    """Upload a first version of every task; returns task -> version."""
    versions = {}
    for i, task in enumerate(tasks):
        r = await client.put("/adapters", files=upload_files(*task_artifact(backbone, task, i)))
        r.raise_for_status()
        versions[task] = r.json()["version"]
    return versions


async def run_load(
    url: str, backbone, config: LoadConfig, pid: int | None, versions: dict[str, int]
) -> LoadReport:
    """Drive the service at `url` (already seeded with `versions`) for `config.duration_s`."""
    require_loopback(url)
    rng = random.Random(config.seed)
    report = LoadReport(acknowledged=dict(versions))
    book = TaskBook(sorted(versions))
    deadline = time.monotonic() + config.duration_s
    limits = httpx.Limits(max_connections=config.concurrency + 4)
    timeout = httpx.Timeout(config.timeout_s)

    def running() -> bool:
        return time.monotonic() < deadline and report.requests < config.max_requests

    async def predictor(client: httpx.AsyncClient) -> None:
        while running():
            task = rng.choice(book.tasks)
            inputs = [
                " ".join(rng.choices(WORDS, k=rng.randint(3, 24))) for _ in range(rng.randint(1, 4))
            ]
            before, acked = book.snapshot(task), report.acknowledged.get(task, 0)
            started = time.perf_counter()
            report.requests += 1
            try:
                r = await client.post(f"/v1/{task}/predict", json={"inputs": inputs})
            except httpx.HTTPError as e:
                report.unexpected[f"transport:{type(e).__name__}"] += 1
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            if r.status_code == 200:
                if r.json()["version"] < acked:
                    report.unexpected["stale_version"] += 1
                report.served += 1
                report.latencies_ms.append(elapsed_ms)
            elif r.status_code == 429:
                report.expected_429 += 1
                retry = float(r.headers.get("retry-after", "1"))
                await asyncio.sleep(min(retry, config.retry_after_cap_s) * rng.random())
            elif r.status_code == 404 and book.deleted_during(task, before):
                report.expected_404 += 1
            else:
                report.unexpected[f"{r.status_code}:{_kind(r)}"] += 1

    async def upload(client: httpx.AsyncClient, task: str) -> bool:
        files = upload_files(*task_artifact(backbone, task, rng.randrange(8)))
        try:
            r = await client.put("/adapters", files=files)
        except httpx.HTTPError as e:
            report.uploads[f"transport:{type(e).__name__}"] += 1
            return False
        report.uploads[str(r.status_code)] += 1
        if r.status_code == 201:
            report.acknowledged[task] = r.json()["version"]
        return r.status_code == 201

    async def uploader(client: httpx.AsyncClient) -> None:
        while running():
            await asyncio.sleep(config.upload_every_s * (0.5 + rng.random()))
            live = [t for t in book.tasks if t not in book.gone]
            if live and running():
                await upload(client, rng.choice(live))

    async def deleter(client: httpx.AsyncClient) -> None:
        while running():
            await asyncio.sleep(config.delete_every_s * (0.5 + rng.random()))
            live = [t for t in book.tasks if t not in book.gone]
            if len(live) < 2 or not running():
                continue
            task = rng.choice(live)
            book.gone.add(task)
            book.generation[task] += 1
            r = await client.delete(f"/adapters/{task}")
            report.deletes[str(r.status_code)] += 1
            report.acknowledged.pop(task, None)
            await asyncio.sleep(config.reupload_after_s)
            while not await upload(client, task) and time.monotonic() < deadline + 30:
                await asyncio.sleep(0.5)
            book.gone.discard(task)

    async def sample_rss() -> None:
        while running() and pid is not None:
            kib = rss_kib(pid)
            report.rss_samples.append((time.monotonic() - started, kib))
            report.rss_peak_kib = max(report.rss_peak_kib, kib)
            await asyncio.sleep(1.0)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        admin = httpx.AsyncClient(base_url=url, timeout=timeout, headers=AUTH)
        async with admin:
            if pid is not None:
                report.rss_start_kib = report.rss_peak_kib = rss_kib(pid)
            started = time.monotonic()
            await asyncio.gather(
                *(predictor(client) for _ in range(config.concurrency)),
                uploader(admin),
                deleter(admin),
                sample_rss(),
            )
            report.duration_s = time.monotonic() - started
    if pid is not None:
        report.rss_end_kib = rss_kib(pid)
        report.rss_peak_kib = max(report.rss_peak_kib, report.rss_end_kib)
    return report


def _kind(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", "?"))
    except ValueError:
        return "not-json"


async def warm_up(url: str, tasks: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for task in tasks:
            (
                await client.post(f"/v1/{task}/predict", json={"inputs": "warm up"})
            ).raise_for_status()


async def prepare(url: str, backbone, tasks: list[str]) -> dict[str, int]:
    """Upload every task and predict each once; returns task -> version."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as admin:
        versions = await seed_tasks(admin, backbone, tasks)
    await warm_up(url, tasks)
    return versions


def check_store(report: LoadReport, redis_url: str, tasks: list[str]) -> None:
    """Store integrity for the load's tasks, and every acknowledged upload still there."""
    store = redis_store(redis_url)
    report.store_problems = store_problems(store, only=tasks)
    _check_acknowledged(report, store)


def _check_acknowledged(report: LoadReport, store) -> None:
    """Every acknowledged upload of a task that still exists is in the store (nothing lost)."""
    for task, version in report.acknowledged.items():
        try:
            have = {v.version for v in store.versions(task)}
        except Exception as e:  # a task whose re-upload was acknowledged must exist
            report.store_problems.append(f"{task}: acknowledged v{version} but {e}")
            continue
        if version not in have:
            report.store_problems.append(f"{task}: acknowledged v{version} missing")
