"""Texts in from arguments or stdin, predictions out as lines (local and remote predict)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the module stays light: no torch for a remote predict's input parsing
    from adapters.postprocess import RowPrediction


def stdin_rows(stream: Iterable[str] | None = None) -> tuple[list[str], list[str] | None]:
    """Non-empty lines as texts; when every line has a tab, `text<TAB>pair`."""
    lines = [line.rstrip("\n") for line in (stream or sys.stdin) if line.strip()]
    if lines and all("\t" in line for line in lines):
        texts, pairs = zip(*(line.split("\t", 1) for line in lines))
        return list(texts), list(pairs)
    return lines, None


def format_prediction(row: RowPrediction) -> str:
    if row.label is None:
        return f"{row.value:.4f}"
    scores = " ".join(f"{name}={p:.4f}" for name, p in row.scores.items())
    return f"{row.label}\t{scores}"
