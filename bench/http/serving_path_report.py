"""The markdown section of `python -m bench.http.serving_path`."""

from __future__ import annotations

import statistics
from collections import defaultdict

from bench.report import fmt, replace_block
from bench.run import machine

BEGIN, END = "<!-- serving-path:begin -->", "<!-- serving-path:end -->"
THREADS = (
    "main",
    "prepare",
    "forward",
    "forward (waiting)",
    "intra-op workers",
    "forward process, other",
    "other",
)


def write_section(path, markdown: str) -> None:
    replace_block(path, BEGIN, END, markdown)


def render(results: dict) -> str:
    """One row per (connections, texts): medians over the rounds."""
    groups: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for side in results["sides"]:
        groups[(side["connections"], side["texts"])].append(side)
    env = ", ".join(f"{k}={v}" for k, v in results["server_env"].items() if v) or "none"
    lines = [
        f"Command: `{results['command']}`",
        "",
        f"Machine: {machine()}. Thread policy: {results['policy']}. Server settings: {env}.",
        f"Texts: a seeded sample of 500 of {results['texts_source']}, drawn by both sides. "
        "10 tasks, uniform. Engine: `BatchRunner.run` on batches of 32 rows in this process, "
        "one forward at a time on every core and the thread policy's forwards side by side "
        "(the faster is the baseline). Medians of "
        f"{len(next(iter(groups.values())))} interleaved window(s).",
        "",
        "| connections | texts/request | HTTP req/s | HTTP seq/s | engine seq/s | HTTP / engine "
        "| server CPU ms/request | engine CPU ms/seq | outside the forward ms/request "
        "| p50 ms | p99 ms | errors | load before -> during |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (connections, texts), sides in sorted(groups.items()):
        m = {k: statistics.median(s[k] for s in sides) for k in _NUMERIC}
        lines.append(
            f"| {connections} | {texts} | {fmt(m['http_rps'], 1)} | {fmt(m['http_seq_s'], 1)} "
            f"| {fmt(m['engine_seq_s'], 1)} | **{m['ratio']:.2f}x** "
            f"| {m['server_cpu_ms_per_request']:.2f} | {m['engine_cpu_ms_per_seq']:.2f} "
            f"| {m['outside']:.2f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} | {int(m['errors'])} "
            f"| {m['load_before']:.2f} -> {m['load_during']:.2f} |"
        )
    lines += [
        "",
        "Server CPU per request by thread, the forward process included (ms): `main` the "
        "event loop, `forward` the forward's own CPU wherever it ran "
        "(`unipelt_forward_cpu_seconds_total`), `forward (waiting)` this process's forward "
        "threads while the forward process computes, `intra-op workers` the threads an "
        "in-process forward starts, `forward process, other` the rest of that process:",
        "",
        "| connections | texts/request | " + " | ".join(THREADS) + " |",
        "|---|---|" + "---|" * len(THREADS),
    ]
    for (connections, texts), sides in sorted(groups.items()):
        per = [
            statistics.median(s["threads_ms_per_request"].get(t, 0.0) for s in sides)
            for t in THREADS
        ]
        lines.append(f"| {connections} | {texts} | " + " | ".join(f"{v:.2f}" for v in per) + " |")
    return "\n".join(lines)


_NUMERIC = (
    "http_rps",
    "http_seq_s",
    "engine_seq_s",
    "ratio",
    "server_cpu_ms_per_request",
    "engine_cpu_ms_per_seq",
    "outside",
    "p50_ms",
    "p99_ms",
    "errors",
    "load_before",
    "load_during",
)
