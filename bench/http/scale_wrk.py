"""Drive the service with wrk (bench/http/scale.lua) and read its /metrics: one measured window."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LUA = Path(__file__).with_name("scale.lua")
_SEEDS = itertools.count(1)  # every wrk run draws its own task sequence
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


def scrape(url: str) -> dict[str, float]:
    """Every sample line of /metrics: 'name{labels}' -> value."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {m[1]: float(m[2]) for m in map(SAMPLE.match, text.splitlines()) if m}


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def histogram_quantile(
    after: dict[str, float], before: dict[str, float], name: str, labels: str, q: float
) -> float:
    """Quantile of a histogram's observations between two scrapes, linear within a bucket
    (as Prometheus' histogram_quantile); seconds, nan when nothing was observed."""
    buckets = []
    for key in after:
        if key.startswith(f"{name}_bucket{{") and labels in key:
            le = re.search(r'le="([^"]+)"', key)
            if le:
                buckets.append((float(le[1]), delta(after, before, key)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


def settle(url: str, timeout_s: float = 120.0) -> None:
    """Wait until the server's queue is empty (requests a stopped client left behind)."""
    deadline = time.monotonic() + timeout_s
    while scrape(url).get("unipelt_queue_depth", 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # the last batch's forward


@dataclass
class Window:
    """One wrk run and the server's counters over it."""

    mode: str
    tasks: int
    seconds: float
    requests: int
    status_errors: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    wrk_cpu_s: float
    server_cpu_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)  # deltas of the counters below

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def hit_ratio(self) -> float:
        hits, misses = self.metrics["hits"], self.metrics["misses"]
        return hits / (hits + misses) if hits + misses else math.nan


COUNTERS = {
    "hits": "unipelt_adapter_cache_hits_total",
    "misses": "unipelt_adapter_cache_misses_total",
    "store_loads": 'unipelt_adapter_load_source_seconds_count{source="store"}',
    "host_loads": 'unipelt_adapter_load_source_seconds_count{source="host"}',
    "forward_s": "unipelt_forward_seconds_sum",
    "batches": "unipelt_forward_seconds_count",
    "rows": "unipelt_batch_size_sum",
    "forward_cpu_s": "unipelt_forward_cpu_seconds_total",
    "process_cpu_s": "process_cpu_seconds_total",
}
LOAD = "unipelt_adapter_load_source_seconds"


def run_wrk(
    url: str,
    mode: str,
    tasks: int,
    bodies: Path,
    seconds: float,
    connections: int,
    threads: int = 1,
) -> Window:
    """Run wrk for `seconds`; wrk's own CPU time from wait4. Starts once the server has
    finished what an earlier window left queued, so windows do not overlap."""
    settle(url)
    before = scrape(url)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    cmd += ["--timeout", "30s", "-s", str(LUA), url, "--", mode, str(tasks), str(bodies)]
    cmd += [str(next(_SEEDS))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    line = next((x for x in out.splitlines() if x.startswith("SCALE-RESULT ")), None)
    if status != 0 or line is None:
        raise RuntimeError(f"wrk failed ({status}):\n{out}")
    r = json.loads(line.split(" ", 1)[1])
    after = scrape(url)
    window = Window(
        mode=mode,
        tasks=tasks,
        seconds=r["duration_us"] / 1e6,
        requests=r["requests"],
        status_errors=r["status_errors"],
        socket_errors=r["socket_errors"],
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        wrk_cpu_s=usage.ru_utime + usage.ru_stime,
    )
    window.metrics = {k: delta(after, before, v) for k, v in COUNTERS.items()}
    for source in ("store", "host"):
        for q in (50, 99):
            window.metrics[f"{source}_load_p{q}_ms"] = 1000 * histogram_quantile(
                after, before, LOAD, f'source="{source}"', q / 100
            )
    window.server_cpu_s = window.metrics["process_cpu_s"]
    return window
