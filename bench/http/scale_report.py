"""The markdown section of `python -m bench.http.scale`."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.report import fmt, replace_block
from bench.run import machine

BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"


def write_section(path: Path, markdown: str) -> None:
    replace_block(path, BEGIN, END, markdown)


def _med(windows: list[dict], key: str) -> float:
    return statistics.median(w[key] for w in windows)


def _rps(w: dict) -> float:
    return w["requests"] / w["seconds"]


def _hit(w: dict) -> float:
    m = w["metrics"]
    return m["hits"] / (m["hits"] + m["misses"]) if m["hits"] + m["misses"] else float("nan")


def _no_fetch(w: dict) -> float:
    m = w["metrics"]
    total = m["hits"] + m["misses"]
    return (m["hits"] + m["host_loads"]) / total if total else float("nan")


def _host_tier(r: dict) -> str:
    pool = r.get("pool_start", {})
    if "host_budget_bytes" not in pool:
        return "default host tier"
    return (
        f"default host tier ({pool['host_budget_bytes'] / 2**30:.2f} GiB: "
        f"{pool.get('host_budget_from', '?')})"
    )


def ms(values: dict, key: str) -> str:
    return f"{fmt(values[key], 1)} ms"


def _outside_forward_metric(windows: list[dict]) -> float:
    return statistics.median(
        1000
        * (w["metrics"]["process_cpu_s"] - w["metrics"]["forward_cpu_s"])
        / max(1, w["metrics"]["rows"])
        for w in windows
    )


def _cpu_per_request(windows: list[dict]) -> float:
    return statistics.median(
        1000 * w["server_cpu_s"] / max(1, w["metrics"]["rows"]) for w in windows
    )


def _row(name: str, windows: list[dict]) -> str:
    rps = statistics.median(_rps(w) for w in windows)
    hit = statistics.median(_hit(w) for w in windows)
    store = statistics.median(w["metrics"]["store_loads"] / w["seconds"] for w in windows)
    host = statistics.median(w["metrics"]["host_loads"] / w["seconds"] for w in windows)
    wrk_share = statistics.median(w["wrk_cpu_s"] / w["seconds"] for w in windows)
    errors = sum(w["status_errors"] + w["socket_errors"] for w in windows)
    return (
        f"| {name} | {fmt(rps)} | {fmt(hit, 3)} | {fmt(store)} | {fmt(host)} | "
        f"{fmt(_med(windows, 'p50_ms'), 0)} | {fmt(_med(windows, 'p99_ms'), 0)} | "
        f"{fmt(100 * wrk_share / 2, 0)}% | {errors} |"
    )


def render(r: dict) -> str:
    ten, zipf = r["windows"]["ten"], r["windows"]["zipf"]
    n, slots = r["tasks"], r["resident"]
    loads = {k: statistics.median(w["metrics"][k] for w in zipf) for k in zipf[0]["metrics"]}
    engine_cpu_ms = 1000 * statistics.median(e["cpu_s_per_seq"] for e in r["engine"])
    out = [
        f"Command: `{r['command']}`",
        "",
        f"Machine: {machine()}, shared with other jobs while it ran (figures are noisy; every "
        "ratio pairs windows measured back to back). torch threads: "
        f"{r['threads']} (server and in-process engine). Texts: {r['texts']}.",
        "",
        f"Setup: {n:,} registered tasks seeded through `AdapterStore.publish` in "
        f"{fmt(r['seed']['seconds'], 0)} s ({_mix(r['seed']['by_method'])}; paper sizes: LoRA "
        "r 8, bottleneck 48, prefix 10; stored float16), one replica with "
        f"`UNIPELT_POOL_SLOTS={slots}`, {_host_tier(r)}, filesystem blobs, embedded "
        f"Redis on a unix socket. wrk: 1 thread, {r['connections']} "
        "connections, one text per request. Rounds: 10-task window, in-process engine window, "
        f"Zipf window, {len(ten)} times (each {fmt(ten[0]['seconds'], 0)} s), after a warm-up "
        f"that is not measured: one request to each of the {r['warmup']['head_tasks']:,} most "
        f"popular Zipf tasks, least popular first ({fmt(r['warmup']['scan']['seconds'], 0)} s), "
        "then one Zipf window.",
        "",
        "| traffic | req/s | bank hit ratio | store loads/s | host-tier loads/s | p50 ms | "
        "p99 ms | wrk CPU (of 2 cores) | errors |",
        "|---|---|---|---|---|---|---|---|---|",
        _row("10 tasks, uniform", ten),
        _row(f"{n:,} tasks, Zipf s=1", zipf),
    ]
    per_window = ", ".join(f"{fmt(_hit(w), 3)} / {fmt(_no_fetch(w), 3)}" for w in zipf)
    for tasks, w in sorted(r["uniform"].items(), key=lambda kv: int(kv[0])):
        out.append(_row(f"{int(tasks):,} tasks, uniform (after one pass over them)", [w]))
    out += [
        "",
        f"- Zipf windows in order, bank hit ratio / share of requests served without a store "
        f"fetch (bank hits and host-tier copies): {per_window}.",
        f"- Zipf over {n:,} / 10 tasks, throughput: **{fmt(r['zipf_vs_ten'], 2)}x** (median of "
        "per-round ratios).",
        f"- HTTP (10 tasks) / in-process engine (`BatchRunner.run`: tokenise + mixed forward, "
        f"batches of 32, 10 tasks): **{fmt(r['http_vs_engine'], 2)}x** (engine "
        f"{fmt(statistics.median(e['seq_per_s'] for e in r['engine']))} seq/s).",
        "- Server CPU per sequence outside the forward (10-task windows, per row the server ran): "
        "process CPU minus the forward thread's CPU (`unipelt_forward_cpu_seconds_total`; "
        "tokenising is on the prepare thread, so it counts as outside; exact with one torch "
        "thread, else the other "
        f"threads' share counts as outside): **{fmt(_outside_forward_metric(ten), 2)} ms**. "
        f"Cross-check: server process CPU {fmt(_cpu_per_request(ten), 2)} ms per row against "
        f"the in-process engine's {fmt(engine_cpu_ms, 2)} ms per sequence "
        f"(difference {fmt(r['cpu_outside_forward_ms'], 2)} ms).",
        "- Loads under Zipf load (server histogram, linear within buckets): store p50 "
        f"{ms(loads, 'store_load_p50_ms')} / p99 {ms(loads, 'store_load_p99_ms')}; host tier "
        f"p50 {ms(loads, 'host_load_p50_ms')} / p99 {ms(loads, 'host_load_p99_ms')}.",
        "",
        _loads_table(r),
        "",
        _memory_lines(r),
    ]
    return "\n".join(out) + "\n"


def _mix(by_method: dict[str, int]) -> str:
    names = {"apl": "UniPELT APL", "l": "LoRA-only", "ap": "AP (prefix + adapter, gated)"}
    return ", ".join(f"{count:,} {names.get(m, m)}" for m, count in sorted(by_method.items()))


def _loads_table(r: dict) -> str:
    f16, f32 = r["load_fp16"], r["load_fp32"]
    return "\n".join(
        [
            "Per load, exact, in-process with the server idle (`AdapterLoader.acquire` on an "
            "8-slot bank, distinct tasks of the mix; store = fetch from the filesystem blobs, "
            "checksum, parse, validate, slot write; host tier = one copy into a slot):",
            "",
            "| artifact dtype | store p50 ms | store p99 ms | host p50 ms | host p99 ms |",
            "|---|---|---|---|---|",
            *(
                f"| {name} | {fmt(d['store_p50_ms'], 2)} | {fmt(d['store_p99_ms'], 2)} | "
                f"{fmt(d['host_p50_ms'], 2)} | {fmt(d['host_p99_ms'], 2)} |"
                for name, d in (("float16", f16), ("float32", f32))
            ),
        ]
    )


def render_loads(rounds: list[dict], command: str) -> str:
    """The `--loads-only` table: one row per round and stored dtype."""
    rows = [
        f"| {i + 1} | {name} | {fmt(d['store_p50_ms'], 2)} | {fmt(d['store_p99_ms'], 2)} | "
        f"{fmt(d['host_p50_ms'], 2)} | {fmt(d['host_p99_ms'], 2)} |"
        for i, r in enumerate(rounds)
        for name, d in r.items()
    ]
    head = "| round | artifact dtype | store p50 ms | store p99 ms | host p50 ms | host p99 ms |"
    return "\n".join([f"Command: `{command}`", "", head, "|---|---|---|---|---|---|", *rows])


def _memory_lines(r: dict) -> str:
    s = r["store"]
    scan = r["scan"]
    return "\n".join(
        [
            f"- Startup with {r['tasks']:,} registered tasks (process start to `/readyz` 200): "
            f"{fmt(r['startup_s'], 1)} s.",
            f"- Server RSS: {fmt(r['rss_start_mb'], 0)} MiB at start; "
            f"{fmt(r['rss_before_scan_mb'], 0)} MiB before and {fmt(r['rss_after_scan_mb'], 0)} "
            f"MiB after a scan of {r['tasks']:,} distinct tasks ({scan['requests']:,} requests in "
            f"{fmt(scan['seconds'], 0)} s, statuses {scan['statuses']}); pool at the end: "
            f"{r.get('pool_end', {})}.",
            f"- Per registered task: Redis {fmt(s['redis_bytes_per_task'] / 1024, 1)} KiB (index "
            f"only), blobs {fmt(s['blob_bytes_per_task'] / 2**20, 2)} MiB on disk (weights "
            f"{fmt(s['weights_bytes_per_task'] / 2**20, 2)} MiB).",
        ]
    )
