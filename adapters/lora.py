"""LoRA on the query and value projections: W x + scale * (x A) B, scale = gate or alpha/r."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def add_lora(qkv: Tensor, projected: Tensor, scale: Tensor, up: Tensor) -> Tensor:
    """Both LoRA deltas added to the fused QKV output in one baddbmm.

    qkv: (B, T, 3d) with columns [q | v | k]; projected: (B, T, 3 + 2r) the in-projection
    ([3 gate logits, then x A_q and x A_v interleaved by rank]); scale: (B, 1, 3 + 2r) each
    column's scale (the gate or alpha/r); up: (B, 3 + 2r, 3d), B_q under the q columns and B_v
    under the v columns, zero rows for the gate columns. Ranks are zero-padded to the batch's r,
    which adds exact zeros.
    """
    return torch.baddbmm(qkv, projected * scale, up)


def init_lora_weights(layers: int, hidden: int, rank: int) -> tuple[Tensor, Tensor]:
    """A from a Kaiming-uniform range, B zero, so a fresh LoRA changes nothing."""
    bound = 1.0 / math.sqrt(hidden)
    a = torch.empty(layers, hidden, rank).uniform_(-bound, bound)
    return a, torch.zeros(layers, rank, hidden)
