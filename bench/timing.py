"""Timing helpers: per-request completion times within a window, percentiles, medians."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

from bench.workload import Request

# A row runner serves one arrival window and returns each request's completion time (seconds
# from the window's start, in request order).
Runner = Callable[[list[Request]], list[float]]


def run_groups(
    window: list[Request], groups: list[list[int]], forward: Callable[[list[Request]], object]
) -> list[float]:
    """Run `forward` on each group of request indices in turn; completion time per request."""
    done = [0.0] * len(window)
    start = time.perf_counter()
    for group in groups:
        forward([window[i] for i in group])
        now = time.perf_counter() - start
        for i in group:
            done[i] = now
    return done


def by_task(window: list[Request]) -> list[list[int]]:
    """Indices grouped by task, oldest task first (what the "grouped" batcher policy does)."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(window):
        groups.setdefault(r.task, []).append(i)
    return list(groups.values())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan
