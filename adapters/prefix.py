"""Prefix-tuning: gated per-layer vectors prepended to the attention keys and values."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PrefixEncoder(nn.Module):
    """Training-time reparameterisation shared by all layers.

    Embedding(P, d) -> Linear(d, hidden) -> tanh -> Linear(hidden, layers * 2 * d). After
    training only its output (`P_K`, `P_V` per layer) is kept in the artifact.
    """

    def __init__(self, layers: int, hidden: int, length: int, mlp_hidden: int) -> None:
        super().__init__()
        self.layers, self.hidden, self.length = layers, hidden, length
        self.embedding = nn.Embedding(length, hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_hidden), nn.Tanh(), nn.Linear(mlp_hidden, layers * 2 * hidden)
        )

    def forward(self) -> tuple[Tensor, Tensor]:
        """Returns P_K, P_V, each (layers, length, hidden)."""
        idx = torch.arange(self.length, device=self.embedding.weight.device)
        out = self.mlp(self.embedding(idx))  # (P, L * 2 * d)
        out = out.view(self.length, self.layers, 2, self.hidden).permute(2, 1, 0, 3)
        return out[0], out[1]


def prefix_keys_values(
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    prefix_k: Tensor,
    prefix_v: Tensor,
    prefix_mask: Tensor,
    scale: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Prepend each row's gated prefix to its keys and values.

    k, v: (B, T, d); mask: (B, T); prefix_k, prefix_v: (B, P, d), padded to the batch's longest
    prefix; prefix_mask: (B, P) 1 where a row's prefix is real; scale: (B,).
    Returns keys and values (B, P + T, d) and the key mask (B, P + T).
    """
    s = scale.view(-1, 1, 1)
    keys = torch.cat([prefix_k * s, k], dim=1)
    values = torch.cat([prefix_v * s, v], dim=1)
    return keys, values, torch.cat([prefix_mask.to(mask.dtype), mask], dim=1)
