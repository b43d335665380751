"""A prototype of a leaner mixed-task forward, to measure what the proposed changes to
`adapters/model.py` would buy. Same math as `UniPELTModel`; checked against it in the profile.

What it changes:
1. one gather per bank tensor per forward (all layers at once) instead of one per layer;
2. fused per-task layouts built when a task is written: [A_q | A_v | gate_w(prefix, q, v)]
   (d, 2r+3), block-diagonal [B_q, B_v] (2r, 2d), [W_down | gate_w(adapter)] (d, m+1), so one
   bmm gives both LoRA down-projections and the three input gates, and one gives the adapter's
   down-projection and its gate;
3. Q, K and V in one GEMM (concatenated frozen weights), LoRA added with one baddbmm;
4. masks, gate means' denominators and the prefix mask computed once per forward.
Limits of the prototype: one adapter activation per batch, no BitFit, sizes fixed at the largest
in the bank (the real change would keep `BatchView`'s per-batch trimming).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters import constants as C
from adapters.bank import TaskBank
from adapters.bottleneck import ACTIVATIONS
from adapters.heads import head_logits
from adapters.model import UniPELTModel


class FusedBank:
    """Fused per-slot layouts derived from a TaskBank (the real change: built by `write`)."""

    def __init__(self, bank: TaskBank) -> None:
        meta = bank.meta
        # Slot-major views of the bank's layer-major tensors (copied once, below, by cat).
        t = {k: v if k.startswith("head_") else v.transpose(0, 1) for k, v in bank.tensors.items()}
        r, m = int(meta.lora_rank.max()), int(meta.bottleneck.max())
        P = int(meta.prefix_length.max())
        self.r, self.m, self.P = r, m, P
        self.gate_on, self.gate_const = meta.gate_on, meta.gate_const
        self.prefix_len = meta.prefix_length
        self.activation = ACTIVATIONS[_one_activation(meta)]
        S, L, d, _ = t["lora_q_A"].shape
        gw, gb = t["gate_w"], t["gate_b"]  # (S, L, d, G), (S, L, G)
        self.down = torch.cat([t["lora_q_A"][..., :r], t["lora_v_A"][..., :r], gw[..., :3]], -1)
        up = torch.zeros(S, L, 2 * r, 2 * d)
        up[:, :, :r, :d] = t["lora_q_B"][:, :, :r]
        up[:, :, r:, d:] = t["lora_v_B"][:, :, :r]
        self.up = up
        self.in_gate_b = gb[..., :3].contiguous()
        self.prefix = torch.stack([t["prefix_k"][:, :, :P], t["prefix_v"][:, :, :P]], 2)
        self.ad_down = torch.cat([t["adapter_down_w"][..., :m], gw[..., 3:]], -1)
        self.ad_b = torch.cat([t["adapter_down_b"][..., :m], gb[..., 3:]], -1)
        self.ad_up = t["adapter_up_w"][:, :, :m].contiguous()
        self.ad_up_b = t["adapter_up_b"].contiguous()
        self.head = {k: t[k] for k in C.HEAD_TENSORS}
        self.num_labels = int(meta.num_labels.max())

    def rows(self, slots: Tensor) -> dict[str, Tensor]:
        """Every per-row tensor of the batch, all layers, one gather each."""
        names = ("down", "up", "in_gate_b", "prefix", "ad_down", "ad_b", "ad_up", "ad_up_b")
        out = {n: getattr(self, n).index_select(0, slots) for n in names}
        out.update({k: v.index_select(0, slots) for k, v in self.head.items()})
        return out


def _one_activation(meta) -> str:
    used = {int(a) for a in meta.activation[meta.bottleneck > 0]}
    if len(used) > 1:
        raise ValueError("the prototype handles one adapter activation per bank")
    return list(ACTIVATIONS)[used.pop()] if used else "relu"


class FastUniPELT(UniPELTModel):
    """`forward(input_ids, attention_mask, fused, slots)` -> logits (B, n)."""

    def __init__(self, backbone) -> None:
        super().__init__(backbone)
        self.qkv = []
        for layer in backbone.layers:
            sa = layer.attention.self
            w = torch.cat([sa.query.weight, sa.key.weight, sa.value.weight], 0)  # (3d, d)
            b = torch.cat([sa.query.bias, sa.key.bias, sa.value.bias], 0)
            self.qkv.append((w, b))

    def forward(self, input_ids, attention_mask, fused: FusedBank, slots: Tensor) -> Tensor:
        rows = fused.rows(slots)
        self.activation = fused.activation
        gate_on, gate_const = fused.gate_on[slots], fused.gate_const[slots]  # (B, G)
        m = attention_mask.to(torch.float32).unsqueeze(-1)  # (B, T, 1)
        count = m.sum(1).clamp_min(1.0)  # (B, 1)
        P = fused.P
        prefix_mask = torch.arange(P) < fused.prefix_len[slots].unsqueeze(1)  # (B, P)
        key_mask = torch.cat([prefix_mask.to(attention_mask.dtype), attention_mask], 1)
        x = self.embed(input_ids, None)  # (B, T, d)
        for index, layer in enumerate(self.backbone.layers):
            x = self.fast_layer(layer, index, x, rows, (gate_on, gate_const), (m, count), key_mask)
        head = [rows[k] for k in C.HEAD_TENSORS]
        n = fused.num_labels
        return head_logits(x[:, 0], head[0], head[1], head[2][..., :n], head[3][..., :n])

    def fast_layer(self, layer, i, x, rows, gates, masks, key_mask) -> Tensor:
        (gate_on, gate_const), (m, count) = gates, masks
        r, d = rows["up"].shape[2] // 2, x.shape[-1]
        # LoRA down-projections and the three input gates in one bmm.
        xa = torch.bmm(x, rows["down"][:, i])  # (B, T, 2r + 3)
        g_in = (torch.sigmoid(xa[..., 2 * r :] + rows["in_gate_b"][:, i, None]) * m).sum(1)
        g = torch.where(gate_on[:, :3], g_in / count, gate_const[:, :3])  # (B, 3)
        scale = torch.repeat_interleave(g[:, 1:3], r, dim=1).unsqueeze(1)  # (B, 1, 2r)
        qkv = F.linear(x, *self.qkv[i])  # (B, T, 3d)
        lora = torch.bmm(xa[..., : 2 * r] * scale, rows["up"][:, i])  # (B, T, 2d)
        q = qkv[..., :d] + lora[..., :d]
        v = qkv[..., 2 * d :] + lora[..., d:]
        pk = rows["prefix"][:, i] * g[:, 0, None, None, None]  # (B, 2, P, d)
        k = torch.cat([pk[:, 0], qkv[..., d : 2 * d]], 1)
        v = torch.cat([pk[:, 1], v], 1)
        context = self.attention(q, k, v, key_mask)
        attn, ffn_in, ffn_out = layer.attention, layer.intermediate, layer.output
        h = self.layer_norm(attn.output.LayerNorm, attn.output.dense(context) + x, None)
        f = ffn_out.dense(ffn_in.intermediate_act_fn(ffn_in.dense(h)))
        f = self.layer_norm(ffn_out.LayerNorm, f + h, None)
        # Adapter down-projection and its gate in one bmm.
        za = torch.baddbmm(rows["ad_b"][:, i, None], f, rows["ad_down"][:, i])  # (B, T, m+1)
        g_a = (torch.sigmoid(za[..., -1:]) * m).sum(1) / count  # (B, 1)
        s = torch.where(gate_on[:, 3:], g_a, gate_const[:, 3:]).unsqueeze(-1)  # (B, 1, 1)
        z = self.activation(za[..., :-1]) * s
        return torch.baddbmm(f + rows["ad_up_b"][:, i, None] * s, z, rows["ad_up"][:, i])
