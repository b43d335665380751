"""BitFit as per-task bias deltas, so the shared backbone itself is never modified."""

from __future__ import annotations

import torch
from torch import Tensor

from adapters.schema import BackboneDims, bitfit_sizes


def init_bitfit_weights(dims: BackboneDims) -> dict[str, Tensor]:
    """Zero deltas: a fresh BitFit task equals the backbone."""
    return {f"bitfit_{t}": torch.zeros(dims.layers, w) for t, w in bitfit_sizes(dims).items()}


def add_bias(x: Tensor, delta: Tensor | None) -> Tensor:
    """x: (B, T, w); delta: (B, 1, w) per-row bias delta, or None when no row uses BitFit."""
    return x if delta is None else x + delta
