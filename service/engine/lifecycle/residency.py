"""What this replica holds, for routers: resident tasks by tier, free slots, the queue.

`GET /residency` answers it; `AdapterInfoCollector` (service.metrics) exposes its head in the
shape the Gateway API Inference Extension's model-server protocol reads (task = adapter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from service.engine.lifecycle.host_tier import HostCache
from service.engine.lifecycle.loader import AdapterLoader
from service.engine.lifecycle.pool import AdapterPool
from service.metrics import AdapterInfo


@dataclass(frozen=True)
class ResidentTask:
    task: str
    version: int
    tier: Literal["bank", "host"]  # bank: in a device slot; host: validated, a copy away
    in_use: int = 0  # requests pinning the bank slot now


@dataclass(frozen=True)
class Residency:
    replica: str
    slots: int
    free_slots: int
    queue_depth: int  # sequences waiting for a batch
    loading: list[str] = field(default_factory=list)  # tasks whose bank load is under way
    tasks: list[ResidentTask] = field(default_factory=list)  # bank, then host; recent first


def snapshot(
    replica: str, pool: AdapterPool, host: HostCache, loader: AdapterLoader, queue_depth: int
) -> Residency:
    bank = [ResidentTask(t, v, "bank", refs) for (t, v), refs in pool.residents()]
    held = {(r.task, r.version) for r in bank}
    hosted = [ResidentTask(t, v, "host") for t, v in host.recent() if (t, v) not in held]
    return Residency(
        replica=replica,
        slots=pool.slots,
        free_slots=pool.slots - len(bank),
        queue_depth=queue_depth,
        loading=sorted({task for task, _ in loader.loading()}),
        tasks=bank + hosted,
    )


def adapter_info(residency: Residency, limit: int) -> AdapterInfo:
    """The bank's `limit` most recently used tasks as running adapters, the tasks being
    loaded as waiting ones, the slot count as the maximum."""
    running: dict[str, None] = {}  # insertion-ordered set
    for resident in residency.tasks:
        if len(running) == limit or resident.tier != "bank":
            break
        running[resident.task] = None
    return AdapterInfo(list(running), residency.loading[:limit], residency.slots)
