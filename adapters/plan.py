"""BatchPlan: every per-batch decision of the mixed forward, made on the host.

A plan is built from Python values only (the rows' slots and real lengths, and the bank's host
mirror of its slots' sizes), so the forward never reads a device tensor back: no
synchronisation, and a forward that `torch.compile(fullgraph=True)` or a CUDA graph can capture.
Sizes are rounded up to buckets so that a small set of static shapes covers the traffic;
rounding up only adds zero padding (or masked prefix positions), which is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapters.bank import TaskBank


def round_up(value: int, step: int, cap: int) -> int:
    """`value` rounded up to a multiple of `step` (a power of two when step is 0), at most cap."""
    if value <= 0:
        return 0
    rounded = 1 << (value - 1).bit_length() if step == 0 else -(-value // step) * step
    return min(max(rounded, value), cap) if cap >= value else value


@dataclass(frozen=True)
class Buckets:
    """How sizes round up: 1 keeps exact sizes, 0 rounds to powers of two, n to multiples."""

    sizes: int = 1  # LoRA rank, bottleneck, prefix length, label count

    @classmethod
    def exact(cls) -> Buckets:
        return cls(1)

    @classmethod
    def static(cls) -> Buckets:
        """Few shapes (for CUDA graphs and compiled code): powers of two."""
        return cls(0)


@dataclass(frozen=True)
class BatchPlan:
    """Sizes and switches of one batch; `key` names its static shape."""

    rows: int
    single_slot: int | None  # every row uses this slot: read it without a gather
    rank: int
    bottleneck: int
    prefix: int
    labels: int
    gated: bool  # some row has learned gates
    bitfit: bool  # some row has BitFit deltas
    activations: tuple[int, ...]  # adapter activations present (ids into ACTIVATIONS)
    key_mask: bool  # some key is masked: padding, or a prefix shorter than `prefix`
    num_labels: tuple[int, ...]  # each row's real label count
    lengths: tuple[int, ...] | None = None  # real tokens per row: pack them (`packing`)

    @property
    def key(self) -> tuple:
        """Everything that fixes the forward's shapes and branches, but not the slots."""
        return (
            self.rows,
            self.single_slot is not None,
            self.rank,
            self.bottleneck,
            self.prefix,
            self.labels,
            self.gated,
            self.bitfit,
            self.activations,
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
    step = buckets.sizes

    def size(values: list[int], cap: int) -> int:
        return round_up(max(values[s] for s in used), step, cap)

    prefix = size(meta.prefix_length, caps.prefix_length)
    activations = {meta.activation[s] for s in used if meta.bottleneck[s] > 0}
    return BatchPlan(
        rows=len(slots),
        single_slot=used[0] if len(used) == 1 and single_slot else None,
        rank=size(meta.lora_rank, caps.lora_rank),
        bottleneck=size(meta.bottleneck, caps.bottleneck),
        prefix=prefix,
        labels=size(meta.num_labels, caps.num_labels),
        gated=any(meta.gated[s] for s in used),
        bitfit=any(meta.bitfit[s] for s in used),
        activations=tuple(sorted(activations)) or (0,),
        key_mask=padded or any(meta.prefix_length[s] != prefix for s in used),
        num_labels=tuple(meta.num_labels[s] for s in slots),
        lengths=tuple(lengths) if lengths is not None and padded else None,
    )
