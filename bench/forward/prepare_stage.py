"""The batcher's prepare stage, in process: the real `DynamicBatcher` and `BatchRunner` (packaged
MiniLM, APL tasks, real tokenizer), driven by closed-loop clients of one text each, in two
modes measured in interleaved windows (order rotating between rounds):

- `one thread`: tokenise, pad, plan and forward all on the forward thread (the batcher as it
  was before the prepare stage: `prepare` passes the rows through, `forward` is
  `BatchRunner.run`);
- `prepare thread`: `BatchRunner.prepare` on the prepare thread, `BatchRunner.execute` on the
  forward thread, batch N+1 prepared while batch N runs.

Per window: sequences per second, the forward thread's CPU per sequence, and the process CPU
per sequence outside the forward thread (what `unipelt_forward_cpu_seconds_total` leaves out).

    python -m bench.forward.prepare_stage --tasks 10 --batch 32 --clients 64 --seconds 6 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adapters.backbone import load_backbone
from adapters.bank import BankSizes, TaskBank
from adapters.model import UniPELTModel
from adapters.tokenization import load_tokenizer
from bench.report import fmt
from bench.tasks import TaskSet
from bench.workload import load_texts
from service.engine.inference.batcher import DynamicBatcher
from service.engine.inference.encode import BatchEncoder
from service.engine.inference.runner import BatchRunner, Row, RowResult
from service.engine.lifecycle.pool import Resident
from service.engine.lifecycle.routing import Target
from service.engine.lifecycle.tiers import build_tiers
from service.metrics import Metrics
from service.store.adapter_store import AdapterStore
from service.store.blobs import RedisBlobStore
from service.store.embedded import start_embedded_redis
from service.store.factory import make_client

MODES = ("one thread", "prepare thread")


@dataclass
class Window:
    mode: str
    seq_per_s: float
    forward_cpu_ms: float  # the forward thread's CPU per sequence
    outside_cpu_ms: float  # process CPU per sequence outside the forward thread
    mean_batch: float


@contextmanager
def built(tasks: int) -> Iterator[tuple[BatchRunner, list[Resident]]]:
    """The runner and `tasks` pinned APL residents, loaded through the service's tiers from an
    embedded Redis (stopped on the way out)."""
    backbone, names = load_backbone(), [f"task-{i}" for i in range(tasks)]
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        server = start_embedded_redis(Path(tmp) / "redis")
        try:
            client = make_client(server.url)
            store = AdapterStore(client, RedisBlobStore(client))
            apl = TaskSet(backbone, "apl")
            for i, name in enumerate(names):
                store.publish(name, *apl.artifact(i, name))
            bank = TaskBank.allocate(tasks, backbone.dims, BankSizes(), lazy=True)
            tiers = build_tiers(store, backbone, Metrics(), bank, host_bytes=0)
            residents = [tiers.router.acquire(Target(name)) for name in names]
            tokenizer = load_tokenizer(backbone.path)
            runner = BatchRunner(
                UniPELTModel(backbone).eval(),
                bank,
                BatchEncoder(tokenizer, truncate=True),
                tokenizer.pad_token_id or 0,
                torch.device("cpu"),
            )
            yield runner, residents
            client.close()
        finally:
            server.stop()


async def window(
    mode: str, runner: BatchRunner, residents: list[Resident], texts: list[str], args
) -> Window:
    metrics = Metrics()
    one_thread = mode == "one thread"
    prepare: Callable[[list[Row]], Any] = _rows if one_thread else runner.prepare
    run: Callable[[Any], list[RowResult | Exception]] = runner.run if one_thread else runner.execute
    batcher = DynamicBatcher(prepare, run, metrics, args.batch, 5.0, "mixed", max_queue=10**6)
    batcher.start()
    rng = random.Random(len(texts))
    done = 0
    deadline = time.perf_counter() + args.seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            res = rng.choice(residents)
            await batcher.submit([Row(rng.choice(texts), None, 128, 0, res.key[0], res)])
            done += 1

    started, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(args.clients)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    await batcher.drain_and_stop()
    sample = metrics.registry.get_sample_value
    forward = sample("unipelt_forward_cpu_seconds_total") or 0.0
    batch = (sample("unipelt_batch_size_sum") or 0.0) / (sample("unipelt_batch_size_count") or 1)
    per_seq = 1000 / done
    return Window(mode, done / elapsed, forward * per_seq, (cpu - forward) * per_seq, batch)


def stage_times(runner: BatchRunner, residents: list[Resident], texts: list[str], args) -> str:
    """Median wall time of `prepare` and of `execute` on the same batches (one thread)."""
    rng = random.Random(1)
    times: dict[str, list[float]] = {"prepare": [], "execute": []}
    for _ in range(args.stage_repeats):
        rows = [
            Row(rng.choice(texts), None, 128, 0, r.key[0], r)
            for r in rng.choices(residents, k=args.batch)
        ]
        t0 = time.perf_counter()
        prepared = runner.prepare(rows)
        t1 = time.perf_counter()
        runner.execute(prepared)
        times["prepare"].append(t1 - t0)
        times["execute"].append(time.perf_counter() - t1)
    p, e = (1000 * statistics.median(times[k]) for k in ("prepare", "execute"))
    return (
        f"per batch of {args.batch} (median of {args.stage_repeats}): prepare {fmt(p, 2)} ms "
        f"(tokenise, pad, plan), execute {fmt(e, 1)} ms (forward, results): prepare is "
        f"{fmt(100 * p / e, 2)}% of the forward"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=6.0, help="per window")
    parser.add_argument("--rounds", type=int, default=3, help="windows per mode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--stage-repeats", type=int, default=20, help="batches timed per stage")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with built(args.tasks) as (runner, residents):
        report(runner, residents, args)


def report(runner: BatchRunner, residents: list[Resident], args: argparse.Namespace) -> None:
    texts, source = load_texts()
    asyncio.run(window("one thread", runner, residents, texts, args))  # warm-up, not counted
    windows: list[Window] = []
    for r in range(args.rounds):
        for mode in MODES[r % 2 :] + MODES[: r % 2]:
            windows.append(asyncio.run(window(mode, runner, residents, texts, args)))
    print(f"Texts: {source}. torch threads: {args.threads}.\n")
    print(stage_times(runner, residents, texts, args) + "\n")
    print("| mode | seq/s | mean batch | forward thread CPU ms/seq | outside CPU ms/seq |")
    print("|---|---|---|---|---|")
    for w in windows:
        print(
            f"| {w.mode} | {fmt(w.seq_per_s)} | {fmt(w.mean_batch)} | {fmt(w.forward_cpu_ms, 2)} "
            f"| {fmt(w.outside_cpu_ms, 2)} |"
        )
    base = [w for w in windows if w.mode == MODES[0]]
    ours = [w for w in windows if w.mode == MODES[1]]
    ratio = statistics.median(o.seq_per_s / b.seq_per_s for b, o in zip(base, ours))
    print(f"\nprepare thread / one thread, seq/s (median of per-round ratios): {fmt(ratio, 3)}x")
    for mode, ws in ((MODES[0], base), (MODES[1], ours)):
        print(
            f"{mode}: median {fmt(statistics.median(w.seq_per_s for w in ws))} seq/s, "
            f"forward thread {fmt(statistics.median(w.forward_cpu_ms for w in ws), 2)} ms CPU/seq, "
            f"outside {fmt(statistics.median(w.outside_cpu_ms for w in ws), 2)} ms CPU/seq"
        )


def _rows(rows: list[Row]) -> list[Row]:
    return rows


if __name__ == "__main__":
    main()
