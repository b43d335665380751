"""Hot swap: upload a new version to replica A, then time until replica B (and A) serve it."""

from __future__ import annotations

import time

import httpx

from bench.report import fmt
from bench.tasks import TaskSet
from bench.timing import median
from harness.service_process import ServiceProcess, upload

SWAP_TASK = "swap-task"
TIMEOUT_S = 10.0


def measure_hot_swap(a: ServiceProcess, b: ServiceProcess, tasks: TaskSet, swaps: int) -> dict:
    with httpx.Client(timeout=30) as client:
        _swap(client, a, b, tasks, 0)  # first version: both replicas load it once
        rows = [_swap(client, a, b, tasks, i + 1) for i in range(swaps)]
    all_s = [r["all_s"] for r in rows]
    b_s = [r["b_s"] for r in rows]
    result = {
        "swaps": swaps,
        "replica_b_p50_s": median(b_s),
        "all_replicas_p50_s": median(all_s),
        "all_replicas_max_s": max(all_s),
        "polls_p50": median([r["polls"] for r in rows]),
        "timeouts": sum(r["all_s"] >= TIMEOUT_S for r in rows),
    }
    result["markdown"] = _markdown(result)
    return result


def _swap(client: httpx.Client, a, b, tasks: TaskSet, index: int) -> dict:
    r = upload(a.url, *tasks.artifact(index % 4, SWAP_TASK))  # consecutive versions differ
    if r.status_code != 201:
        raise RuntimeError(f"upload to replica A failed: {r.status_code} {r.text}")
    uploaded = time.perf_counter()
    version = r.json()["version"]
    seen: dict[str, float] = {}
    polls = 0
    while len(seen) < 2 and time.perf_counter() - uploaded < TIMEOUT_S:
        for name, replica in (("a", a), ("b", b)):
            if name in seen:
                continue
            polls += 1
            resp = client.post(f"{replica.url}/v1/{SWAP_TASK}/predict", json={"inputs": "swap"})
            if resp.status_code == 200 and resp.json()["version"] == version:
                seen[name] = time.perf_counter() - uploaded
    return {
        "b_s": seen.get("b", TIMEOUT_S),
        "all_s": max(seen.values()) if len(seen) == 2 else TIMEOUT_S,
        "polls": polls,
    }


def _markdown(r: dict) -> str:
    return "\n".join(
        [
            "### Hot swap (two replicas, one Redis)",
            "",
            f"{r['swaps']} uploads of a new version to replica A; clock from the upload "
            "response until a predict on each replica returns the new version (polling both "
            "back to back, so the figure includes one predict round trip and replica B's cold "
            "load of the new version).",
            "",
            "| replica B p50 s | all replicas p50 s | all replicas max s | polls p50 | timeouts |",
            "|---|---|---|---|---|",
            f"| {fmt(r['replica_b_p50_s'], 3)} | {fmt(r['all_replicas_p50_s'], 3)} | "
            f"{fmt(r['all_replicas_max_s'], 3)} | {fmt(r['polls_p50'], 0)} | {r['timeouts']} |",
        ]
    )
