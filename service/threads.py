"""The process's thread policy: how many batches run their forwards side by side (forward
workers) and how many intra-op threads each uses, and the names the service's own threads
carry (so `top -H` and the benchmarks can tell them apart).

On CPU the default is one forward worker per core (at most `MAX_DEFAULT_WORKERS`), their
intra-op threads sharing the cores. Measured on 2 cores (`docs/benchmarks.md`, the serving
path): one forward on 2 intra-op threads loses half its speed once the event loop needs a
core now and then, since every parallel region waits for its slowest thread, and the spinning
waiter burns the core the event loop wanted; two single-threaded forwards lose only the time
the event loop takes. On CUDA one forward worker owns the device.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

MAX_DEFAULT_WORKERS = 4  # more batches in flight need more concurrent requests to fill
PR_SET_NAME = 15
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


@dataclass(frozen=True)
class ThreadPolicy:
    cores: int  # usable cores (affinity and the cgroup's CPU quota)
    forward_workers: int
    intra_op: int  # torch's intra-op threads (process-wide, so per worker)
    source: str

    def describe(self) -> str:
        return (
            f"{self.forward_workers} forward worker(s) x {self.intra_op} intra-op thread(s) "
            f"on {self.cores} core(s) ({self.source})"
        )


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 quota
    (`docker --cpus`, a Kubernetes CPU limit), rounded up."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def choose_thread_policy(
    device: str, threads: int | None, workers: int | None, cores: int | None = None
) -> ThreadPolicy:
    """The policy for `device` given the settings (`UNIPELT_TORCH_THREADS`,
    `UNIPELT_FORWARD_WORKERS`; either may be None); what is unset fills the cores."""
    cores = cores or usable_cores()
    if not device.startswith("cpu"):
        intra = threads or torch.get_num_threads()
        return ThreadPolicy(cores, 1, intra, "one forward worker owns the device")
    if workers and threads:
        return ThreadPolicy(cores, workers, threads, "settings")
    if workers:
        return ThreadPolicy(cores, workers, max(1, cores // workers), "workers from settings")
    if threads:
        return ThreadPolicy(cores, max(1, cores // threads), threads, "threads from settings")
    workers = min(cores, MAX_DEFAULT_WORKERS)
    return ThreadPolicy(cores, workers, max(1, cores // workers), "default: a worker per core")


def apply_thread_policy(policy: ThreadPolicy) -> int:
    """Set torch's intra-op threads to the policy's; returns the count it replaced."""
    before = torch.get_num_threads()
    torch.set_num_threads(policy.intra_op)
    return before


def name_this_thread(name: str) -> None:
    """The calling thread's OS name (15 bytes at most; Linux only, else nothing)."""
    if hasattr(_libc, "prctl") and os.name == "posix":
        _libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
