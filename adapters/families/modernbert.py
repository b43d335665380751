"""The ModernBERT family (`modeling_modernbert.py`, `model.layers[i]`): pre-LayerNorm blocks, a
fused `Wqkv` in [q | k | v] order, rotary positions, global and sliding-window local attention
alternating by `config.layer_types`, a GeGLU feed-forward block, no token types, a final norm.

Attach points, in order: the fused projection of the attention-normed input (its frozen copy
is reordered to [q | v | k], so LoRA adds to q and v as on BERT, and the layer-input site's
gates and LoRA down-projection read that normed input, which is what `Wqkv` reads); the tokens'
values and keys before rotary; then the prefix goes in front of the rotated keys with no rotation
of its own, and every query sees it, in local layers too; attention's `Wo` output; the GeGLU's
intermediate activations `act(x Wi_in) * (x Wi_gate)`; the block's `Wo` output; and the block's
output after its residual (the adapter). There is no post-residual LayerNorm and no bias to
tune, so methods at the BERT-only points (BitFit) are refused with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.bank import KEYED
from adapters.families.base import Family, Stack, at, attend
from adapters.families.bert import block_output
from adapters.methods import GATES
from adapters.methods.base import (
    ATTENTION_KV,
    ATTN_OUT,
    CONTEXT,
    FFN_ACT,
    FFN_BLOCK,
    FFN_OUT,
    HEAD,
    KEYS_VALUES,
    LAYER_INPUT,
    QKV,
    QKV_ROWS,
    Term,
)

if TYPE_CHECKING:
    from adapters.packing import Packing
    from adapters.rows import BatchRows

POINTS = (QKV, QKV_ROWS, KEYS_VALUES, ATTENTION_KV, CONTEXT, ATTN_OUT, FFN_ACT, FFN_OUT, FFN_BLOCK)
LOCAL = "sliding_attention"
HEAD_REFUSAL = (
    "ModernBERT's sequence-classification head (dense, GELU, LayerNorm, then the classifier) "
    "is not the head here (act(h_0 W_d + b_d) W_o + b_o, no norm)"
)
PEFT_REFUSALS = {
    "LORA": "PEFT LoRA on ModernBERT targets the fused Wqkv (one low-rank update of q, k and v "
    "together), and LoRA here adapts q and v only: an update of k has no place to go",
    "IA3": "PEFT (IA)^3 on ModernBERT's fused Wqkv scales q with k and v, and (IA)^3 here "
    "scales k and v only",
}


class ModernBert(Family):
    name = "modernbert"
    model_types = ("modernbert",)
    points = (*POINTS, HEAD)
    unreached = (
        "ModernBERT has no post-residual LayerNorm, its fused GeGLU input is twice the "
        "intermediate width, and its linear layers and norms carry no biases"
    )
    fingerprint_keys = (
        "norm_eps",
        "local_attention",
        "layer_types",
        "rope_parameters",
        "hidden_activation",
        "attention_bias",
        "mlp_bias",
        "norm_bias",
    )

    def peft_refusal(self, peft_type: str) -> str | None:
        reason = PEFT_REFUSALS.get(peft_type)
        return HEAD_REFUSAL if reason is None else f"{reason}; and {HEAD_REFUSAL}"

    def layers(self, model: Any):
        return model.layers

    def layer_norm_eps(self, config: Any) -> float:
        return float(config.norm_eps)

    def stack(self, backbone: Any) -> Stack:
        return ModernBertStack(backbone)


class ModernBertStack(Stack):
    """The ModernBERT layer loop over the frozen `ModernBertModel`."""

    def __init__(self, backbone: Any) -> None:
        super().__init__()
        self.model = backbone.model
        cfg = backbone.config
        self.heads = cfg.num_attention_heads
        self.window = cfg.sliding_window  # a local query sees keys within this distance
        self.attention_dropout, self.mlp_dropout = cfg.attention_dropout, cfg.mlp_dropout
        self.hidden_dropout = cfg.classifier_dropout
        for i, layer in enumerate(backbone.layers):
            w, b = _qkv(layer)
            self.register_buffer(f"qkv_w{i}", w.detach().clone(), persistent=False)
            if b is not None:
                self.register_buffer(f"qkv_b{i}", b.detach().clone(), persistent=False)

    def qkv(self, index: int, layer: Any) -> tuple[Tensor, Tensor | None]:
        """The fused [q | v | k] projection: a frozen copy, or live when the backbone trains."""
        if layer.attn.Wqkv.weight.requires_grad:
            return _qkv(layer)
        return getattr(self, f"qkv_w{index}"), getattr(self, f"qkv_b{index}", None)

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None, mask: Tensor) -> Tensor:
        return self.model.embeddings(input_ids=input_ids)  # no token types

    def prepare(self, rows: BatchRows, mask: Tensor) -> dict[str, tuple[Tensor, Tensor, Any]]:
        """Per layer type: rotary (cos, sin) (1, T, dh) and the attention mask over the
        [prefix | tokens] keys; a local query sees every prefix key and tokens within the
        window."""
        T, device = mask.shape[1], mask.device
        like = self.model.embeddings.tok_embeddings.weight
        positions = torch.arange(T, device=device)
        P = sum(getattr(rows.plan.sizes, m.size) for m in KEYED if m.size is not None)
        band = (positions[:, None] - positions[None, :]).abs() <= self.window  # (T, T)
        local = torch.cat([band.new_ones(T, P), band], 1).view(1, 1, T, P + T)
        if rows.key_mask is not None:
            local = local & rows.key_mask  # (B, 1, T, P + T)
        out = {}
        for kind in set(self.model.config.layer_types):
            cos, sin = self.model.rotary_emb(like, positions[None], kind)
            out[kind] = (cos, sin, local if kind == LOCAL else rows.key_mask)
        return out

    def layer(
        self,
        layer: Any,
        index: int,
        x: Tensor,
        padded: Tensor | None,
        rows: BatchRows,
        packing: Packing,
        want_gates: bool,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        d = x.shape[-1]
        cos, sin, mask = rows.family[layer.attention_type]
        t = Term(rows, rows.layers[index], {}, self.training, self.hidden_dropout)
        normed = layer.attn_norm(x)  # the identity in layer 0
        qkv = packing.unpack(at(QKV, F.linear(normed, *self.qkv(index, layer)), t))  # (B, T, 3d)
        if LAYER_INPUT in rows.sites:  # gate logits and LoRA's down-projection, one baddbmm
            x_rows = packing.unpack(normed) if LAYER_INPUT.weight in t.w else None
            t.sites[LAYER_INPUT.name] = GATES.project(LAYER_INPUT, rows, t.w, x_rows)
        q, values_keys = at(QKV_ROWS, qkv, t).split([d, 2 * d], -1)  # [q | v | k]
        v, k = at(KEYS_VALUES, values_keys, t).chunk(2, -1)
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        values_keys = at(ATTENTION_KV, torch.cat([v, k], -1), t)  # (B, P + T, 2d)
        p = self.attention_dropout if self.training else 0.0
        context = packing.pack(attend(q, values_keys, self.heads, mask, p, packing.packed))

        a = at(ATTN_OUT, layer.attn.Wo(at(CONTEXT, context, t)), t)
        h = x + self.dropout(a, self.attention_dropout)
        mlp = layer.mlp
        gelu_in, gate = mlp.Wi(layer.mlp_norm(h)).chunk(2, -1)  # GeGLU
        f = at(FFN_ACT, mlp.act(gelu_in) * gate, t)  # (.., intermediate)
        f = h + at(FFN_OUT, mlp.Wo(self.dropout(f, self.mlp_dropout)), t)
        return block_output(f, rows, t, packing, want_gates)

    def rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Rotary embedding of (B, T, d) per head, in float32 as transformers computes it."""
        B, T, d = x.shape
        xh = x.view(B, T, self.heads, d // self.heads).float()
        c, s = cos[:, :, None, :].float(), sin[:, :, None, :].float()
        half = xh.shape[-1] // 2
        rotated = torch.cat([-xh[..., half:], xh[..., :half]], -1)
        return (xh * c + rotated * s).to(x.dtype).reshape(B, T, d)

    def dropout(self, x: Tensor, p: float) -> Tensor:
        return F.dropout(x, p, True) if self.training and p > 0 else x

    def finish(self, hidden: Tensor) -> Tensor:
        return self.model.final_norm(hidden)


def _qkv(layer: Any) -> tuple[Tensor, Tensor | None]:
    """`Wqkv`'s rows reordered from [q | k | v] to [q | v | k]."""
    fused = layer.attn.Wqkv
    order = [0, 2, 1]
    w = fused.weight.unflatten(0, (3, -1))[order].flatten(0, 1)  # (3d, d)
    b = None if fused.bias is None else fused.bias.unflatten(0, (3, -1))[order].flatten(0, 1)
    return w, b
