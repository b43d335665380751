"""Per-task prediction heads on the first token: classification with N labels or regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def head_logits(
    pooled: Tensor,
    dense_w: Tensor,
    dense_b: Tensor,
    out_w: Tensor,
    out_b: Tensor,
    dropout: float = 0.0,
    training: bool = False,
) -> Tensor:
    """pooled: (B, d); dense_w: (B, d, d); dense_b: (B, d); out_w: (B, d, n); out_b: (B, n)
    (leading 1 instead of B when every row uses the same task).

    Label counts of different tasks are zero-padded to the batch's largest n; callers keep
    each row's first n_labels logits.
    """
    h = torch.tanh(torch.matmul(pooled.unsqueeze(1), dense_w).squeeze(1) + dense_b)  # (B, d)
    h = F.dropout(h, dropout, training)
    return torch.matmul(h.unsqueeze(1), out_w).squeeze(1) + out_b  # (B, n)


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
