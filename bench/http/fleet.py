"""The fleet benchmark: replicas behind HAProxy, round-robin against bounded-load consistent
hashing on the task, side by side in one run.

4 replicas with small banks (200 slots, host tier off) on one Redis (filesystem blobs in one
shared directory), two HAProxy instances with the shipped config in front of the same replicas
(one switched to `balance roundrobin`), wrk (bench/http/scale.lua) sending Zipf (s = 1)
traffic over 2,000 and then 10,000 seeded tasks. Each measured window follows a warm-up of
the same routing: one request to each of the Zipf head's tasks (as many as the fleet has
slots, least popular first), then an unmeasured wrk window. Per window: requests per
second, bank hit ratio, store loads per second, requests per replica (max/mean) and wrk's
p50/p99. The reference "one replica with the fleet's slots" is the LRU simulation of
bench/http/fleet_sim.py on the same popularity.

    python -m bench.http.fleet --out docs/benchmarks.md
    python -m bench.http.fleet --quick
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from adapters.backbone import load_backbone
from bench.http.fleet_sim import simulate, zipf_trace
from bench.http.scale_seed import seed_store, task_name
from bench.http.scale_wrk import LUA, delta, scrape, settle
from bench.report import replace_block
from bench.run import machine
from bench.workload import load_texts
from harness.fleet import Fleet, start_fleet
from harness.haproxy_process import start_haproxy
from service.store.adapter_store import AdapterStore
from service.store.blobs import FilesystemBlobStore
from service.store.embedded import start_embedded_redis
from service.store.factory import BLOBS_DIR, make_client

BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"
ROUTINGS = {"round-robin": "round-robin", "bounded load": "affinity"}
STORE_LOADS = 'unipelt_adapter_load_source_seconds_count{source="store"}'
SIM_REQUESTS = 400_000
_SEEDS = itertools.count(1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.http.fleet", description=__doc__)
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--slots", type=int, default=200, help="bank slots per replica")
    p.add_argument("--tasks", type=int, nargs="+", default=[2000, 10_000])
    p.add_argument("--window", type=float, default=30.0, help="seconds per measured window")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds of warm-up per window")
    p.add_argument("--rounds", type=int, default=1, help="rounds (routing order alternates)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--factor", type=int, default=150, help="hash-balance-factor, percent")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, help="write the section into this markdown file")
    p.add_argument("--json", type=Path, default=Path("bench/results/fleet.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.slots, args.tasks, args.window, args.warmup = 25, [200, 1000], 6.0, 6.0
        args.connections = 16
    args.command = "python -m bench.http.fleet " + " ".join(sys.argv[1:] if argv is None else argv)
    return args


def wrk_window(lb_url: str, fleet: Fleet, tasks: int, bodies: Path, seconds: float, args) -> dict:
    """One wrk run through a balancer, with every replica's counters over it."""
    for service in fleet.replicas.values():
        settle(service.url)
    before = {name: scrape(s.url) for name, s in fleet.replicas.items()}
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(seconds))}s", "--timeout"]
    cmd += ["30s", "-s", str(LUA), lb_url, "--", "zipf", str(tasks), str(bodies), str(next(_SEEDS))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, _ = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    line = next((x for x in out.splitlines() if x.startswith("SCALE-RESULT ")), None)
    if status != 0 or line is None:
        raise RuntimeError(f"wrk failed ({status}):\n{out}")
    r = json.loads(line.split(" ", 1)[1])
    for service in fleet.replicas.values():
        settle(service.url)  # what wrk left in flight counts too, on both sides of the ratio
    after = {name: scrape(s.url) for name, s in fleet.replicas.items()}
    per = {}
    for name in fleet.replicas:
        hits = delta(after[name], before[name], "unipelt_adapter_cache_hits_total")
        misses = delta(after[name], before[name], "unipelt_adapter_cache_misses_total")
        loads = delta(after[name], before[name], STORE_LOADS)
        per[name] = {"hits": hits, "misses": misses, "store_loads": loads}
    seconds = r["duration_us"] / 1e6
    served = [p["hits"] + p["misses"] for p in per.values()]
    hits = sum(p["hits"] for p in per.values())
    return {
        "tasks": tasks,
        "seconds": seconds,
        "requests": r["requests"],
        "rps": r["requests"] / seconds,
        "errors": r["status_errors"] + r["socket_errors"],
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "hit_ratio": hits / sum(served) if sum(served) else float("nan"),
        "store_loads_per_s": sum(p["store_loads"] for p in per.values()) / seconds,
        "store_loads_per_1k": 1000 * sum(p["store_loads"] for p in per.values()) / sum(served)
        if sum(served)
        else float("nan"),
        "requests_max_mean": max(served) / (sum(served) / len(served)) if sum(served) else 0,
        "per_replica": per,
    }


def scan_head(lb_url: str, tasks: int, slots: int, concurrency: int) -> None:
    """One request to each of the `slots` most popular tasks (rank = task index), least
    popular first, so every routing starts its warm-up window near its steady state."""
    queue = iter(range(min(slots, tasks) - 1, -1, -1))

    async def scan() -> None:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=lb_url, limits=limits, timeout=120) as client:

            async def worker() -> None:
                for rank in queue:
                    body = {"inputs": "a scan of the most popular tasks"}
                    r = await client.post(f"/v1/{task_name(rank)}/predict", json=body)
                    r.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(scan())


def simulated(tasks: int, args: argparse.Namespace) -> dict[str, float]:
    """Steady-state bank hit ratios of this fleet's shape (bench/http/fleet_sim.py, the same
    popularity, the benchmark's connections in flight): routing -> hit ratio."""
    sim = argparse.Namespace(
        tasks=tasks,
        replicas=args.replicas,
        slots=args.slots,
        requests=SIM_REQUESTS,
        warmup=SIM_REQUESTS // 2,
        in_flight=max(1, args.connections // args.replicas),
        factor=args.factor,
        points=1600,
        seed=0,
    )
    trace = zipf_trace(tasks, SIM_REQUESTS, shift=0, phase=1, seed=0)
    return {r.routing.split(",")[0]: r.hit_ratio for r in simulate(trace, sim)}


def run(args: argparse.Namespace, root: Path) -> dict:
    texts, text_source = load_texts()
    bodies = root / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"inputs": t}) + "\n" for t in texts[:500]))
    redis = start_embedded_redis(root / "redis")
    fleet = None
    balancers = {}
    try:
        store_dir = root / "fleet" / "shared"
        client = make_client(redis.url, socket_timeout_s=30)
        store = AdapterStore(client, FilesystemBlobStore(store_dir / BLOBS_DIR))
        seeded = seed_store(store, load_backbone(), max(args.tasks), torch.float16)
        log(f"seeded {seeded.tasks} tasks in {seeded.seconds:.0f} s")
        env = {
            "UNIPELT_BLOB_BACKEND": "filesystem",
            "UNIPELT_POOL_SLOTS": str(args.slots),
            "UNIPELT_HOST_CACHE_BYTES": "0",
            "UNIPELT_TORCH_THREADS": "1",
            "UNIPELT_MAX_QUEUE": "8192",
            "UNIPELT_TRUNCATE": "true",
        }
        fleet = start_fleet(root / "fleet", args.replicas, redis.url, env, True, timeout_s=900)
        for name, balance in ROUTINGS.items():
            balancers[name] = start_haproxy(
                root / "lb", fleet.addresses(), balance, args.factor, check_interval="2s"
            )
        windows = []
        for round_ in range(args.rounds):
            for tasks in args.tasks:
                order = list(ROUTINGS) if round_ % 2 == 0 else list(reversed(ROUTINGS))
                for name in order:
                    url = balancers[name].url
                    scan_head(url, tasks, args.replicas * args.slots, args.connections // 4)
                    wrk_window(url, fleet, tasks, bodies, args.warmup, args)  # not measured
                    w = wrk_window(url, fleet, tasks, bodies, args.window, args)
                    w.update(routing=name, round=round_, load=round(os.getloadavg()[0], 1))
                    windows.append(w)
                    log(
                        f"{tasks} tasks, {name}: {w['rps']:.1f} req/s, hit ratio "
                        f"{w['hit_ratio']:.3f}, {w['store_loads_per_s']:.1f} store loads/s"
                    )
        return {
            "windows": windows,
            "simulated": {n: simulated(n, args) for n in args.tasks},
            "seed_s": seeded.seconds,
            "texts": text_source,
        }
    finally:
        for balancer in balancers.values():
            balancer.stop()
        if fleet is not None:
            fleet.stop()
        redis.stop()


def render(results: dict, args: argparse.Namespace) -> str:
    fleet_slots = args.replicas * args.slots
    loads = ", ".join(str(w["load"]) for w in results["windows"])
    lines = [
        f"Command: `{args.command}` ({results['seconds']:.0f} s)",
        "",
        f"Machine: {machine()}, shared with other jobs while it ran (load average "
        f"{results['load_before']} before, {loads} at the end of each window, "
        f"{results['load_after']} after): hit ratios, store loads per request and per-replica "
        "counts do not depend on CPU speed; throughput and latencies do.",
        "",
        f"{args.replicas} replicas x {args.slots} bank slots (host tier off; the fleet holds "
        f"{fleet_slots:,}), one torch thread each, on one embedded Redis with filesystem blobs "
        f"in one shared directory; HAProxy 2.6 with docker/haproxy/haproxy.cfg "
        f"(hash-balance-factor {args.factor}) or the same with `balance roundrobin`; wrk, 1 "
        f"thread, {args.connections} connections, Zipf (s = 1) over the tasks, one text per "
        f"request ({results['texts']}). Each window: a scan of the {fleet_slots:,} most popular "
        f"tasks and {args.warmup:.0f} s of Zipf traffic with the same routing, then "
        f"{args.window:.0f} s measured. x one replica: the bank hit ratio "
        f"over that of one replica holding the fleet's {fleet_slots:,} slots (LRU, simulated "
        f"on the same popularity).",
        "",
        "| tasks | routing | req/s | bank hit ratio | x one replica | store loads/s "
        "| store loads / 1,000 requests | requests per replica max/mean | p50 ms | p99 ms "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w in results["windows"]:
        one = results["simulated"][w["tasks"]]["one replica"]
        lines.append(
            f"| {w['tasks']:,} | {w['routing']} | {w['rps']:.1f} | {w['hit_ratio']:.3f} "
            f"| {w['hit_ratio'] / one:.2f} | {w['store_loads_per_s']:.1f} "
            f"| {w['store_loads_per_1k']:.0f} "
            f"| {w['requests_max_mean']:.2f} | {w['p50_ms']:.0f} | {w['p99_ms']:.0f} "
            f"| {w['errors']} |"
        )
    lines += [
        "",
        f"Simulated steady state of this shape (bench/http/fleet_sim.py: {SIM_REQUESTS:,} "
        f"requests, the second half counted, {max(1, args.connections // args.replicas)} in "
        "flight per replica), bank hit ratio:",
        "",
        "| tasks | " + " | ".join(next(iter(results["simulated"].values()))) + " |",
        "|---|" + "---|" * len(next(iter(results["simulated"].values()))),
    ]
    for n, ratios in results["simulated"].items():
        lines.append(f"| {n:,} | " + " | ".join(f"{h:.3f}" for h in ratios.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = f"{os.getloadavg()[0]:.1f}"
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        results = run(args, Path(tmp))
    results.update(
        command=args.command,
        seconds=time.perf_counter() - started,
        load_before=load_before,
        load_after=f"{os.getloadavg()[0]:.1f}",
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    markdown = render(results, args)
    print(markdown)
    if args.out:
        replace_block(args.out, BEGIN, END, markdown)
    return results


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
