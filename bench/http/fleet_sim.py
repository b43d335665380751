"""Simulate a fleet at internet scale: which replica serves each request, and what it holds.

1,000,000 registered tasks, 64 replicas of 2,000 bank slots each (LRU, host tier off), Zipf
(s = 1) popularity, stationary and with a shifting hot set (every `--phase` requests the ranking
slides by `--shift`, so the hottest tasks become cold and new ones hot). A closed loop keeps
`--in-flight` requests per replica outstanding (equal service times). Routings: round-robin,
plain consistent hashing on the task, and bounded-load consistent hashing (HAProxy's rule,
bench/http/fleet_ring.py), against one replica holding the fleet's total slots.

    python -m bench.http.fleet_sim --out docs/benchmarks.md
    python -m bench.http.fleet_sim --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.http.fleet_ring import RING, BoundedLoad, Ring
from bench.report import replace_block

BEGIN, END = "<!-- fleet-sim:begin -->", "<!-- fleet-sim:end -->"
HOT = 10  # "hot task": one of the 10 most popular at the time of the request
SAMPLE_EVERY = 64  # requests between in-flight load samples


@dataclass
class Trace:
    tasks: np.ndarray  # task id per request
    ranks: np.ndarray  # popularity rank at the time of the request
    phases: np.ndarray  # hot-set phase of the request


@dataclass
class Result:
    routing: str
    hit_ratio: float
    vs_one_replica: float
    store_loads_per_1k: float
    requests_max_mean: float
    in_flight_max_mean_p99: float
    replicas_per_hot_task: float


def zipf_trace(n_tasks: int, requests: int, shift: int, phase: int, seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, n_tasks + 1))
    ranks = np.searchsorted(cdf, rng.random(requests) * cdf[-1])
    phases = np.arange(requests) // phase if shift else np.zeros(requests, dtype=np.int64)
    order = rng.permutation(n_tasks)  # rank -> task id: popularity unrelated to the hash
    return Trace(order[(ranks + phases * shift) % n_tasks], ranks, phases)


def lru_hits(tasks: np.ndarray, replicas: np.ndarray, count: int, slots: int, warmup: int) -> int:
    """Bank hits after `warmup` requests, each replica an LRU of `slots` tasks."""
    banks: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(count)]
    hits = 0
    for i, (task, replica) in enumerate(zip(tasks.tolist(), replicas.tolist())):
        bank = banks[replica]
        if task in bank:
            bank.move_to_end(task)
            hits += i >= warmup
            continue
        bank[task] = None
        if len(bank) > slots:
            bank.popitem(last=False)
    return hits


def route(trace: Trace, points: np.ndarray, args: argparse.Namespace, ring: Ring, routing: str):
    """(replica per request, in-flight max/mean samples) under a closed loop."""
    n, count = len(trace.tasks), args.replicas
    in_flight = args.in_flight * count
    fixed = None
    if routing == "round-robin":
        fixed = (np.arange(n) % count).tolist()
    elif routing == "consistent hash":
        fixed = ring.owner[points].tolist()
    balancer = BoundedLoad(ring, args.factor)
    window: deque[int] = deque()
    chosen = np.empty(n, dtype=np.int64)
    samples = []
    mean = in_flight / count
    for i, point in enumerate(points.tolist()):
        if len(window) == in_flight:
            balancer.finish(window.popleft())
        replica = fixed[i] if fixed is not None else balancer.pick(point)
        balancer.start(replica)
        window.append(replica)
        chosen[i] = replica
        if i >= args.warmup and i % SAMPLE_EVERY == 0:
            samples.append(max(balancer.loads) / mean)
    return chosen, np.array(samples)


def replicas_per_hot_task(trace: Trace, chosen: np.ndarray, warmup: int) -> float:
    hot = trace.ranks[warmup:] < HOT
    key = trace.phases[warmup:][hot] * HOT + trace.ranks[warmup:][hot]
    pairs = np.unique(np.stack([key, chosen[warmup:][hot]]), axis=1)
    return float(np.unique(pairs[0], return_counts=True)[1].mean())


def simulate(trace: Trace, args: argparse.Namespace) -> list[Result]:
    rng = np.random.default_rng(args.seed + 1)
    ring = Ring.build(args.replicas, args.points, rng)
    task_hash = rng.integers(0, RING, args.tasks, dtype=np.int64)
    points = ring.start(task_hash)[trace.tasks]
    measured = len(trace.tasks) - args.warmup
    one = np.zeros(len(trace.tasks), dtype=np.int64)
    base = lru_hits(trace.tasks, one, 1, args.replicas * args.slots, args.warmup) / measured
    results = [Result("one replica, the fleet's slots", base, 1.0, 1000 * (1 - base), 1, 1, 1)]
    for routing in ("round-robin", "consistent hash", f"bounded load {args.factor}"):
        chosen, samples = route(trace, points, args, ring, routing)
        hit = lru_hits(trace.tasks, chosen, args.replicas, args.slots, args.warmup) / measured
        per_replica = np.bincount(chosen[args.warmup :], minlength=args.replicas)
        results.append(
            Result(
                routing,
                hit,
                hit / base,
                1000 * (1 - hit),
                float(per_replica.max() / per_replica.mean()),
                float(np.percentile(samples, 99)),
                replicas_per_hot_task(trace, chosen, args.warmup),
            )
        )
        log(f"{routing}: hit ratio {hit:.3f} ({hit / base:.3f} of one replica)")
    return results


def render(runs: dict[str, list[Result]], args: argparse.Namespace, seconds: float) -> str:
    lines = [
        f"Command: `{args.command}` ({seconds:.0f} s)",
        "",
        f"{args.tasks:,} registered tasks, {args.replicas} replicas x {args.slots:,} bank slots "
        f"(LRU, host tier off; the fleet holds {args.replicas * args.slots:,}), Zipf (s = 1), "
        f"{args.in_flight} requests in flight per replica (closed loop), "
        f"{args.points:,} ring points per replica, {args.requests:,} requests of which the "
        f"first {args.warmup:,} warm the banks. Shifting hot set: every {args.phase:,} "
        f"requests the ranking slides by {args.shift:,} (the {args.shift:,} hottest tasks "
        f"turn cold). Hot task: one of the {HOT} most popular when requested.",
    ]
    for name, results in runs.items():
        lines += [
            "",
            f"**{name}**",
            "",
            "| routing | bank hit ratio | x one replica | store loads / 1,000 requests "
            "| requests per replica max/mean | in-flight max/mean (p99) | replicas per hot task |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results:
            one = r.routing.startswith("one replica")
            lines.append(
                f"| {r.routing} | {r.hit_ratio:.3f} | {r.vs_one_replica:.3f} "
                f"| {r.store_loads_per_1k:.0f} | "
                + (
                    "- | - | - |"
                    if one
                    else f"{r.requests_max_mean:.2f} | {r.in_flight_max_mean_p99:.2f} "
                    f"| {r.replicas_per_hot_task:.1f} |"
                )
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.http.fleet_sim", description=__doc__)
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--replicas", type=int, default=64)
    p.add_argument("--slots", type=int, default=2000, help="bank slots per replica")
    p.add_argument("--requests", type=int, default=3_000_000)
    p.add_argument("--warmup", type=int, default=1_500_000)
    p.add_argument("--in-flight", type=int, default=16, help="per replica")
    p.add_argument("--factor", type=int, default=150, help="hash-balance-factor, percent")
    p.add_argument("--points", type=int, default=1600, help="ring points per replica")
    p.add_argument("--phase", type=int, default=250_000, help="requests per hot-set phase")
    p.add_argument("--shift", type=int, default=1000, help="ranks the hot set slides by")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, help="write the section into this markdown file")
    p.add_argument("--json", type=Path, default=Path("bench/results/fleet_sim.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.replicas, args.slots = 50_000, 8, 500
        args.requests, args.warmup, args.phase, args.shift = 200_000, 100_000, 25_000, 200
    args.command = "python -m bench.http.fleet_sim " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    return args


def main(argv: list[str] | None = None) -> dict[str, list[Result]]:
    args = parse_args(argv)
    started = time.perf_counter()
    runs = {}
    for name, shift in (("Zipf (s = 1), stationary", 0), ("Zipf (s = 1), shifting hot set", 1)):
        log(name)
        trace = zipf_trace(args.tasks, args.requests, args.shift * shift, args.phase, args.seed)
        runs[name] = simulate(trace, args)
    markdown = render(runs, args, time.perf_counter() - started)
    print(markdown)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({k: [asdict(r) for r in v] for k, v in runs.items()}, indent=2))
    if args.out:
        replace_block(args.out, BEGIN, END, markdown)
    return runs


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
