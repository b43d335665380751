"""Turn padded mixed-batch logits into each row's prediction."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RowPrediction:
    label: str | None  # None for regression
    scores: dict[str, float]  # label -> probability; empty for regression
    value: float | None  # regression output; None for classification


def row_predictions(logits: Tensor, label_names: list[list[str]]) -> list[RowPrediction]:
    """logits: (B, n) padded; label_names: per row, [] for regression."""
    out = []
    for row, names in zip(logits.detach().float().cpu(), label_names):
        if not names:
            out.append(RowPrediction(label=None, scores={}, value=float(row[0])))
            continue
        probs = torch.softmax(row[: len(names)], dim=-1)
        best = int(probs.argmax())
        out.append(
            RowPrediction(
                label=names[best],
                scores={n: float(p) for n, p in zip(names, probs)},
                value=None,
            )
        )
    return out
