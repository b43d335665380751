"""The DeBERTa-v2/v3 family (`modeling_deberta_v2.py`, `model.encoder.layer[i]`): BERT's
post-LayerNorm blocks (`attention.output`, `intermediate`, `output`: dense + LayerNorm) with
disentangled attention over relative positions; the embeddings multiply padding by zero,
add absolute positions only when `position_biased_input`, token types when
`type_vocab_size > 0`.

Attention of query i and token key j, per head (d_h the head size, f = 1 + the number of
`pos_att_type` terms, delta(i, j) the relative position i - j, log-bucketed past
`position_buckets / 2`; R the 2k relative embeddings, rows indexed clamped to [0, 2k)):

  (q_i k_j + [c2p] q_i Kr[k + delta(i, j)] + [p2c] k_j Qr[k - delta(j, i)]) / sqrt(d_h f)

with `Kr`, `Qr` the relative embeddings (LayerNorm-ed when `norm_rel_ebd`) through the key and
query projections when `share_att_key`, else through `pos_key_proj` / `pos_query_proj`.

Attach points are BERT's (`families/bert.py`). When `share_att_key`, `query_proj` and
`key_proj` also project the relative embeddings, and a method that adapts them adapts them
there too, per row, as PEFT's and AdapterHub's wrapped modules do: R runs through the `qkv`,
`qkv_rows` and `keys_values` terms (BitFit's q / k deltas, LoRA's q update with the row's gate,
(IA)^3's l_k), the layer-input site's columns projected from R with the scales the row's
tokens gave. The prefix goes in front of the keys and values and gets the content score
`q_i P_K / sqrt(d_h f)` only: no relative position is defined between a token and a prefix
vector, so its c2p and p2c columns are zero, and the tokens' own c2p / p2c use the tokens'
keys and positions 0..T-1 (AdapterHub's prefix tuning on DeBERTa-v2 does exactly this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.bank import KEYED
from adapters.families.base import Family, Stack, at
from adapters.families.bert import BertStack
from adapters.methods.base import KEYS_VALUES, LAYER_INPUT, QKV, QKV_ROWS, Term

if TYPE_CHECKING:
    from adapters.rows import BatchRows

# The points of the query / key projections, which R runs through too when keys are shared.
PROJECTION_POINTS = (QKV, QKV_ROWS, KEYS_VALUES)


class Deberta(Family):
    name = "deberta"
    model_types = ("deberta-v2",)
    attn_implementation = None  # DeBERTa's disentangled attention is its only one
    fingerprint_keys = (
        "relative_attention",
        "max_relative_positions",
        "position_buckets",
        "pos_att_type",
        "share_att_key",
        "norm_rel_ebd",
        "position_biased_input",
        "embedding_size",
        "pooler_hidden_size",
        "pooler_hidden_act",
        "conv_kernel_size",
        "attention_head_size",
    )
    peft_names: ClassVar[dict[str, str]] = {
        "query": "query_proj",
        "key": "key_proj",
        "value": "value_proj",
    }

    def check(self, config: Any) -> str | None:
        if getattr(config, "conv_kernel_size", 0) > 0:
            return (
                f"conv_kernel_size={config.conv_kernel_size} (a convolution over neighbouring "
                "tokens after the first layer, as in DeBERTa-v2 xlarge) is not supported"
            )
        head = getattr(config, "attention_head_size", None)
        if head is not None and head * config.num_attention_heads != config.hidden_size:
            return f"attention_head_size {head} x heads is not hidden_size {config.hidden_size}"
        return None

    def stack(self, backbone: Any) -> Stack:
        return DebertaStack(backbone)


@dataclass
class Positions:
    """What every layer's relative-position terms read, built once per forward."""

    embeddings: Tensor  # (r, d) the rows of R the tokens' pairs read, normed when `norm_rel_ebd`
    c2p: Tensor  # (T, T) the row of those each (query, key) pair's c2p score reads
    p2c: Tensor  # (T, T) [key, query] the row each p2c score reads
    prefix: int  # prefix key positions in front of the tokens' (their relative terms: zero)


class DebertaStack(BertStack):
    """The DeBERTa-v2 layer loop: BERT's, with the relative-position scores added to the
    attention's, its scale 1 / sqrt(d_h f)."""

    projections = ("query_proj", "value_proj", "key_proj")

    def __init__(self, backbone: Any) -> None:
        super().__init__(backbone)
        cfg = backbone.config
        sa = backbone.layers[0].attention.self  # every layer's attention reads one config
        self.pos_terms = tuple(t for t in ("c2p", "p2c") if t in sa.pos_att_type)
        self.relative = bool(sa.relative_attention) and bool(self.pos_terms)
        self.shared = bool(sa.share_att_key)
        self.span = sa.pos_ebd_size if sa.relative_attention else 0  # R has 2 * span rows
        self.root = math.sqrt(sa.attention_head_size * (1 + len(self.pos_terms)))  # sqrt(d_h f)
        self.scale = 1.0 / self.root
        from transformers.activations import ACT2FN

        self.pooler_act = ACT2FN[cfg.pooler_hidden_act]  # `ContextPooler`'s

    def pooler_activation(self, x: Tensor) -> Tensor:
        return self.pooler_act(x)

    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None, mask: Tensor) -> Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, mask=mask)

    def prepare(self, rows: BatchRows, mask: Tensor) -> Positions | None:
        """R and the relative positions of T tokens, by transformers' own functions."""
        if not self.relative:
            return None
        from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

        encoder = self.model.encoder
        tokens = mask[0][:, None]  # (T, 1): the function reads its length and device only
        relative = build_relative_position(
            tokens,
            tokens,
            bucket_size=encoder.position_buckets,
            max_position=encoder.max_relative_positions,
        )[0]  # (T, T) delta(i, j), bucketed
        # only the rows of R that T tokens' pairs read: [span - reach, span + reach]
        top, reach = 2 * self.span - 1, self.reach(mask.shape[1])
        low, high = max(0, self.span - reach), min(top, self.span + reach) + 1
        prefix = sum(getattr(rows.plan.sizes, m.size) for m in KEYED if m.size is not None)
        return Positions(
            embeddings=encoder.get_rel_embedding()[low:high],
            c2p=torch.clamp(relative + self.span, 0, top) - low,
            p2c=torch.clamp(-relative + self.span, 0, top) - low,
            prefix=prefix,
        )

    def reach(self, tokens: int) -> int:
        """The largest |delta(i, j)| among `tokens` positions (a host int): their distance
        while no pair reaches the log buckets (past half of `position_buckets`), else the
        whole table."""
        far, buckets = tokens - 1, self.model.encoder.position_buckets
        if buckets > 0 and far > buckets // 2:
            return self.span
        return min(far, self.span)

    def scores_mask(
        self, index: int, layer: Any, q: Tensor, tokens_vk: Tensor, rows: BatchRows, t: Term
    ) -> Tensor | None:
        """The relative-position scores (B, H, T, P + T), zero in the prefix columns, padding
        (and short prefixes) masked; BERT's bool mask when there are none."""
        pos: Positions | None = rows.family
        if pos is None:
            return rows.key_mask
        d = q.shape[-1]
        pos_q, pos_k = self.projected_positions(index, layer, pos.embeddings, rows, t)
        scores = self.relative_scores(q, tokens_vk[..., d:], pos_q, pos_k, pos)
        if pos.prefix:
            scores = F.pad(scores, (pos.prefix, 0))
        if rows.key_mask is not None:
            scores = scores.masked_fill(~rows.key_mask, torch.finfo(scores.dtype).min)
        return scores

    def projected_positions(
        self, index: int, layer: Any, rel: Tensor, rows: BatchRows, t: Term
    ) -> tuple[Tensor | None, Tensor | None]:
        """(Qr, Kr), (1, r, d) shared by every row, or (B, r, d) when a row's methods adapt
        the shared query / key projections; None where no term reads it."""
        if self.training:
            rel = F.dropout(rel, self.hidden_dropout, True)
        sa, d = layer.attention.self, rel.shape[-1]
        if not self.shared:
            pos_q = sa.pos_query_proj(rel)[None] if "p2c" in self.pos_terms else None
            pos_k = sa.pos_key_proj(rel)[None] if "c2p" in self.pos_terms else None
            return pos_q, pos_k
        w, b = self.qkv(index, layer)  # [q | v | k]
        if not any(point in rows.terms for point in PROJECTION_POINTS):
            pos_q = F.linear(rel, w[:d], b[:d])[None] if "p2c" in self.pos_terms else None
            pos_k = F.linear(rel, w[2 * d :], b[2 * d :])[None] if "c2p" in self.pos_terms else None
            return pos_q, pos_k
        B = rows.plan.rows
        weights = dict(t.w)
        if rows.per_row:  # the token-wise deltas as (B, 1, w) per row
            weights.update({name: v[:, index] for name, v in rows.per_row.items()})
        rt = Term(rows, weights, dict(t.sites), t.training, t.dropout)
        site = t.sites.get(LAYER_INPUT.name)
        if site is not None and site.columns is not None:  # R's columns, the rows' scales
            columns = torch.baddbmm(
                t.w[LAYER_INPUT.bias], rel.expand(B, -1, -1), t.w[LAYER_INPUT.weight]
            )
            rt.sites[LAYER_INPUT.name] = replace(site, columns=columns)
        qkv = F.linear(rel, w, b).expand(B, -1, -1).contiguous()  # (B, r, 3d)
        pos_q, values_keys = at(QKV_ROWS, at(QKV, qkv, rt), rt).split([d, 2 * d], -1)
        pos_k = at(KEYS_VALUES, values_keys, rt)[..., d:]
        keep_q, keep_k = "p2c" in self.pos_terms, "c2p" in self.pos_terms
        return (pos_q if keep_q else None), (pos_k if keep_k else None)

    def relative_scores(
        self, q: Tensor, k: Tensor, pos_q: Tensor | None, pos_k: Tensor | None, pos: Positions
    ) -> Tensor:
        """(B, H, T, T) c2p + p2c over the tokens' queries q and keys k (B, T, d), gathered
        as `DisentangledSelfAttention.disentangled_attention_bias` gathers them."""
        B, T, _ = q.shape
        index = (B, self.heads, T, T)
        scores = q.new_zeros(())
        if pos_k is not None:
            c2p = _heads(q, self.heads) @ _heads(pos_k, self.heads).transpose(-1, -2)
            scores = torch.gather(c2p, -1, pos.c2p.expand(index)) / self.root
        if pos_q is not None:
            p2c = _heads(k, self.heads) @ _heads(pos_q, self.heads).transpose(-1, -2)
            p2c = torch.gather(p2c, -1, pos.p2c.expand(index)).transpose(-1, -2)
            scores = scores + p2c / self.root
        return scores


def _heads(x: Tensor, heads: int) -> Tensor:
    """(B, S, d) -> (B, H, S, d_h)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)
