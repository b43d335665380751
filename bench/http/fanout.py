"""One fan-out call (`POST /v1/predict`, N tasks) against N separate `/v1/{task}/predict` calls
for the same inputs, over real HTTP (uvicorn + embedded Redis), interleaved round by round.

    python -m bench.http.fanout --tasks 4 --inputs 8 --rounds 15 [--method l]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from adapters.backbone import load_backbone
from adapters.config import MethodConfig
from harness.service_process import start_service, upload
from harness.tasks import artifact_bytes

TEXTS = [
    "a gripping, beautifully acted film with a script that never lets go",
    "the match went to extra time after a late equaliser",
    "parliament passed the budget after a long night of debate",
    "dull, slow and far too long",
    "the new telescope found water vapour on a distant planet",
    "I would watch it again tomorrow",
    "the striker was sold for a record fee",
    "a quiet, moving story about two brothers",
]


async def fanout(client: httpx.AsyncClient, tasks: list[str], texts: list[str]) -> None:
    r = await client.post("/v1/predict", json={"tasks": tasks, "inputs": texts})
    r.raise_for_status()


async def one_by_one(client: httpx.AsyncClient, tasks: list[str], texts: list[str]) -> None:
    for task in tasks:
        (await client.post(f"/v1/{task}/predict", json={"inputs": texts})).raise_for_status()


async def concurrent(client: httpx.AsyncClient, tasks: list[str], texts: list[str]) -> None:
    calls = [client.post(f"/v1/{task}/predict", json={"inputs": texts}) for task in tasks]
    for r in await asyncio.gather(*calls):
        r.raise_for_status()


MODES = {
    "fan-out: 1 call, N tasks": fanout,
    "N calls, one after another": one_by_one,
    "N calls, concurrent": concurrent,
}


async def measure(url: str, tasks: list[str], texts: list[str], rounds: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in MODES}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for run in MODES.values():  # warm-up: every adapter resident, every path hot
            await run(client, tasks, texts)
        for _ in range(rounds):
            for name, run in MODES.items():
                start = time.perf_counter()
                await run(client, tasks, texts)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def table(medians: dict[str, float], n_tasks: int, n_inputs: int) -> str:
    base = medians["fan-out: 1 call, N tasks"]
    rows = [
        f"| {name} | {seconds * 1000:.0f} | {seconds / base:.2f}x |"
        for name, seconds in medians.items()
    ]
    head = f"{n_tasks} tasks x {n_inputs} inputs; median wall time per round"
    return "\n".join([head, "", "| mode | ms | vs fan-out |", "|---|---|---|", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in the service")
    parser.add_argument("--method", default="apl", help="method preset of every task")
    args = parser.parse_args()
    backbone = load_backbone()
    texts = (TEXTS * (args.inputs // len(TEXTS) + 1))[: args.inputs]
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        env = {"UNIPELT_TORCH_THREADS": str(args.threads), "UNIPELT_BATCH_WINDOW_MS": "5"}
        service = start_service(Path(tmp), env)
        try:
            tasks = [f"task-{i}" for i in range(args.tasks)]
            for i, task in enumerate(tasks):
                blobs = artifact_bytes(task, MethodConfig.preset(args.method), backbone, seed=i)
                upload(service.url, *blobs).raise_for_status()
            medians = asyncio.run(measure(service.url, tasks, texts, args.rounds))
        finally:
            service.stop()
    print(f"method {args.method}; " + table(medians, args.tasks, args.inputs))


if __name__ == "__main__":
    main()
