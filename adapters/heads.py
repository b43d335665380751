"""Per-task prediction heads on the first token: classification with N labels or regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def head_logits(
    hidden: Tensor, head: dict[str, Tensor], dropout: float = 0.0, training: bool = False
) -> Tensor:
    """hidden: (B, T, d); head: `head_w` (B, d, d), `head_b` (B, 1, d), `head_out_w` (B, d, n),
    `head_out_b` (B, 1, n). Returns logits (B, n).

    Label counts of different tasks are zero-padded to the batch's largest n; callers keep
    each row's first n_labels logits.
    """
    pooled = hidden[:, :1]  # (B, 1, d) the first token
    h = torch.tanh(torch.baddbmm(head["head_b"], pooled, head["head_w"]))
    if training:
        h = F.dropout(h, dropout, training)
    return torch.baddbmm(head["head_out_b"], h, head["head_out_w"]).squeeze(1)


def init_head_weights(
    hidden: int, num_labels: int, pooler: tuple[Tensor, Tensor] | None = None
) -> dict[str, Tensor]:
    """Dense layer from the backbone's pretrained pooler when it has one, else N(0, 0.02)."""
    if pooler is not None:
        dense_w, dense_b = pooler[0].detach().t().clone(), pooler[1].detach().clone()
    else:
        dense_w, dense_b = torch.randn(hidden, hidden) * 0.02, torch.zeros(hidden)
    return {
        "head_dense_w": dense_w,
        "head_dense_b": dense_b,
        "head_out_w": torch.randn(hidden, num_labels) * 0.02,
        "head_out_b": torch.zeros(num_labels),
    }
