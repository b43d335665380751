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


def prepend_prefix(values_keys: Tensor, prefix: Tensor, scale: Tensor) -> Tensor:
    """Prepend each row's gated prefix to its values and keys, in one cat.

    values_keys: (B, T, 2d) the [v | k] columns of the fused QKV output; prefix: (B, P, 2d)
    [P_V | P_K] zero-padded to the batch's longest prefix (padding positions are masked in
    attention); scale: (B, 1, 1). Returns (B, P + T, 2d).
    """
    return torch.cat([prefix * scale, values_keys], dim=1)
