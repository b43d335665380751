"""The mixed-task forward: one pass over a batch whose rows belong to different tasks.

The backbone's family (`adapters.families`) owns the layer loop over the frozen transformers
modules (their weights are read, never changed; Q, K and V are fused into one GEMM) and names
the points where the registered methods' terms attach (`adapters.methods`), so every row's own
terms apply with batched matmuls over the bank's fused layout (`adapters.fused`).
Every per-batch decision comes from a host-side `BatchPlan`, so the forward never reads a
device tensor back. With nothing active this is the backbone's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.families.base import at
from adapters.methods.base import HEAD, Term
from adapters.packing import Packing, Unpacked, packing_for
from adapters.plan import BatchPlan, plan_batch
from adapters.rows import BatchRows


@dataclass
class ForwardOutput:
    logits: Tensor  # (B, n) padded to the batch's largest label count
    label_counts: tuple[int, ...]  # each row's real label count
    hidden: Tensor  # (B, T, d) last hidden states
    gates: Tensor | None  # (B, L, G) gate values actually applied, when asked for

    @property
    def num_labels(self) -> Tensor:
        """(B,) each row's real label count, as a host tensor."""
        return torch.tensor(self.label_counts, dtype=torch.long)


class UniPELTModel(nn.Module):
    """A frozen backbone plus the mixed-task forward. Holds no per-task weights itself."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.encoder = backbone.model  # registered so .train()/.to() reach it
        self.stack = backbone.family.stack(backbone)  # the family's layer loop

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        bank: TaskBank,
        slots: Tensor,
        token_type_ids: Tensor | None = None,
        return_gates: bool = False,
        plan: BatchPlan | None = None,
        packing: Packing | None = None,
    ) -> ForwardOutput:
        """Without `plan`, one is built by reading `slots` and the mask on the host (free for
        CPU tensors; an inference forward of right-padded rows packs their real tokens);
        servers pass the plan they built from Python values."""
        if plan is None:
            infer = not self.training and not torch.is_grad_enabled()
            lengths = _right_padded_lengths(attention_mask) if infer else None
            padded = not bool(attention_mask.all())
            plan = plan_batch(bank, slots.tolist(), padded, lengths=lengths)
        logits, hidden, gates = self.mixed(
            input_ids, attention_mask, bank, slots, plan, token_type_ids, return_gates, packing
        )
        return ForwardOutput(logits, plan.num_labels, hidden, gates)

    def mixed(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        bank: TaskBank,
        slots: Tensor,
        plan: BatchPlan,
        token_type_ids: Tensor | None = None,
        return_gates: bool = False,
        packing: Packing | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """(logits, hidden, gates) of one batch: a static graph for a given `plan.key`.
        An inference forward packs real tokens when the plan has the rows' lengths;
        `packing` may be built ahead, off the forward thread (`packing_for`)."""
        if self.training or torch.is_grad_enabled():  # packing reuses buffers in place
            packing = Unpacked()
        else:
            packing = packing or packing_for(plan, input_ids.shape[1], bank.dtype)
            packing = packing.to(input_ids.device)
        rows = BatchRows.gather(bank, slots, plan, attention_mask, return_gates, packing)
        rows.family = self.stack.prepare(rows, attention_mask)
        embedded = self.stack.embed(input_ids, token_type_ids, attention_mask)  # (B, T, d)
        x = packing.pack(embedded)  # (n, d) packed, else (B, T, d)
        padded: Tensor | None = embedded
        gates: list[Tensor] = []
        for index, layer in enumerate(self.backbone.layers):
            x, padded, layer_gates = self.layer_forward(
                layer, index, x, padded, rows, packing, return_gates
            )
            if layer_gates is not None:
                gates.append(layer_gates)
        hidden = self.stack.finish(padded if padded is not None else packing.unpack(x))
        stack = self.stack
        head = Term(rows, {}, {}, self.training, stack.hidden_dropout, stack.pooler_activation)
        logits = at(HEAD, hidden, head)
        return logits, hidden, torch.stack(gates, dim=1) if return_gates else None

    def layer_forward(
        self,
        layer: Any,
        index: int,
        x: Tensor,
        padded: Tensor | None,
        rows: BatchRows,
        packing: Packing,
        want_gates: bool,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """One transformer layer, run by the family (`adapters.families`): the methods' terms
        attach at its named points. `x` is the layer input, packed or not; `padded` the same
        as (B, T, d) when at hand. Returns (x, padded, gates)."""
        return self.stack.layer(layer, index, x, padded, rows, packing, want_gates)


def _right_padded_lengths(mask: Tensor) -> list[int] | None:
    """Each row's real tokens when every row is ones then zeros (a host read), else None."""
    lengths = mask.sum(1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    right_padded = torch.equal(mask.bool(), positions < lengths[:, None])
    return lengths.tolist() if right_padded else None
