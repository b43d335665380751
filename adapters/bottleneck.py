"""Bottleneck adapter after the feed-forward block: h + G_A * f(h W_down + b) W_up + b."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "swish": F.silu,
}
_BY_ID = tuple(ACTIVATIONS.values())


def add_adapter(
    h: Tensor,
    projected: Tensor,
    up_w: Tensor,
    up_b: Tensor,
    scale: Tensor,
    activations: tuple[int, ...],
    onehot: Tensor | None,
) -> Tensor:
    """h + scale * (f(h W_down + b_down) W_up + b_up), per row.

    projected: (B, T, 1 + m) the fused down-projection (column 0 is the gate logit, whose row
    of `up_w` (B, 1 + m, d) is zero); up_b: (B, 1, d); scale: (B, 1, 1). Zero-padded
    bottleneck units contribute exactly zero (every activation maps 0 to 0). When rows use
    different activations, each row keeps its own through `onehot` (B, activations).
    """
    ys = [torch.baddbmm(up_b, _BY_ID[a](projected), up_w) for a in activations]  # (B, T, d)
    out = ys[0]
    if onehot is not None:
        out = out * onehot[:, activations[0], None, None]
        for a, y in zip(activations[1:], ys[1:]):
            out = torch.addcmul(out, y, onehot[:, a, None, None])
    return torch.addcmul(h, out, scale)


def init_adapter_weights(layers: int, hidden: int, bottleneck: int) -> dict[str, Tensor]:
    """Down-projection N(0, 0.02); up-projection zero, so a fresh adapter is the identity."""
    return {
        "adapter_down_w": torch.randn(layers, hidden, bottleneck) * 0.02,
        "adapter_down_b": torch.zeros(layers, bottleneck),
        "adapter_up_w": torch.zeros(layers, bottleneck, hidden),
        "adapter_up_b": torch.zeros(layers, hidden),
    }
