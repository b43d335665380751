"""Gates: G = mean over real tokens of sigmoid(x W + b), one scalar per row and submodule."""

from __future__ import annotations

import torch
from torch import Tensor


def gate_values(x: Tensor, mask: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Per-row gate scores.

    x: (B, T, d) the gated submodule's input; mask: (B, T) 1 for real tokens;
    weight: (B, d, G) per-row gate weights, or (1, d, G) shared; bias: (B, G). Returns (B, G).
    Padding is excluded from the mean so a row's gate never depends on its batch neighbours.
    """
    scores = torch.sigmoid(torch.matmul(x, weight) + bias.unsqueeze(1))  # (B, T, G)
    m = mask.to(scores.dtype).unsqueeze(-1)  # (B, T, 1)
    return (scores * m).sum(1) / m.sum(1).clamp_min(1.0)


def mix_constants(gates: Tensor | None, gate_on: Tensor, gate_const: Tensor) -> Tensor:
    """Use the learned gate where a row's task has gates, its constant scale elsewhere.

    gates: (B, G) or None when no row in the batch is gated; gate_on, gate_const: (B, G).
    """
    if gates is None:
        return gate_const
    return torch.where(gate_on, gates, gate_const)


def init_gate_weights(layers: int, hidden: int, count: int) -> tuple[Tensor, Tensor]:
    """Gate Linear(hidden -> 1) per submodule per layer, N(0, 0.02) weights, zero bias."""
    return torch.randn(layers, hidden, count) * 0.02, torch.zeros(layers, count)
