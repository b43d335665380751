"""A second prototype: no per-row copies of task weights. Rows are sorted by slot once per
forward and every per-task matmul runs on its rows' contiguous block against a view of the
bank (`bank[slot, layer]`), so each task's weights are read once per layer and never copied.
Same math as `UniPELTModel` (checked in the profile); one adapter activation, no BitFit.
Reads the bank's layer-major layout: `tensors[name]` is (L, S, ...), heads (S, ...)."""

from __future__ import annotations

import torch
from torch import Tensor

from adapters import constants as C
from adapters.bank import TaskBank
from adapters.bottleneck import ACTIVATIONS
from adapters.model import UniPELTModel


class SegmentUniPELT(UniPELTModel):
    """`forward(input_ids, attention_mask, bank, slots)` -> logits (B, n), rows in input order."""

    def forward(self, input_ids, attention_mask, bank: TaskBank, slots: Tensor) -> Tensor:
        order = torch.argsort(slots, stable=True)
        ids, mask, slots = input_ids[order], attention_mask[order], slots[order]
        uniq, counts = torch.unique_consecutive(slots, return_counts=True)
        bounds = torch.cumsum(counts, 0).tolist()
        segs = [(int(s), a, b) for s, a, b in zip(uniq.tolist(), [0, *bounds[:-1]], bounds)]
        meta, t = bank.meta, bank.tensors
        r, m = int(meta.lora_rank[uniq].max()), int(meta.bottleneck[uniq].max())
        P = int(meta.prefix_length[uniq].max())
        act = ACTIVATIONS[list(ACTIVATIONS)[int(meta.activation[uniq].max())]]
        on, const = meta.gate_on[slots], meta.gate_const[slots]  # (B, G)
        mf = mask.to(torch.float32).unsqueeze(-1)  # (B, T, 1)
        count = mf.sum(1).clamp_min(1.0)
        key_mask = torch.cat(
            [(torch.arange(P) < meta.prefix_length[slots].unsqueeze(1)).to(mask.dtype), mask], 1
        )
        x = self.embed(ids, None)
        for i, layer in enumerate(self.backbone.layers):
            sa = layer.attention.self
            g_logit = _per_task(x, segs, t["gate_w"][i, :, :, :3]) + _rows(
                t["gate_b"][i, :, :3], slots
            )
            g = torch.where(on[:, :3], (torch.sigmoid(g_logit) * mf).sum(1) / count, const[:, :3])
            q, k, v = sa.query(x), sa.key(x), sa.value(x)
            if r:
                xq = _per_task(x, segs, t["lora_q_A"][i, :, :, :r])
                xv = _per_task(x, segs, t["lora_v_A"][i, :, :, :r])
                q = q + _per_task(xq * g[:, None, 1:2], segs, t["lora_q_B"][i, :, :r])
                v = v + _per_task(xv * g[:, None, 2:3], segs, t["lora_v_B"][i, :, :r])
            if P:
                s0 = g[:, 0, None, None]
                k = torch.cat([_rows(t["prefix_k"][i, :, :P], slots) * s0, k], 1)
                v = torch.cat([_rows(t["prefix_v"][i, :, :P], slots) * s0, v], 1)
            ctx = self.attention(q, k, v, key_mask if P else mask)
            h = self.layer_norm(
                layer.attention.output.LayerNorm, layer.attention.output.dense(ctx) + x, None
            )
            f = layer.output.dense(
                layer.intermediate.intermediate_act_fn(layer.intermediate.dense(h))
            )
            f = self.layer_norm(layer.output.LayerNorm, f + h, None)
            if m:
                ga = _per_task(f, segs, t["gate_w"][i, :, :, 3:]) + _rows(
                    t["gate_b"][i, :, 3:], slots
                )
                A = C.GATE_ADAPTER
                sa_ = torch.where(on[:, A:], (torch.sigmoid(ga) * mf).sum(1) / count, const[:, A:])
                z = act(
                    _per_task(f, segs, t["adapter_down_w"][i, :, :, :m])
                    + _rows(t["adapter_down_b"][i, :, :m], slots)
                )
                up = _per_task(z, segs, t["adapter_up_w"][i, :, :m])
                f = f + (up + _rows(t["adapter_up_b"][i], slots)) * sa_[:, :, None]
            x = f
        pooled = x[:, 0]  # (B, d)
        n = int(meta.num_labels[uniq].max())
        h = torch.tanh(_per_task(pooled, segs, t["head_dense_w"]) + t["head_dense_b"][slots])
        out = _per_task(h, segs, t["head_out_w"][:, :, :n]) + t["head_out_b"][slots, :n]
        return out[torch.argsort(order)]


def _per_task(x: Tensor, segs, weight: Tensor) -> Tensor:
    """Rows a:b of x times `weight[slot]` (a view into the bank, never copied), per segment."""
    return torch.cat([x[a:b] @ weight[s] for s, a, b in segs], 0)


def _rows(t: Tensor, slots: Tensor) -> Tensor:
    """Small per-row vectors (biases, prefixes): a plain gather, broadcast over tokens."""
    out = t[slots]
    return out.unsqueeze(1) if out.dim() == 2 else out
