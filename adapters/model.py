"""The mixed-task forward: one pass over a batch whose rows belong to different tasks.

We own the layer loop over the frozen transformers modules (their weights are read, never
changed; Q, K and V are fused into one GEMM) and name the points where the registered methods'
terms attach (`adapters.methods`), so every row's own terms apply with batched matmuls over
the bank's fused layout (`adapters.fused`).
Every per-batch decision comes from a host-side `BatchPlan`, so the forward never reads a
device tensor back. With nothing active this is the backbone's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.methods import GATES
from adapters.methods.base import (
    ADAPTER_INPUT,
    ATTENTION_KV,
    ATTN_OUT,
    CONTEXT,
    FFN_ACT,
    FFN_BLOCK,
    FFN_IN,
    FFN_OUT,
    HEAD,
    KEYS_VALUES,
    LAYER_INPUT,
    LN_ATTN,
    LN_FFN,
    QKV,
    QKV_ROWS,
    Term,
)
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
        cfg = backbone.config
        self.hidden_dropout = cfg.hidden_dropout_prob
        self.attention_dropout = cfg.attention_probs_dropout_prob
        self.heads = cfg.num_attention_heads
        for i, layer in enumerate(backbone.layers):
            w, b = _qkv(layer)
            self.register_buffer(f"qkv_w{i}", w.detach().clone(), persistent=False)
            self.register_buffer(f"qkv_b{i}", b.detach().clone(), persistent=False)

    def qkv(self, index: int, layer: Any) -> tuple[Tensor, Tensor]:
        """The fused [q | v | k] projection: a frozen copy, or live when the backbone trains."""
        if layer.attention.self.query.weight.requires_grad:
            return _qkv(layer)
        return getattr(self, f"qkv_w{index}"), getattr(self, f"qkv_b{index}")

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
        embedded = self.embed(input_ids, token_type_ids)  # (B, T, d)
        x = packing.pack(embedded)  # (n, d) packed, else (B, T, d)
        padded: Tensor | None = embedded
        gates: list[Tensor] = []
        for index, layer in enumerate(self.backbone.layers):
            x, padded, layer_gates = self.layer_forward(
                layer, index, x, padded, rows, packing, return_gates
            )
            if layer_gates is not None:
                gates.append(layer_gates)
        hidden = padded if padded is not None else packing.unpack(x)
        logits = at(HEAD, hidden, Term(rows, {}, {}, self.training, self.hidden_dropout))
        return logits, hidden, torch.stack(gates, dim=1) if return_gates else None

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None) -> Tensor:
        model = self.encoder
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        project = getattr(model, "embeddings_project", None)  # ELECTRA's smaller embeddings
        return project(x) if project is not None else x

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
        """One transformer layer; the methods' terms attach at the named points (`methods.base`).
        `x` is the layer input, packed or not; `padded` the same as (B, T, d) when at hand.
        Returns (x, padded, gates)."""
        attn, ffn_in, ffn_out = layer.attention, layer.intermediate, layer.output
        d = x.shape[-1]
        t = Term(rows, rows.layers[index], {}, self.training, self.hidden_dropout)
        qkv = packing.unpack(at(QKV, F.linear(x, *self.qkv(index, layer)), t))  # (B, T, 3d)
        if LAYER_INPUT in rows.sites:  # gate logits and LoRA's down-projection, one baddbmm
            x_rows = None
            if LAYER_INPUT.weight in t.w:
                x_rows = padded if padded is not None else packing.unpack(x)
            t.sites[LAYER_INPUT.name] = GATES.project(LAYER_INPUT, rows, t.w, x_rows)
        q, values_keys = at(QKV_ROWS, qkv, t).split([d, 2 * d], -1)  # [q | v | k]
        values_keys = at(ATTENTION_KV, at(KEYS_VALUES, values_keys, t), t)  # (B, S, 2d)
        context = packing.pack(self.attention(q, values_keys, rows.key_mask, packing.packed))

        h = at(ATTN_OUT, attn.output.dense(at(CONTEXT, context, t)), t)
        h = at(LN_ATTN, self.layer_norm(attn.output.LayerNorm, self.dropout(h) + x), t)
        f = at(FFN_ACT, ffn_in.intermediate_act_fn(at(FFN_IN, ffn_in.dense(h), t)), t)
        f = self.dropout(at(FFN_OUT, ffn_out.dense(f), t))
        f = at(LN_FFN, self.layer_norm(ffn_out.LayerNorm, f + h), t)

        f_rows = None if packing.packed else f
        if ADAPTER_INPUT in rows.sites:  # the adapter's gate logit and down-projection
            f_rows = packing.unpack(f)
            t.sites[ADAPTER_INPUT.name] = GATES.project(ADAPTER_INPUT, rows, t.w, f_rows)
        if FFN_BLOCK in rows.terms:
            f_rows = at(FFN_BLOCK, packing.unpack(f) if f_rows is None else f_rows, t)
            f = packing.pack(f_rows)
        gates = GATES.values(rows, t.sites) if want_gates else None
        return f, f_rows, gates

    def attention(
        self, q: Tensor, values_keys: Tensor, key_mask: Tensor | None, flat: bool = False
    ) -> Tensor:
        """Multi-head scaled dot-product attention. q: (B, T, d); values_keys: (B, S, 2d).
        Returns (B, T, d), or (B * T, d) when `flat`."""
        B, T, d = q.shape
        H = self.heads
        qh = q.unflatten(-1, (H, d // H)).transpose(1, 2)  # (B, H, T, dh)
        v, k = values_keys.unflatten(-1, (2, H, d // H)).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            qh,
            k,
            v,
            attn_mask=key_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        return out.transpose(1, 2).reshape((B * T, d) if flat else (B, T, d))

    def dropout(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.hidden_dropout, True) if self.training else x

    @staticmethod
    def layer_norm(ln: nn.LayerNorm, x: Tensor) -> Tensor:
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def at(point: str, value: Tensor, t: Term) -> Tensor:
    """`value` through the terms attached at `point`, in registration order."""
    for term in t.rows.terms.get(point, ()):
        value = term(value, t)
    return value


def _qkv(layer: Any) -> tuple[Tensor, Tensor]:  # a transformers layer: dynamic attributes
    sa = layer.attention.self
    w = torch.cat([sa.query.weight, sa.value.weight, sa.key.weight], 0)  # (3d, d)
    b = torch.cat([sa.query.bias, sa.value.bias, sa.key.bias], 0)
    return w, b


def _right_padded_lengths(mask: Tensor) -> list[int] | None:
    """Each row's real tokens when every row is ones then zeros (a host read), else None."""
    lengths = mask.sum(1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    right_padded = torch.equal(mask.bool(), positions < lengths[:, None])
    return lengths.tolist() if right_padded else None
