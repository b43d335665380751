"""The serving path against the engine: HTTP requests per second (wrk) beside the in-process
engine's sequences per second, in one run, windows interleaved, with the server's CPU per
request split by thread (event loop, prepare, forward, its intra-op workers, the rest).

    python -m bench.http.serving_path                       # 64 and 256 connections, 1 and 8 texts
    python -m bench.http.serving_path --quick               # short windows, one round
    python -m bench.http.serving_path --env OMP_WAIT_POLICY=ACTIVE   # try a server setting

Both sides use the same default thread policy unless `--threads` sets one: the server's own
choice (`service/threads.py`) applied in this process too. The load average is sampled before
and during every window: a ratio between two processes is honest only on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from adapters.backbone import load_backbone
from bench.http.scale_seed import seed_store
from bench.http.scale_side import InProcessEngine
from bench.http.scale_wrk import run_wrk, settle
from bench.http.serving_path_report import render, write_section
from bench.workload import load_texts
from harness.service_process import start_service
from harness.thread_cpu import thread_cpu
from service.store.adapter_store import AdapterStore
from service.store.blobs import FilesystemBlobStore
from service.store.embedded import start_embedded_redis
from service.store.factory import BLOBS_DIR, make_client
from service.threads import ThreadPolicy, choose_thread_policy

TASKS = 10
POOL = 500  # texts both sides draw from, a seeded sample of all (GLUE: sst2 and cola mixed)


@dataclass
class Side:
    """One HTTP window and the engine window beside it."""

    connections: int
    texts: int
    http_rps: float
    http_seq_s: float
    engine_seq_s: float  # the faster of the two engine windows: the baseline
    engine_one_seq_s: float  # one forward at a time on every core's intra-op threads
    engine_policy_seq_s: float  # the thread policy's forwards side by side
    server_cpu_ms_per_request: float
    engine_cpu_ms_per_seq: float
    p50_ms: float
    p99_ms: float
    errors: int
    wrk_cpu_ms_per_request: float
    load_before: float
    load_during: float
    threads_ms_per_request: dict[str, float] = field(default_factory=dict)
    server: dict[str, float] = field(default_factory=dict)  # the server's counters' deltas

    @property
    def ratio(self) -> float:
        return self.http_seq_s / self.engine_seq_s

    @property
    def outside_forward_ms(self) -> float:
        """Server CPU per request beyond what the engine spends on its sequences."""
        return self.server_cpu_ms_per_request - self.texts * self.engine_cpu_ms_per_seq


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.http.serving_path")
    p.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    p.add_argument("--texts", type=int, nargs="+", default=[1, 8], help="texts per request")
    p.add_argument("--window", type=float, default=20.0, help="seconds per measured window")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch threads on both sides (default: policy)")
    p.add_argument("--workers", type=int, help="forward workers on both sides (default: policy)")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    p.add_argument("--quick", action="store_true", help="10 s windows, one round")
    p.add_argument("--out", type=Path, help="write the section into this markdown file")
    p.add_argument("--json", type=Path, default=Path("bench/results/serving_path.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.window, args.rounds = 10.0, 1
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "python -m bench.http.serving_path " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    policy = choose_thread_policy("cpu", args.threads, args.workers)
    every, source = load_texts()
    texts = random.Random(0).sample(every, min(POOL, len(every)))  # both sides draw from these
    with tempfile.TemporaryDirectory(prefix="bench-path-") as tmp:
        sides, server_env = run(args, policy, Path(tmp), texts)
    results = {
        "command": command.strip(),
        "texts_source": source,
        "policy": policy.describe(),
        "cores": policy.cores,
        "server_env": server_env,
        "sides": [{**asdict(s), "ratio": s.ratio, "outside": s.outside_forward_ms} for s in sides],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    markdown = render(results)
    print(markdown)
    if args.out:
        write_section(args.out, markdown)
    return results


def run(
    args: argparse.Namespace, policy: ThreadPolicy, root: Path, texts: list[str]
) -> tuple[list[Side], dict]:
    redis = start_embedded_redis(root / "redis")
    service = None
    try:
        client = make_client(redis.url, socket_timeout_s=30)
        data = root / "service"
        store = AdapterStore(client, FilesystemBlobStore(data / BLOBS_DIR))
        backbone = load_backbone()
        seed_store(store, backbone, TASKS, torch.float16)
        env = {
            "REDIS_URL": redis.url,
            "UNIPELT_BLOB_BACKEND": "filesystem",
            "UNIPELT_MAX_QUEUE": "8192",
            "UNIPELT_TRUNCATE": "true",
            # the server's own thread policy unless --threads sets one
            "UNIPELT_TORCH_THREADS": str(args.threads) if args.threads else "",
            "UNIPELT_FORWARD_WORKERS": str(args.workers) if args.workers else "",
        }
        env.update(dict(kv.split("=", 1) for kv in args.env))
        service = start_service(data, env, timeout_s=300)
        engine = InProcessEngine(backbone, store, TASKS, 32, texts)
        engine.window(3)  # allocator and tokenizer warm-up
        bodies = {n: write_bodies(root / f"bodies-{n}.jsonl", texts, n) for n in args.texts}
        run_wrk(service.url, "uniform", TASKS, bodies[1], 3, 32)  # residents, warm-up
        sides = []
        for _ in range(args.rounds):
            for connections in args.connections:
                for n in args.texts:
                    side = window(args, policy, service, engine, bodies[n], connections, n)
                    sides.append(side)
        return sides, {k: v for k, v in env.items() if k != "REDIS_URL"}
    finally:
        if service is not None:
            service.stop()
        redis.stop()


def window(
    args, policy: ThreadPolicy, service, engine: InProcessEngine, bodies: Path, connections, n
) -> Side:
    settle(service.url)
    load_before = os.getloadavg()[0]
    sampler = LoadSampler()
    pid = service.process.pid
    cpu_before = thread_cpu(pid)
    with sampler:
        w = run_wrk(service.url, "uniform", TASKS, bodies, args.window, connections)
    cpu_after = thread_cpu(pid)
    settle(service.url)
    cores = policy.cores
    one = engine.window(args.window, workers=1, threads=args.threads or cores)
    mine = engine.window(args.window, policy.forward_workers, policy.intra_op)
    e = max(one, mine, key=lambda w: w.seq_per_s)
    requests = max(1, w.requests)
    per = {
        k: 1000 * (cpu_after.get(k, 0.0) - cpu_before.get(k, 0.0)) / requests
        for k in cpu_before.keys() | cpu_after.keys()
    }
    server_ms = sum(per.values())  # the server and its forward process, every thread
    forward = 1000 * w.metrics["forward_cpu_s"] / requests  # wherever the forward ran
    if "child" in per:  # the forward process: its forwards, and what else it spent
        per["forward process, other"] = per.pop("child") - forward
        per["forward (waiting)"] = per.pop("forward", 0.0)
    else:
        per["intra-op workers"] = per.pop("forward", 0.0) - forward
    per["forward"] = forward
    side = Side(
        connections=connections,
        texts=n,
        http_rps=w.rps,
        http_seq_s=w.rps * n,
        engine_seq_s=e.seq_per_s,
        engine_one_seq_s=one.seq_per_s,
        engine_policy_seq_s=mine.seq_per_s,
        server_cpu_ms_per_request=server_ms,
        engine_cpu_ms_per_seq=1000 * e.cpu_s_per_seq,
        p50_ms=w.p50_ms,
        p99_ms=w.p99_ms,
        errors=w.status_errors + w.socket_errors,
        wrk_cpu_ms_per_request=1000 * w.wrk_cpu_s / max(1, w.requests),
        load_before=load_before,
        load_during=sampler.peak,
        threads_ms_per_request=per,
        server=w.metrics,
    )
    log(
        f"{connections} conns x {n} texts: {side.http_seq_s:.1f} seq/s over HTTP, engine "
        f"{side.engine_seq_s:.1f}: {side.ratio:.2f}x; server {side.server_cpu_ms_per_request:.2f}"
        f" ms CPU/request; load {load_before:.2f} -> {sampler.peak:.2f}"
    )
    return side


def write_bodies(path: Path, texts: list[str], n: int) -> Path:
    """500 request bodies of `n` texts each drawn from `texts` (one text: a plain string), so
    requests carry the lengths the engine's batches draw from the same texts."""
    rng, lines = random.Random(n), []
    for _ in range(500):
        chosen = rng.choices(texts, k=n)
        lines.append(json.dumps({"inputs": chosen[0] if n == 1 else chosen}))
    path.write_text("\n".join(lines) + "\n")
    return path


class LoadSampler:
    """The highest 1-minute load average seen while the block runs (sampled every second)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, os.getloadavg()[0])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
