"""BatchRows: what one forward reads from the bank, gathered once, and its per-batch masks.

Every bank tensor is gathered once for all layers (one index_select over the slot dimension,
of a view already trimmed to the batch's sizes), then split into per-layer views. Masks and
gate-mean weights are built once per forward. Nothing here reads a device tensor back: shapes
and branches come from the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from adapters.bank import CONST, ON, TaskBank
from adapters.fused import GATES_IN, HEAD, TRIM, trimmed_width
from adapters.gate import mean_weights
from adapters.packing import Packed, Packing, Unpacked
from adapters.plan import BatchPlan

_BITFIT = ("qkv", "attn_out", "ln_attn", "ffn_in", "ffn_out", "ln_ffn")
A = 3  # the adapter's gate column


@dataclass
class BatchRows:
    plan: BatchPlan
    layers: list[dict[str, Tensor]]  # per layer: name -> (B, ...) per-row tensor
    head: dict[str, Tensor]
    mix: dict[str, Tensor]  # gate-mixing tables (`fused.mixing`), per row
    gate_weights: Tensor | None  # (B, 1, T) 1/count on real tokens, when gated
    key_mask: Tensor | None  # (B, 1, 1, P + T) bool, when some key is masked
    table: Tensor | None  # (B, TABLE_WIDTH) gate switches, constants and activation one-hot

    @classmethod
    def gather(
        cls,
        bank: TaskBank,
        slots: Tensor,
        plan: BatchPlan,
        mask: Tensor,
        want_table: bool,
        packing: Packing | None = None,
    ) -> BatchRows:
        """BitFit deltas come per token when `packing` packs (they add to packed tensors)."""
        packing = packing or Unpacked()
        names = ["in_w", "in_b"] if plan.rank or plan.gated else []
        names += ["lora_up"] if plan.rank else []
        names += ["prefix"] if plan.prefix else []
        names += ["ad_w", "ad_b", "ad_up", "ad_up_b"] if plan.bottleneck else []
        names += [f"bitfit_{t}" for t in _BITFIT] if plan.bitfit else []
        mixes = ["lora_off"] + (["lora_on"] if plan.gated else [])
        if plan.bottleneck:
            mixes += ["ad_off"] + (["ad_on"] if plan.gated else [])
        take = _Taker(bank, slots, plan)
        per_layer = {n: _per_layer(n, take(n), packing) for n in names}
        rows = cls(
            plan=plan,
            layers=[{n: t[i] for n, t in per_layer.items()} for i in range(bank.dims.layers)],
            head={n: take(n) for n in HEAD},
            mix={n: take(n) for n in mixes},
            gate_weights=None,
            key_mask=None,
            table=take.table(bank.gate_table) if want_table else None,
        )
        if plan.gated and isinstance(packing, Packed):
            rows.gate_weights = packing.gate_weights  # the same, built on the host
        elif plan.gated:
            rows.gate_weights = mean_weights(mask.to(bank.dtype))
        if plan.key_mask:
            keys = mask.bool()
            if plan.prefix:
                prefix = take.table(bank.trimmed("prefix_table", plan.prefix))
                keys = torch.cat([prefix, keys], 1)
            rows.key_mask = keys.view(plan.rows, 1, 1, -1)
        return rows

    def gate_values(self, means: Tensor | None, adapter_mean: Tensor | None) -> Tensor:
        """The gates a layer applied, (B, G): learned means where on, constants elsewhere."""
        assert self.table is not None
        G = CONST - ON
        on, const = self.table[:, ON:G].bool(), self.table[:, CONST : CONST + G]
        parts = [
            means[:, 0, :GATES_IN] if means is not None else const[:, :GATES_IN],
            adapter_mean[:, 0, :1] if adapter_mean is not None else const[:, A:],
        ]
        return torch.where(on, torch.cat(parts, 1), const)

    def activation_onehot(self) -> Tensor:
        """(B, activations): which adapter activation each row uses."""
        assert self.table is not None
        return self.table[:, CONST + CONST - ON :]


def _per_layer(name: str, t: Tensor, packing: Packing) -> tuple[Tensor, ...]:
    """A gathered (B, L, ...) tensor split into per-layer views. The down-projections are
    stored transposed (trimmed rows stay contiguous); BitFit deltas go per token if packed."""
    if name in ("in_w", "ad_w"):
        t = t.transpose(-1, -2)
    elif name.startswith("bitfit_") and packing.packed:
        t = packing.per_token(t.squeeze(-2))  # (n, L, w)
    return t.unbind(1)


class _Taker:
    """Reads per-row tensors: one gather over slots, or one slot's view broadcast to B rows."""

    def __init__(self, bank: TaskBank, slots: Tensor, plan: BatchPlan) -> None:
        self.bank, self.slots, self.plan = bank, slots, plan
        self.sizes = {
            "rank": plan.rank,
            "bottleneck": plan.bottleneck,
            "prefix": plan.prefix,
            "labels": plan.labels,
        }

    def __call__(self, name: str) -> Tensor:
        kind = TRIM.get(name, ((), None))[1]
        width = None if kind is None else trimmed_width(kind, self.sizes[kind])
        return self.table(self.bank.trimmed(name, width))

    def table(self, t: Tensor) -> Tensor:
        s = self.plan.single_slot
        if s is None:
            return t.index_select(0, self.slots)
        return t.narrow(0, s, 1).expand(self.plan.rows, *t.shape[1:])
