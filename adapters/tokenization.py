"""Tokenizer loading and encoding of single texts and text pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor


@dataclass
class EncodedBatch:
    input_ids: Tensor  # (B, T)
    attention_mask: Tensor  # (B, T)
    token_type_ids: Tensor | None  # (B, T)

    def to(self, device: torch.device | str) -> EncodedBatch:
        tt = self.token_type_ids.to(device) if self.token_type_ids is not None else None
        return EncodedBatch(self.input_ids.to(device), self.attention_mask.to(device), tt)


def load_tokenizer(path: Path | str):
    """A fast tokenizer from the backbone's local directory (never downloads)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def encode(
    tokenizer,
    texts: list[str],
    pairs: list[str | None] | None = None,
    max_length: int = 128,
) -> EncodedBatch:
    """Tokenise with truncation to `max_length`, padding to the longest row."""
    has_pairs = pairs is not None and any(p is not None for p in pairs)
    if has_pairs and any(p is None for p in pairs):  # type: ignore[union-attr]
        raise ValueError("either every row has a text pair or none does")
    args = (texts, pairs) if has_pairs else (texts,)
    enc = tokenizer(
        *args,
        truncation="longest_first" if has_pairs else True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    return EncodedBatch(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        token_type_ids=enc.get("token_type_ids"),
    )
