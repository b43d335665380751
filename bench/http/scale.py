"""The many-tasks benchmark: N registered tasks (seeded through the store API), one replica
with R resident slots, wrk driving Zipf (s = 1) traffic over all N, against the same server
with 10 tasks and against the in-process engine, windows interleaved.

    python -m bench.http.scale --out docs/benchmarks.md     # 10,000 tasks, 1,000 slots
    python -m bench.http.scale --quick                      # 300 tasks, 50 slots, short windows
    python -m bench.http.scale --loads-only                 # per-load timings only, no server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import torch

from adapters.backbone import load_backbone
from bench.http.scale_report import render, render_loads, write_section
from bench.http.scale_seed import seed_store, task_name
from bench.http.scale_side import InProcessEngine, load_timings
from bench.http.scale_wrk import Window, run_wrk, settle
from bench.workload import load_texts
from harness.service_process import start_service
from service.store.adapter_store import AdapterStore
from service.store.blobs import FilesystemBlobStore
from service.store.embedded import start_embedded_redis
from service.store.factory import BLOBS_DIR, make_client


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.http.scale", description=__doc__.split("\n")[0]
    )
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--resident", type=int, default=1000)
    p.add_argument("--window", type=float, default=30.0, help="seconds per measured window")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of windows")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch threads (server and engine)")
    p.add_argument("--load-samples", type=int, default=200)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--loads-only",
        action="store_true",
        help="only the exact per-load timings (float16 and float32, --rounds times), no server",
    )
    p.add_argument("--out", type=Path, help="write the section into this markdown file")
    p.add_argument("--json", type=Path, default=Path("bench/results/scale.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.resident, args.window, args.rounds = 300, 50, 10.0, 1
        args.load_samples = 40
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "python -m bench.http.scale " + " ".join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    if args.loads_only:
        with tempfile.TemporaryDirectory(prefix="bench-loads-") as tmp:
            rounds = loads_only(args, Path(tmp))
        print(render_loads(rounds, command))
        return {"loads": rounds}
    texts, text_source = load_texts()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        results = run(args, Path(tmp), texts)
    results.update(command=command.strip(), texts=text_source)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    markdown = render(results)
    print(markdown)
    if args.out:
        write_section(args.out, markdown)
    return results


def run(args: argparse.Namespace, root: Path, texts: list[str]) -> dict:
    bodies = root / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"inputs": t}) + "\n" for t in texts[:500]))
    redis = start_embedded_redis(root / "redis")
    service = None
    try:
        client = make_client(redis.url, socket_timeout_s=30)
        data = root / "service"
        store = AdapterStore(client, FilesystemBlobStore(data / BLOBS_DIR))
        backbone = load_backbone()
        redis_before = int(client.info("memory")["used_memory"])
        seeded = seed_store(store, backbone, args.tasks, torch.float16)
        log(f"seeded {seeded.tasks} tasks in {seeded.seconds:.0f} s")
        redis_after = int(client.info("memory")["used_memory"])
        blob_bytes = sum(f.stat().st_size for f in (data / BLOBS_DIR).rglob("*") if f.is_file())
        r = {"tasks": args.tasks, "resident": args.resident, "threads": args.threads}
        r["connections"] = args.connections
        r["seed"] = {"seconds": seeded.seconds, "by_method": seeded.by_method}
        r["store"] = {
            "redis_bytes_per_task": (redis_after - redis_before) / args.tasks,
            "blob_bytes_per_task": blob_bytes / args.tasks,
            "weights_bytes_per_task": seeded.weight_bytes / args.tasks,
        }
        env = {
            "REDIS_URL": redis.url,
            "UNIPELT_BLOB_BACKEND": "filesystem",
            "UNIPELT_POOL_SLOTS": str(args.resident),
            "UNIPELT_TORCH_THREADS": str(args.threads),
            "UNIPELT_MAX_QUEUE": "8192",
            "UNIPELT_TRUNCATE": "true",
        }
        started = time.perf_counter()
        service = start_service(data, env, timeout_s=900)
        r["startup_s"] = time.perf_counter() - started
        server = psutil.Process(service.process.pid)
        r["rss_start_mb"] = server.memory_info().rss / 2**20
        r["pool_start"] = httpx.get(f"{service.url}/readyz", timeout=30).json()["pool"]
        r.update(measure(args, service.url, server, bodies, store, backbone, texts))
        r["load_fp16"] = load_timings(store, backbone, args.load_samples)
        f32 = AdapterStore(client, FilesystemBlobStore(root / "f32"), prefix="f32:")
        seed_store(f32, backbone, args.load_samples, torch.float32)
        r["load_fp32"] = load_timings(f32, backbone, args.load_samples)
        return r
    finally:
        if service is not None:
            service.stop()
        redis.stop()


def loads_only(args: argparse.Namespace, root: Path) -> list[dict]:
    """`load_timings` on `--load-samples` tasks per stored dtype, dtypes interleaved per round."""
    redis = start_embedded_redis(root / "redis")
    try:
        client = make_client(redis.url, socket_timeout_s=30)
        backbone = load_backbone()
        stores = {}
        for name, dtype in (("float16", torch.float16), ("float32", torch.float32)):
            stores[name] = AdapterStore(client, FilesystemBlobStore(root / name), f"{name}:")
            seed_store(stores[name], backbone, args.load_samples, dtype)
        n = args.load_samples
        return [
            {k: load_timings(s, backbone, n) for k, s in stores.items()} for _ in range(args.rounds)
        ]
    finally:
        redis.stop()


def measure(args, url: str, server: psutil.Process, bodies: Path, store, backbone, texts) -> dict:
    def wrk(mode: str, tasks: int, seconds: float) -> Window:
        w = run_wrk(url, mode, tasks, bodies, seconds, args.connections)
        log(
            f"{mode} {tasks}: {w.rps:.1f} req/s, hit ratio {w.hit_ratio:.3f}, p99 {w.p99_ms:.0f} ms"
        )
        return w

    engine = InProcessEngine(backbone, store, 10, 32, texts[:500])  # the bodies' texts
    engine.window(3)  # first calls: allocator and tokenizer warm-up, not measured
    wrk("uniform", 10, 3)  # residents for the 10-task windows
    # Warm-up, not measured: the Zipf head (rank = task index), least popular first, so the
    # bank starts near its steady state; then one Zipf window for the churn below the head.
    # Each in-flight request pins a distinct task here: stay well under the slot count.
    scan_concurrency = min(args.connections, max(1, args.resident // 4))
    head = min(args.resident, args.tasks)
    warmup = scan_tasks(url, range(head - 1, -1, -1), scan_concurrency)
    log(f"warm-up scan of the Zipf head: {warmup}")
    wrk("zipf", args.tasks, args.window)
    few, many, inproc = [], [], []
    for _ in range(args.rounds):
        few.append(wrk("uniform", 10, args.window))
        settle(url)  # the server idle while the engine runs
        inproc.append(engine.window(args.window))
        log(f"in-process engine: {inproc[-1].seq_per_s:.1f} seq/s")
        many.append(wrk("zipf", args.tasks, args.window))
    out: dict = {
        "warmup": {"head_tasks": head, "scan": warmup},
        "windows": {"ten": [vars(w) for w in few], "zipf": [vars(w) for w in many]},
        "engine": [vars(e) for e in inproc],
        "zipf_vs_ten": statistics.median(ratio(z.rps, t.rps) for z, t in zip(many, few)),
        "http_vs_engine": statistics.median(ratio(t.rps, e.seq_per_s) for t, e in zip(few, inproc)),
        "cpu_outside_forward_ms": statistics.median(
            1000 * (ratio(t.server_cpu_s, t.metrics["rows"]) - e.cpu_s_per_seq)
            for t, e in zip(few, inproc)
        ),
    }
    uniform = {}
    for n in (100, 1000):
        if n > args.resident:
            continue
        scan_tasks(url, range(n), scan_concurrency)  # every task once: resident from here on
        uniform[n] = vars(wrk("uniform", n, args.window))
    out["uniform"] = uniform
    out["rss_before_scan_mb"] = server.memory_info().rss / 2**20
    out["scan"] = scan_tasks(url, range(args.tasks), scan_concurrency)
    log(f"scan of {args.tasks} tasks: {out['scan']}")
    out["rss_after_scan_mb"] = server.memory_info().rss / 2**20
    out["pool_end"] = httpx.get(f"{url}/readyz", timeout=30).json()["pool"]
    return out


def scan_tasks(url: str, tasks: range, concurrency: int) -> dict:
    """One request to each of `tasks`, in order (wrk runs for a fixed time, a scan has an
    end)."""
    settle(url)
    n = len(tasks)

    async def scan() -> dict:
        statuses: dict[int, int] = {}
        queue = iter(tasks)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

            async def worker() -> None:
                for task in queue:
                    body = {"inputs": "a scan of every task"}
                    for attempt in range(3):  # a keep-alive connection the server closed
                        try:
                            r = await client.post(f"/v1/{task_name(task)}/predict", json=body)
                            break
                        except httpx.TransportError:
                            statuses[-1] = statuses.get(-1, 0) + 1  # counted as -1
                            if attempt == 2:
                                raise
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"requests": n, "seconds": time.perf_counter() - started, "statuses": statuses}

    return asyncio.run(scan())


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
