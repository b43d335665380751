"""BatchRows: what one forward reads from the bank, gathered once, and its per-batch masks.

Every bank tensor a method needs for the batch (`Method.gathers`) is gathered once for all
layers (one index_select over the slot dimension, of a view already trimmed to the batch's
sizes), then split into per-layer views. Masks and gate-mean weights are built once per
forward. Nothing here reads a device tensor back: shapes and branches come from the plan.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from adapters.bank import KEYED, TABLE, TaskBank
from adapters.fused import TENSORS
from adapters.methods import GATES, METHODS
from adapters.methods.base import SITES, Site, TermFn
from adapters.methods.gates import mean_weights
from adapters.packing import Packed, Packing, Unpacked
from adapters.plan import BatchPlan


@dataclass
class BatchRows:
    plan: BatchPlan
    layers: list[dict[str, Tensor]]  # per layer: name -> (B, ...) per-row tensor
    slot: dict[str, Tensor]  # tensors that are not per layer (heads, gate mixing), per row
    terms: dict[str, list[TermFn]]  # attach point -> the terms of the methods the batch uses
    sites: tuple[Site, ...]  # projection sites whose scales some term reads
    gate_weights: Tensor | None  # (B, 1, T) 1/count on real tokens, when gated
    key_mask: Tensor | None  # (B, 1, 1, P + T) bool, when some key is masked
    table: Tensor | None  # (B, TABLE_WIDTH) each row's device-table row, when read
    family: Any = None  # what the family's layers read per forward (`Stack.prepare`)
    # the token-wise deltas per row, (B, L, 1, w), also when `layers` holds them per token (a
    # family that applies them to per-row inputs too reads these: DeBERTa's positions)
    per_row: dict[str, Tensor] | None = None

    @classmethod
    def gather(
        cls,
        bank: TaskBank,
        slots: Tensor,
        plan: BatchPlan,
        mask: Tensor,
        want_gates: bool,
        packing: Packing | None = None,
    ) -> BatchRows:
        """Token-wise deltas come per token when `packing` packs (they add to packed tensors)."""
        packing = packing or Unpacked()
        take = _Taker(bank, slots, plan)
        names = [n for m in METHODS for n in m.gathers(plan)]
        taken = {n: take(n) for n in names if TENSORS[n].per_layer}
        per_layer = {n: _per_layer(n, t, packing) for n, t in taken.items()}
        terms: dict[str, list[TermFn]] = defaultdict(list)
        for m in METHODS:
            if m.active(plan):
                for point, fn in m.term_fns.items():
                    terms[point].append(fn)
        want_table = want_gates or any(m.needs_table(plan) for m in METHODS)
        rows = cls(
            plan=plan,
            layers=[{n: t[i] for n, t in per_layer.items()} for i in range(bank.dims.layers)],
            per_row={n: t for n, t in taken.items() if TENSORS[n].per_token},
            slot={n: take(n) for n in names if not TENSORS[n].per_layer},
            terms=dict(terms),
            sites=tuple(s for s in SITES if GATES.uses(s, plan)[0]),
            gate_weights=None,
            key_mask=None,
            table=take.table(bank.table) if want_table else None,
        )
        if GATES.active(plan) and isinstance(packing, Packed):
            rows.gate_weights = packing.gate_weights  # the same, built on the host
        elif GATES.active(plan):
            rows.gate_weights = mean_weights(mask.to(bank.dtype))
        if plan.key_mask:
            keys = mask.bool()
            for m in reversed(KEYED):
                size = getattr(plan.sizes, m.size) if m.size is not None else 0
                if size:
                    keys = torch.cat([take.table(bank.key_table(m.name, size)), keys], 1)
            rows.key_mask = keys.view(plan.rows, 1, 1, -1)
        return rows

    def table_columns(self, method: str, start: int = 0, stop: int | None = None) -> Tensor:
        """(B, k) columns [start, stop) of one method's part of the rows' device table."""
        assert self.table is not None
        part = TABLE[method]
        end = part.stop if stop is None else part.start + stop
        return self.table[:, part.start + start : end]


def _per_layer(name: str, t: Tensor, packing: Packing) -> tuple[Tensor, ...]:
    """A gathered (B, L, ...) tensor split into per-layer views. Down-projections are stored
    transposed (trimmed rows stay contiguous); token-wise deltas go per token if packed."""
    spec = TENSORS[name]
    if spec.transposed:
        t = t.transpose(-1, -2)
    elif spec.per_token and packing.packed:
        t = packing.per_token(t.squeeze(-2))  # (n, L, w)
    return t.unbind(1)


class _Taker:
    """Reads per-row tensors: one gather over slots, or one slot's view broadcast to B rows."""

    def __init__(self, bank: TaskBank, slots: Tensor, plan: BatchPlan) -> None:
        self.bank, self.slots, self.plan = bank, slots, plan

    def __call__(self, name: str) -> Tensor:
        return self.table(self.bank.trimmed(name, self.plan.sizes))

    def table(self, t: Tensor) -> Tensor:
        s = self.plan.single_slot
        if s is None:
            return t.index_select(0, self.slots)
        return t.narrow(0, s, 1).expand(self.plan.rows, *t.shape[1:])
