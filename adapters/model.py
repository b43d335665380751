"""The mixed-task forward: one pass over a batch whose rows belong to different tasks.

We own the layer loop over the frozen transformers modules (their weights are read, never
changed; Q, K and V are fused into one GEMM), so per-row LoRA, prefix, adapter, gates, BitFit
deltas and heads apply with batched matmuls over the bank's fused layout (`adapters.fused`).
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
from adapters.bitfit import add_bias
from adapters.bottleneck import add_adapter
from adapters.gate import gate_means, mix_gates
from adapters.heads import head_logits
from adapters.lora import add_lora
from adapters.packing import Packing, Unpacked, packing_for
from adapters.plan import BatchPlan, plan_batch
from adapters.prefix import prepend_prefix
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
        many_acts = len(plan.activations) > 1
        if self.training or torch.is_grad_enabled():  # packing reuses buffers in place
            packing = Unpacked()
        else:
            packing = packing or packing_for(plan, input_ids.shape[1], bank.dtype)
            packing = packing.to(input_ids.device)
        rows = BatchRows.gather(
            bank, slots, plan, attention_mask, return_gates or many_acts, packing
        )
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
        logits = head_logits(hidden, rows.head, self.hidden_dropout, self.training)
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
        """One transformer layer with each row's submodules. `x` is the layer input, packed
        or not; `padded` the same as (B, T, d) when at hand. Returns (x, padded, gates)."""
        plan, w = rows.plan, rows.layers[index]
        attn, ffn_in, ffn_out = layer.attention, layer.intermediate, layer.output
        d = x.shape[-1]
        qkv_tokens = add_bias(F.linear(x, *self.qkv(index, layer)), w.get("bitfit_qkv"))
        qkv = packing.unpack(qkv_tokens)  # (B, T, 3d) [q | v | k]
        means = None
        scale = rows.mix["lora_off"]  # (B, 1, 3 + 2r): prefix scale in column 0, LoRA's from 3
        if "in_w" in w:
            x_rows = padded if padded is not None else packing.unpack(x)
            projected = torch.baddbmm(w["in_b"], x_rows, w["in_w"])  # gate logits, x A_q, x A_v
            if plan.gated:
                assert rows.gate_weights is not None  # set whenever the plan is gated
                means = gate_means(projected, rows.gate_weights)
                scale = mix_gates(scale, means, rows.mix["lora_on"])
            if plan.rank:
                qkv = add_lora(qkv, projected, scale, w["lora_up"])
        q, values_keys = qkv.split([d, 2 * d], -1)  # (B, T, d), (B, T, 2d) [v | k]
        if plan.prefix:  # (B, P + T, 2d)
            values_keys = prepend_prefix(values_keys, w["prefix"], scale[..., :1])
        context = packing.pack(self.attention(q, values_keys, rows.key_mask, packing.packed))

        h = add_bias(attn.output.dense(context), w.get("bitfit_attn_out"))
        h = self.layer_norm(attn.output.LayerNorm, self.dropout(h) + x, w.get("bitfit_ln_attn"))
        f = ffn_in.intermediate_act_fn(add_bias(ffn_in.dense(h), w.get("bitfit_ffn_in")))
        f = self.dropout(add_bias(ffn_out.dense(f), w.get("bitfit_ffn_out")))
        f = self.layer_norm(ffn_out.LayerNorm, f + h, w.get("bitfit_ln_ffn"))

        adapter_mean = None
        f_rows = None if packing.packed else f
        if plan.bottleneck:
            f_rows = packing.unpack(f)
            projected = torch.baddbmm(w["ad_b"], f_rows, w["ad_w"])  # gate logit, h W_down + b
            a_scale = rows.mix["ad_off"]  # (B, 1, 1)
            if plan.gated:
                assert rows.gate_weights is not None
                adapter_mean = gate_means(projected, rows.gate_weights)
                a_scale = mix_gates(a_scale, adapter_mean, rows.mix["ad_on"])
            onehot = rows.activation_onehot() if len(plan.activations) > 1 else None
            f_rows = add_adapter(
                f_rows, projected, w["ad_up"], w["ad_up_b"], a_scale, plan.activations, onehot
            )
            f = packing.pack(f_rows)
        gates = rows.gate_values(means, adapter_mean) if want_gates else None
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
    def layer_norm(ln: nn.LayerNorm, x: Tensor, bias_delta: Tensor | None) -> Tensor:
        y = F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
        return add_bias(y, bias_delta)


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
