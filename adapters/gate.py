"""Gates: G = mean over real tokens of sigmoid(x W + b), one scalar per row and submodule."""

from __future__ import annotations

import torch
from torch import Tensor


def mean_weights(real: Tensor) -> Tensor:
    """(B, 1, T) weights of a per-row mean over real tokens: 1/count on real tokens, 0 on
    padding. real: (B, T), 1 on real tokens, 0 on padding, in the dtype of the means."""
    return (real / real.sum(1, keepdim=True).clamp_min(1.0)).unsqueeze(1)


def gate_means(logits: Tensor, weights: Tensor) -> Tensor:
    """Per-row gate scores: the mean over real tokens of sigmoid(logits), as one bmm.

    logits: (B, T, c) (the gate columns of a fused projection, plus columns the caller
    ignores); weights: (B, 1, T) 1/count on real tokens, 0 on padding, so padding never
    enters the mean and a row's gate never depends on its batch neighbours. Returns (B, 1, c).
    """
    return torch.bmm(weights, torch.sigmoid(logits))


def mix_gates(off: Tensor, means: Tensor | None, on: Tensor | None) -> Tensor:
    """Each column's scale: `off + means @ on`, i.e. the learned gate where a row's task has
    gates and its constant scale elsewhere. off: (B, 1, c'); means: (B, 1, c); on: (B, c, c')
    (None when no row in the batch is gated)."""
    if means is None or on is None:
        return off
    return torch.baddbmm(off, means, on)


def init_gate_weights(layers: int, hidden: int, count: int) -> tuple[Tensor, Tensor]:
    """Gate Linear(hidden -> 1) per submodule per layer, N(0, 0.02) weights, zero bias."""
    return torch.randn(layers, hidden, count) * 0.02, torch.zeros(layers, count)
