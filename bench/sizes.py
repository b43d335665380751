"""How big a run is: full (about 10 minutes on 2 cores) or quick (under a minute)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunSize:
    mode: str
    batch: int  # batch size of every batched row (and the service's max batch size)
    windows: int  # arrival windows of `batch` requests, each run by every row in turn
    http_repeats: int  # HTTP bursts, each paired with the engine on the same requests
    workloads: tuple[str, ...]  # "10u" = 10 tasks, uniform popularity; "100z" = Zipf
    apl_mixed: tuple[str, ...]
    apl_grouped: tuple[str, ...]
    peft: tuple[str, ...]  # workloads of the LoRA-only rows (ours and PEFT's)
    http: str  # workload driven over HTTP
    http_requests: int  # per burst
    http_concurrency: int
    http_max_s: float  # per burst
    cold_tasks: int
    cold_passes: int
    swaps: int

    @property
    def max_tasks(self) -> int:
        return max(parse_workload(w)[0] for w in self.workloads)


def parse_workload(key: str) -> tuple[int, str]:
    """ "100z" -> (100, "zipf"); "10u" -> (10, "uniform")."""
    return int(key[:-1]), {"u": "uniform", "z": "zipf"}[key[-1]]


FULL = RunSize(
    mode="full",
    batch=32,
    windows=4,
    http_repeats=3,
    workloads=("1u", "10u", "100u", "100z"),
    apl_mixed=("1u", "10u", "100u", "100z"),
    apl_grouped=("10u", "100u", "100z"),
    peft=("10u", "100z"),
    http="100z",
    http_requests=128,
    http_concurrency=64,
    http_max_s=30.0,
    cold_tasks=64,
    cold_passes=2,
    swaps=10,
)

QUICK = RunSize(
    mode="quick",
    batch=4,
    windows=2,
    http_repeats=2,
    workloads=("1u", "10u"),
    apl_mixed=("1u", "10u"),
    apl_grouped=("10u",),
    peft=("10u",),
    http="10u",
    http_requests=16,
    http_concurrency=8,
    http_max_s=10.0,
    cold_tasks=8,
    cold_passes=2,
    swaps=2,
)
