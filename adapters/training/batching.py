"""Tokenise a task's examples once, then cut them into dynamically padded batches.

Training batches come in an order fixed by a seeded generator; with `group_by_length`,
examples of similar length share a batch (less padding, same examples per epoch) once the
set is larger than one grouping window.
Evaluation batches are sorted by length, which changes no prediction (the forward ignores
padding) and wastes the least compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from adapters.data import Example

GROUP_WINDOW = 50  # batches whose examples are sorted by length together


@dataclass
class EncodedSet:
    """Token ids of every example, unpadded, with their labels."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: Tensor  # (N,) long for classification, float for regression
    pad_id: int
    has_pairs: bool

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


@dataclass
class Batch:
    input_ids: Tensor  # (B, T)
    attention_mask: Tensor  # (B, T)
    token_type_ids: Tensor | None  # (B, T)
    labels: Tensor  # (B,)
    index: Tensor  # (B,) positions in the EncodedSet

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on `device` (the index stays where it is: it only reorders outputs)."""
        types = self.token_type_ids
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            types.to(device) if types is not None else None,
            self.labels.to(device),
            self.index,
        )


def encode_examples(
    tokenizer, examples: list[Example], max_length: int, regression: bool
) -> EncodedSet:
    """Tokenise with the same truncation rule as `adapters.tokenization.encode`."""
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples]
    has_pairs = any(p is not None for p in pairs)
    if has_pairs and any(p is None for p in pairs):
        raise ValueError("either every example has a text pair or none does")
    args = (texts, pairs) if has_pairs else (texts,)
    enc = tokenizer(*args, truncation=True, max_length=max_length) if examples else {}
    dtype = torch.float32 if regression else torch.long
    return EncodedSet(
        input_ids=list(enc.get("input_ids", [])),
        token_type_ids=list(enc["token_type_ids"]) if "token_type_ids" in enc else None,
        labels=torch.tensor([e.label for e in examples], dtype=dtype),
        pad_id=tokenizer.pad_token_id or 0,
        has_pairs=has_pairs,
    )


def collate(data: EncodedSet, index: list[int]) -> Batch:
    """Pad the chosen examples to the longest among them."""
    width = max(len(data.input_ids[i]) for i in index)
    ids = torch.full((len(index), width), data.pad_id, dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    types = torch.zeros((len(index), width), dtype=torch.long) if data.token_type_ids else None
    for row, i in enumerate(index):
        n = len(data.input_ids[i])
        ids[row, :n] = torch.tensor(data.input_ids[i])
        mask[row, :n] = 1
        if types is not None and data.token_type_ids is not None:
            types[row, :n] = torch.tensor(data.token_type_ids[i])
    pos = torch.tensor(index, dtype=torch.long)
    return Batch(ids, mask, types, data.labels[pos], pos)


def train_order(
    data: EncodedSet, batch_size: int, generator: torch.Generator, group_by_length: bool
) -> list[list[int]]:
    """One epoch of batches in a seeded random order."""
    perm = torch.randperm(len(data), generator=generator).tolist()
    window = batch_size * GROUP_WINDOW
    if not group_by_length or len(perm) <= window:
        # A set within one window would be cut into the same length-sorted batches every
        # epoch: only their order would change. Small sets keep random batches.
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    lengths = data.lengths()
    batches = []
    for start in range(0, len(perm), window):
        chunk = sorted(perm[start : start + window], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def eval_order(data: EncodedSet, batch_size: int) -> list[list[int]]:
    """Batches of similar length, longest first."""
    lengths = data.lengths()
    ranked = sorted(range(len(data)), key=lambda i: -lengths[i])
    return [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
