"""BatchPlan: every per-batch decision of the mixed forward, made on the host.

A plan is built from Python values only (the rows' slots and real lengths, and the bank's host
mirror of its slots' sizes and switches), so the forward never reads a device tensor back: no
synchronisation, and a forward that `torch.compile(fullgraph=True)` or a CUDA graph can capture.
Shapes may round up to buckets so that a small set of static shapes covers the traffic;
rounding up only adds zero padding (or masked positions), which is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.bank import VALUED, TaskBank
from adapters.dims import BankSizes
from adapters.methods import SIZED
from adapters.methods.heads import Heads


def power_of_two(value: int, cap: int) -> int:
    """`value` rounded up to a power of two, at most `cap` (never below `value`)."""
    if value <= 0:
        return 0
    return max(min(1 << (value - 1).bit_length(), cap), value)


@dataclass(frozen=True)
class Buckets:
    """How a batch's shapes round up: exact, or few static shapes (CUDA graphs, compiled
    code): rows and method sizes to powers of two, tokens to multiples of `token_step`."""

    bucketed: bool = False
    max_rows: int = 32
    token_step: int = 16

    @classmethod
    def exact(cls) -> Buckets:
        return cls(False)

    @classmethod
    def static(cls, max_rows: int = 32) -> Buckets:
        return cls(True, max_rows)

    def rows(self, n: int) -> int:
        return power_of_two(n, max(self.max_rows, n)) if self.bucketed else n

    def tokens(self, n: int) -> int:
        return -(-n // self.token_step) * self.token_step if self.bucketed else n

    def size(self, value: int, cap: int) -> int:
        """A method's size (rank, bottleneck, prefix length, labels) within the bank's `cap`."""
        return power_of_two(value, cap) if self.bucketed else value


@dataclass(frozen=True)
class BatchPlan:
    """Sizes and switches of one batch; `key` names its static shape."""

    rows: int
    single_slot: int | None  # every row uses this slot: read it without a gather
    sizes: BankSizes  # what the bank's tensors are trimmed to
    switches: tuple[tuple[str, Any], ...]  # each method's plan value (`Method.plan_value`)
    key_mask: bool  # some key is masked: padding, or a prefix shorter than the batch's
    num_labels: tuple[int, ...]  # each row's real label count
    lengths: tuple[int, ...] | None = None  # real tokens per row: pack them (`packing`)

    def switch(self, method: str) -> Any:
        for name, value in self.switches:
            if name == method:
                return value
        raise KeyError(method)

    @property
    def key(self) -> tuple:
        """Everything that fixes the forward's shapes and branches, but not the slots."""
        return (
            self.rows,
            self.single_slot is not None,
            self.sizes,
            self.switches,
            self.key_mask,
            self.lengths,  # a packed forward's index is baked into a captured graph
        )


def plan_batch(
    bank: TaskBank,
    slots: Sequence[int],
    padded: bool,
    buckets: Buckets = Buckets(),
    single_slot: bool = True,
    lengths: Sequence[int] | None = None,
) -> BatchPlan:
    """The plan for rows in `slots` (Python ints); `padded`: some row has padding tokens.
    `single_slot=False` always gathers (one graph serves one- and many-task batches).
    `lengths` (each row's real tokens, right-padded rows) packs the token-wise work of an
    inference forward onto real tokens only; leave it None for captured graphs."""
    meta, caps = bank.meta, bank.sizes
    used = sorted(set(slots))
    largest = {k: max(v[s] for s in used) for k, v in meta.sizes.items()}
    sizes = BankSizes(**{k: buckets.size(n, getattr(caps, k)) for k, n in largest.items()})
    switches = tuple((m.name, m.plan_value([meta.values[m.name][s] for s in used])) for m in VALUED)
    masked = any(
        m.masks_keys([meta.sizes[m.size][s] for s in used], sizes)
        for m in SIZED
        if m.size is not None
    )
    return BatchPlan(
        rows=len(slots),
        single_slot=used[0] if len(used) == 1 and single_slot else None,
        sizes=sizes,
        switches=switches,
        key_mask=padded or masked,
        num_labels=tuple(meta.sizes[Heads.size][s] for s in slots),
        lengths=tuple(lengths) if lengths is not None and padded else None,
    )
