"""How big the tiers are: the bank's slots from a byte budget, the backbone and the largest
allowed sizes; the host tier's budget from the bank and the memory available."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adapters.bank import BankSizes, TaskBank
from adapters.schema import BackboneDims


class PoolBudgetError(ValueError):
    """The configured budget cannot hold the pool; raised at startup."""


@dataclass(frozen=True)
class PoolSize:
    """The bank a replica allocates: `slots` slots of `slot_bytes` each within `budget`."""

    slots: int
    slot_bytes: int
    budget: int

    @property
    def bank_bytes(self) -> int:
        return self.slots * self.slot_bytes

    def describe(self) -> dict[str, int]:
        return {"slots": self.slots, "slot_bytes": self.slot_bytes, "budget_bytes": self.budget}


def slot_bytes(dims: BackboneDims, sizes: BankSizes, dtype: torch.dtype) -> int:
    """Bytes one slot takes: every bank tensor at the largest sizes (measured on the meta
    device, so the figure follows the bank's layout, whatever it is)."""
    bank = TaskBank.allocate(1, dims, sizes, device="meta", dtype=dtype)
    return _tensor_bytes(bank)


def _tensor_bytes(value: object, depth: int = 0) -> int:
    """Bytes of every tensor reachable from `value` (its attributes, dicts and lists)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if depth > 2:
        return 0
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v, depth + 1) for v in value)
    if hasattr(value, "__dict__"):
        return sum(_tensor_bytes(v, depth + 1) for v in vars(value).values())
    return 0


def size_pool(
    budget: int,
    dims: BackboneDims,
    sizes: BankSizes,
    dtype: torch.dtype = torch.float32,
    max_slots: int | None = None,
) -> PoolSize:
    """Slots = budget // slot bytes (capped by `max_slots`). A budget that cannot hold one
    adapter of the largest allowed sizes is a configuration error naming the settings."""
    per_slot = slot_bytes(dims, sizes, dtype)
    slots = budget // per_slot
    if slots < 1:
        raise PoolBudgetError(
            f"UNIPELT_POOL_MAX_BYTES={budget} cannot hold one adapter of the largest allowed "
            f"sizes ({per_slot} bytes per slot for this backbone at "
            f"UNIPELT_POOL_MAX_LORA_RANK={sizes.lora_rank}, "
            f"UNIPELT_POOL_MAX_BOTTLENECK={sizes.bottleneck}, "
            f"UNIPELT_POOL_MAX_PREFIX_LENGTH={sizes.prefix_length}, "
            f"UNIPELT_POOL_MAX_LABELS={sizes.num_labels}); raise the budget or lower the limits"
        )
    if max_slots is not None:
        slots = min(slots, max_slots)
    return PoolSize(slots=slots, slot_bytes=per_slot, budget=budget)


# The host tier's default: this many times the bank's bytes (its images are at each task's own
# sizes, so it holds several times the bank's adapters), within this share of the memory
# available at startup (less a CPU bank's own bytes, committed only as its slots fill).
HOST_BANK_MULTIPLE = 2
HOST_MEMORY_SHARE = 0.25
HOST_FALLBACK_BYTES = 2**30  # when the available memory cannot be read


@dataclass(frozen=True)
class HostSize:
    """The host tier's byte budget and where it came from."""

    budget: int
    source: str

    def describe(self) -> dict[str, int | str]:
        return {"host_budget_bytes": self.budget, "host_budget_from": self.source}


def size_host(
    setting: int | None, bank_bytes: int, bank_on_host: bool, available: int | None
) -> HostSize:
    """`UNIPELT_HOST_CACHE_BYTES` when set, else min(HOST_BANK_MULTIPLE x the bank's bytes,
    HOST_MEMORY_SHARE of the `available` memory left once a CPU bank is full)."""
    if setting is not None:
        return HostSize(setting, "UNIPELT_HOST_CACHE_BYTES")
    wanted = HOST_BANK_MULTIPLE * bank_bytes
    if available is None:
        return HostSize(min(wanted, HOST_FALLBACK_BYTES), "default (available memory unknown)")
    room = int(HOST_MEMORY_SHARE * max(0, available - (bank_bytes if bank_on_host else 0)))
    share = f"{HOST_MEMORY_SHARE:.0%} of {available >> 20} MiB available"
    if bank_on_host:
        share += " less the bank"
    return HostSize(min(wanted, room), f"min({HOST_BANK_MULTIPLE} x bank bytes, {share})")


def available_memory() -> int | None:
    """Bytes this process may still take: MemAvailable, within a cgroup's limit (v2 or v1)."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        free = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit) as f, open(usage) as g:
                cap, used = f.read().strip(), int(g.read())
        except (OSError, ValueError):
            continue
        if cap.isdigit():
            free = min(free, max(0, int(cap) - used))
        break
    return free
