"""The BERT family: post-LayerNorm blocks with absolute positions (BERT, RoBERTa, XLM-R,
ELECTRA, CamemBERT), `model.encoder.layer[i]` as in `modeling_bert.py`.

Attach points, in order (`adapters.methods.base`): the fused [q | v | k] projection (LoRA adds
to q and v), the tokens' values and keys (a prefix goes in front), attention's dense output and
its LayerNorm, the feed-forward block's two dense layers and activation, its LayerNorm, and the
block's output (the adapter, after the residual + LayerNorm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.families.base import Family, Stack, at, attend, layer_norm
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
    KEYS_VALUES,
    LAYER_INPUT,
    LN_ATTN,
    LN_FFN,
    QKV,
    QKV_ROWS,
    Term,
)

if TYPE_CHECKING:
    from adapters.packing import Packing
    from adapters.rows import BatchRows


class Bert(Family):
    name = "bert"
    model_types = ("bert", "roberta", "xlm-roberta", "electra", "camembert")

    def check(self, config: Any) -> str | None:
        kind = getattr(config, "position_embedding_type", "absolute")
        if kind not in ("absolute", None):
            return f"position_embedding_type {kind!r} is not supported"
        return None

    def stack(self, backbone: Any) -> Stack:
        return BertStack(backbone)


class BertStack(Stack):
    """The BERT layer loop; Q, K and V run as one GEMM over a frozen fused copy."""

    projections = ("query", "value", "key")  # `attention.self`'s modules, in fused order

    def __init__(self, backbone: Any) -> None:
        super().__init__()
        self.model = backbone.model
        cfg = backbone.config
        self.hidden_dropout = cfg.hidden_dropout_prob
        self.attention_dropout = cfg.attention_probs_dropout_prob
        self.heads = cfg.num_attention_heads
        for i, layer in enumerate(backbone.layers):
            w, b = self.fuse(layer)
            self.register_buffer(f"qkv_w{i}", w.detach().clone(), persistent=False)
            self.register_buffer(f"qkv_b{i}", b.detach().clone(), persistent=False)

    def fuse(self, layer: Any) -> tuple[Tensor, Tensor]:  # a transformers layer: dynamic
        """[W_q | W_v | W_k] (3d, d) and their biases, from the layer's live modules."""
        modules = [getattr(layer.attention.self, name) for name in self.projections]
        return torch.cat([m.weight for m in modules]), torch.cat([m.bias for m in modules])

    def qkv(self, index: int, layer: Any) -> tuple[Tensor, Tensor]:
        """The fused [q | v | k] projection: a frozen copy, or live when the backbone trains."""
        if getattr(layer.attention.self, self.projections[0]).weight.requires_grad:
            return self.fuse(layer)
        return getattr(self, f"qkv_w{index}"), getattr(self, f"qkv_b{index}")

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None, mask: Tensor) -> Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        project = getattr(self.model, "embeddings_project", None)  # ELECTRA's smaller embeddings
        return project(x) if project is not None else x

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
        values_keys = at(KEYS_VALUES, values_keys, t)  # the tokens' (B, T, 2d)
        mask = self.scores_mask(index, layer, q, values_keys, rows, t)
        values_keys = at(ATTENTION_KV, values_keys, t)  # (B, S, 2d)
        p = self.attention_dropout if self.training else 0.0
        flat = packing.packed
        context = packing.pack(attend(q, values_keys, self.heads, mask, p, flat, self.scale))

        h = at(ATTN_OUT, attn.output.dense(at(CONTEXT, context, t)), t)
        h = at(LN_ATTN, layer_norm(attn.output.LayerNorm, self.dropout(h) + x), t)
        f = at(FFN_ACT, ffn_in.intermediate_act_fn(at(FFN_IN, ffn_in.dense(h), t)), t)
        f = self.dropout(at(FFN_OUT, ffn_out.dense(f), t))
        f = at(LN_FFN, layer_norm(ffn_out.LayerNorm, f + h), t)
        return block_output(f, rows, t, packing, want_gates)

    scale: float | None = None  # attention's score scale (None: 1 / sqrt(d_head))

    def scores_mask(
        self, index: int, layer: Any, q: Tensor, tokens_vk: Tensor, rows: BatchRows, t: Term
    ) -> Tensor | None:
        """The attention mask over [prefix | tokens] keys, bool or added to the scores, from
        the layer's queries and the tokens' own [v | k] (B, T, 2d): BERT's masks padding."""
        return rows.key_mask

    def dropout(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.hidden_dropout, True) if self.training else x


def block_output(
    f: Tensor, rows: BatchRows, t: Term, packing: Packing, want_gates: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The feed-forward block's output through the adapter (after the residual), and the
    layer's gate values: (x, padded, gates)."""
    f_rows = None if packing.packed else f
    if ADAPTER_INPUT in rows.sites:  # the adapter's gate logit and down-projection
        f_rows = packing.unpack(f)
        t.sites[ADAPTER_INPUT.name] = GATES.project(ADAPTER_INPUT, rows, t.w, f_rows)
    if FFN_BLOCK in rows.terms:
        f_rows = at(FFN_BLOCK, packing.unpack(f) if f_rows is None else f_rows, t)
        f = packing.pack(f_rows)
    gates = GATES.values(rows, t.sites) if want_gates else None
    return f, f_rows, gates
