"""LoRA on the query and value projections: W x + scale * (x A) B, scale = gate or alpha/r."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def lora_delta(x: Tensor, a: Tensor, b: Tensor, scale: Tensor) -> Tensor:
    """Per-row low-rank update.

    x: (B, T, d); a: (B, d, r); b: (B, r, d); scale: (B,). Ranks of different tasks are
    zero-padded to the batch's largest r, which adds exact zeros.
    """
    return torch.bmm(torch.bmm(x, a), b) * scale.view(-1, 1, 1)  # (B, T, d)


def init_lora_weights(layers: int, hidden: int, rank: int) -> tuple[Tensor, Tensor]:
    """A from a Kaiming-uniform range, B zero, so a fresh LoRA changes nothing."""
    bound = 1.0 / math.sqrt(hidden)
    a = torch.empty(layers, hidden, rank).uniform_(-bound, bound)
    return a, torch.zeros(layers, rank, hidden)
