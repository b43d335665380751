"""LoRA on the query and value projections: W x + scale * (x A) B, scale = gate or alpha/r."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def add_lora(y: Tensor, x: Tensor, a: Tensor, b: Tensor, scale: Tensor) -> Tensor:
    """y + scale * (x A) B, per row.

    y, x: (B, T, d); a: (B, d, r) and b: (B, r, d), or (1, d, r) / (1, r, d) when every row
    uses the same task; scale: (B,). Ranks of different tasks are zero-padded to the batch's
    largest r, which adds exact zeros. The scale multiplies the small (B, T, r) tensor.
    """
    low = torch.matmul(x, a) * scale.view(-1, 1, 1)  # (B, T, r)
    return y + torch.matmul(low, b)  # (B, T, d)


def init_lora_weights(layers: int, hidden: int, rank: int) -> tuple[Tensor, Tensor]:
    """A from a Kaiming-uniform range, B zero, so a fresh LoRA changes nothing."""
    bound = 1.0 / math.sqrt(hidden)
    a = torch.empty(layers, hidden, rank).uniform_(-bound, bound)
    return a, torch.zeros(layers, rank, hidden)
