"""The mixed-task forward: one pass over a batch whose rows belong to different tasks.

We own the layer loop over the frozen transformers modules (their weights are read, never
copied or changed), so per-row LoRA, prefix, adapter, gates, BitFit deltas and heads can be
applied with batched gathers and bmm. With nothing active this is the backbone's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adapters import constants as C
from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.bitfit import add_bias
from adapters.bottleneck import ACTIVATIONS, adapter_delta
from adapters.gate import gate_values, mix_constants
from adapters.heads import head_logits
from adapters.lora import add_lora
from adapters.prefix import prefix_keys_values

_ACT_NAMES = tuple(ACTIVATIONS)


@dataclass
class ForwardOutput:
    logits: Tensor  # (B, n) padded to the batch's largest label count
    num_labels: Tensor  # (B,) each row's real label count
    hidden: Tensor  # (B, T, d) last hidden states
    gates: Tensor | None  # (B, L, G) gate values actually applied, when asked for


@dataclass
class BatchView:
    """What a batch needs from the bank: row slots and the largest sizes among them."""

    bank: TaskBank
    slots: Tensor  # (B,) long
    rank: int
    bottleneck: int
    prefix_length: int
    num_labels: int
    any_gates: bool
    any_bitfit: bool
    activations: list[int]
    gate_on: Tensor  # (B, G)
    gate_const: Tensor  # (B, G)
    index: Tensor | slice  # rows' slots, or one slot's slice when all rows share it
    prefix_uniform: bool  # every row's prefix has the batch's length (no prefix padding)
    unpadded: bool = False  # no padding tokens in the batch

    @classmethod
    def of(cls, bank: TaskBank, slots: Tensor) -> BatchView:
        meta = bank.meta
        used = torch.unique(slots)
        adapters_used = used[meta.bottleneck[used] > 0]
        # One task in the batch: read its slot as a (1, ...) view, no gather, broadcast matmul.
        index = slice(int(used[0]), int(used[0]) + 1) if used.numel() == 1 else slots
        prefix = int(meta.prefix_length[used].max())
        return cls(
            bank=bank,
            slots=slots,
            rank=int(meta.lora_rank[used].max()),
            bottleneck=int(meta.bottleneck[used].max()),
            prefix_length=prefix,
            num_labels=int(meta.num_labels[used].max()),
            any_gates=bool(meta.gate_on[used].any()),
            any_bitfit=bool(meta.bitfit[used].any()),
            activations=sorted({int(a) for a in meta.activation[adapters_used]}),
            gate_on=meta.gate_on[slots],
            gate_const=meta.gate_const[slots],
            index=index,
            prefix_uniform=bool((meta.prefix_length[used] == prefix).all()),
        )

    def take(self, name: str, layer: int | None = None, trim: int | None = None) -> Tensor:
        """Each row's tensor `name` (at `layer`), last dim cut to `trim`: (B, ...) or (1, ...)."""
        t = self.bank.slots_of(name, layer)  # (S, ...)
        if trim is not None:
            t = t[..., :trim]
        return self._rows(t)

    def take_rows(self, name: str, layer: int, trim: int) -> Tensor:
        """Like `take` but cutting the second-to-last dim (B-matrices, prefixes, up-proj)."""
        return self._rows(self.bank.slots_of(name, layer)[:, :trim])

    def _rows(self, t: Tensor) -> Tensor:
        if isinstance(self.index, slice):
            return t[self.index]  # one task: a view, no copy
        return t.index_select(0, self.index)

    def bitfit(self, target: str, layer: int) -> Tensor | None:
        return self.take(f"bitfit_{target}", layer) if self.any_bitfit else None

    def row_lengths(self, lengths: Tensor) -> Tensor:
        return lengths[self.slots]


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

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        bank: TaskBank,
        slots: Tensor,
        token_type_ids: Tensor | None = None,
        return_gates: bool = False,
    ) -> ForwardOutput:
        view = BatchView.of(bank, slots)
        view.unpadded = bool(attention_mask.all())
        x = self.embed(input_ids, token_type_ids)  # (B, T, d)
        gates = []
        for index, layer in enumerate(self.backbone.layers):
            x, layer_gates = self.layer_forward(layer, index, x, attention_mask, view)
            gates.append(layer_gates)
        logits = head_logits(
            x[:, 0],
            view.take("head_dense_w"),
            view.take("head_dense_b"),
            view.take("head_out_w", trim=view.num_labels),
            view.take("head_out_b", trim=view.num_labels),
            dropout=self.hidden_dropout,
            training=self.training,
        )
        return ForwardOutput(
            logits=logits,
            num_labels=view.row_lengths(bank.meta.num_labels),
            hidden=x,
            gates=torch.stack(gates, dim=1) if return_gates else None,
        )

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None) -> Tensor:
        model = self.encoder
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        project = getattr(model, "embeddings_project", None)  # ELECTRA's smaller embeddings
        return project(x) if project is not None else x

    def layer_forward(
        self, layer: nn.Module, index: int, x: Tensor, mask: Tensor, view: BatchView
    ) -> tuple[Tensor, Tensor]:
        """One transformer layer with each row's submodules. Returns (x, gates (B, G))."""
        attn, ffn_in, ffn_out = layer.attention, layer.intermediate, layer.output
        # Gates for prefix and LoRA read the layer input.
        g_in = None
        if view.any_gates:
            g_in = gate_values(
                x, mask, view.take("gate_w", index, trim=3), view.take("gate_b", index, trim=3)
            )
        g = mix_constants(g_in, view.gate_on[:, :3], view.gate_const[:, :3])  # (B, 3)

        sa = attn.self
        q = add_bias(sa.query(x), view.bitfit("q", index))
        k = add_bias(sa.key(x), view.bitfit("k", index))
        v = add_bias(sa.value(x), view.bitfit("v", index))
        if view.rank:
            r = view.rank
            q = add_lora(
                q,
                x,
                view.take("lora_q_A", index, trim=r),
                view.take_rows("lora_q_B", index, r),
                g[:, C.GATE_LORA_Q],
            )
            v = add_lora(
                v,
                x,
                view.take("lora_v_A", index, trim=r),
                view.take_rows("lora_v_B", index, r),
                g[:, C.GATE_LORA_V],
            )
        key_mask = mask
        if view.prefix_length:
            P = view.prefix_length
            lengths = view.row_lengths(view.bank.meta.prefix_length)  # (B,)
            prefix_mask = torch.arange(P, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
            k, v, key_mask = prefix_keys_values(
                k,
                v,
                mask,
                view.take_rows("prefix_k", index, P),
                view.take_rows("prefix_v", index, P),
                prefix_mask,
                g[:, C.GATE_PREFIX],
            )
        if view.unpadded and view.prefix_uniform:
            key_mask = None  # every key is real: let attention skip the mask
        context = self.attention(q, k, v, key_mask)  # (B, T, d)

        h = F.dropout(
            add_bias(attn.output.dense(context), view.bitfit("attn_out", index)),
            self.hidden_dropout,
            self.training,
        )
        h = self.layer_norm(attn.output.LayerNorm, h + x, view.bitfit("ln_attn", index))
        f = add_bias(ffn_in.dense(h), view.bitfit("ffn_in", index))
        f = ffn_in.intermediate_act_fn(f)
        f = F.dropout(
            add_bias(ffn_out.dense(f), view.bitfit("ffn_out", index)),
            self.hidden_dropout,
            self.training,
        )
        f = self.layer_norm(ffn_out.LayerNorm, f + h, view.bitfit("ln_ffn", index))

        g_a = view.gate_const[:, C.GATE_ADAPTER]
        if view.bottleneck:
            f, g_a = self.adapter(f, mask, index, view)
        return f, torch.cat([g, g_a.unsqueeze(1)], dim=1)

    def adapter(
        self, f: Tensor, mask: Tensor, index: int, view: BatchView
    ) -> tuple[Tensor, Tensor]:
        """Bottleneck adapter after the FFN block, gated by its own input."""
        g_a = None
        if view.any_gates:
            g_a = gate_values(
                f,
                mask,
                view.take("gate_w", index)[:, :, C.GATE_ADAPTER :],
                view.take("gate_b", index)[:, C.GATE_ADAPTER :],
            )
        A = C.GATE_ADAPTER
        scale = mix_constants(g_a, view.gate_on[:, A:], view.gate_const[:, A:]).squeeze(1)
        m = view.bottleneck
        args = (
            view.take("adapter_down_w", index, trim=m),
            view.take("adapter_down_b", index, trim=m),
            view.take_rows("adapter_up_w", index, m),
            view.take("adapter_up_b", index),
        )
        if len(view.activations) <= 1:
            act = _ACT_NAMES[view.activations[0]] if view.activations else "relu"
            return f + adapter_delta(f, *args, scale, act), scale
        row_act = view.row_lengths(view.bank.meta.activation)
        delta = torch.zeros_like(f)
        for a in view.activations:
            d_a = adapter_delta(f, *args, scale, _ACT_NAMES[a])
            delta = torch.where((row_act == a).view(-1, 1, 1), d_a, delta)
        return f + delta, scale

    def attention(self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None) -> Tensor:
        """Multi-head scaled dot-product attention. q: (B, T, d); k, v: (B, S, d)."""
        B, T, d = q.shape
        H = self.heads
        qh = q.view(B, T, H, d // H).transpose(1, 2)  # (B, H, T, dh)
        kh = k.view(B, k.shape[1], H, d // H).transpose(1, 2)  # (B, H, S, dh)
        vh = v.view(B, v.shape[1], H, d // H).transpose(1, 2)
        allowed = key_mask.bool()[:, None, None, :] if key_mask is not None else None  # (B,1,1,S)
        out = F.scaled_dot_product_attention(
            qh,
            kh,
            vh,
            attn_mask=allowed,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        return out.transpose(1, 2).reshape(B, T, d)

    @staticmethod
    def layer_norm(ln: nn.LayerNorm, x: Tensor, bias_delta: Tensor | None) -> Tensor:
        y = F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
        return add_bias(y, bias_delta)
