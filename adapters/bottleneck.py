"""Bottleneck adapter after the feed-forward block: h + G_A * f(h W_down + b) W_up + b."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "swish": F.silu}


def adapter_delta(
    h: Tensor,
    down_w: Tensor,
    down_b: Tensor,
    up_w: Tensor,
    up_b: Tensor,
    scale: Tensor,
    activation: str = "relu",
) -> Tensor:
    """Per-row adapter output to add to h: scale * (f(h W_down + b_down) W_up + b_up).

    h: (B, T, d); down_w: (B, d, m); down_b: (B, m); up_w: (B, m, d); up_b: (B, d) (a leading
    1 instead of B when every row uses the same task); scale: (B,). Zero-padded bottleneck
    units contribute exactly zero. The scale is applied to the small (B, T, m) tensor.
    """
    s = scale.view(-1, 1, 1)
    z = ACTIVATIONS[activation](torch.matmul(h, down_w) + down_b.unsqueeze(1))  # (B, T, m)
    return torch.matmul(z * s, up_w) + up_b.unsqueeze(1) * s  # (B, T, d)


def init_adapter_weights(layers: int, hidden: int, bottleneck: int) -> dict[str, Tensor]:
    """Down-projection N(0, 0.02); up-projection zero, so a fresh adapter is the identity."""
    return {
        "adapter_down_w": torch.randn(layers, hidden, bottleneck) * 0.02,
        "adapter_down_b": torch.zeros(layers, bottleneck),
        "adapter_up_w": torch.zeros(layers, bottleneck, hidden),
        "adapter_up_b": torch.zeros(layers, hidden),
    }
