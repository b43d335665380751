"""How many bank slots a byte budget holds, from the backbone and the largest allowed sizes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adapters.bank import BankSizes, TaskBank
from adapters.schema import BackboneDims


class PoolBudgetError(ValueError):
    """The configured budget cannot hold the pool; raised at startup."""


@dataclass(frozen=True)
class PoolPlan:
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


def plan_pool(
    budget: int,
    dims: BackboneDims,
    sizes: BankSizes,
    dtype: torch.dtype = torch.float32,
    max_slots: int | None = None,
) -> PoolPlan:
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
    return PoolPlan(slots=slots, slot_bytes=per_slot, budget=budget)
