"""LoRA on the query and value projections: W x + scale * (x A) B, scale = gate or alpha/r."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def add_lora(qkv: Tensor, projected: Tensor, scale: Tensor, up: Tensor) -> Tensor:
    """Add both LoRA deltas to the fused QKV output in place, in one baddbmm.

    qkv: (B, T, 3d) with columns [q | v | k]; projected: (B, T, 3 + 2r) the in-projection
    ([3 gate logits, then x A_q and x A_v interleaved by rank]); scale: (B, 1, 3 + 2r) each
    column's scale (the gate or alpha/r); up: (B, 3 + 2r, 2d) block-diagonal [B_q | B_v] with
    zero rows for the gate columns. Ranks are zero-padded to the batch's r (exact zeros).
    """
    qkv[..., : up.shape[-1]].baddbmm_(projected * scale, up)
    return qkv


def init_lora_weights(layers: int, hidden: int, rank: int) -> tuple[Tensor, Tensor]:
    """A from a Kaiming-uniform range, B zero, so a fresh LoRA changes nothing."""
    bound = 1.0 / math.sqrt(hidden)
    a = torch.empty(layers, hidden, rank).uniform_(-bound, bound)
    return a, torch.zeros(layers, rank, hidden)
