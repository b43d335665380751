"""Token packing: the token-wise work of a forward runs on real tokens only.

A padded batch (B, T) of mixed-length inputs is mostly padding (about 60% on GLUE sentences at
batch 32). Every token-wise op (the frozen GEMMs, layer norms, the feed-forward block) gives a
real token the same result whether its padding neighbours are computed or not, so the forward
packs the real tokens into one (n, w) matrix for those ops and unpacks to (B, T, w) only where
rows meet: attention, and the per-row bmm of LoRA, adapter and gates. Padding positions of an
unpacked tensor hold zeros or finite leftovers; attention masks them and gate means weigh them
by zero, so they never reach a real token.

The packing index comes from the host-side lengths in the plan (rows are right-padded), so it
never reads a device tensor. `Unpacked` is the identity, for training and for captured graphs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from adapters.methods.gates import mean_weights
from adapters.plan import BatchPlan


class Unpacked:
    """Every token computed, padding included: pack and unpack are the identity."""

    packed = False

    def pack(self, t: Tensor) -> Tensor:
        return t

    def unpack(self, t: Tensor) -> Tensor:
        return t

    def per_token(self, row_values: Tensor) -> Tensor:
        """(B, 1, w) per-row values, broadcast over a (B, T, w) tensor."""
        return row_values

    def to(self, device: torch.device) -> Unpacked:
        return self


class Packed(Unpacked):
    """Real tokens of a right-padded (B, T) batch, packed row after row into (n, w).

    Built on the host from Python ints (servers build it ahead of the forward, off the
    forward thread); its index tensors move to the device with the batch."""

    packed = True

    def __init__(
        self, lengths: Sequence[int], tokens: int, dtype: torch.dtype, pin: bool = False
    ) -> None:
        """Host tensors (pinned with `pin`); `to` moves them to the forward's device."""
        self.rows, self.tokens, self.lengths = len(lengths), tokens, tuple(lengths)
        owner = [r for r, n in enumerate(lengths) for _ in range(n)]
        position = [t for n in lengths for t in range(n)]
        flat = [r * tokens + t for r, t in zip(owner, position)]
        weights = mean_weights((torch.arange(tokens) < torch.tensor(lengths)[:, None]).to(dtype))
        self.owner, self.position, self.flat = (
            torch.tensor(v, dtype=torch.long, pin_memory=pin) for v in (owner, position, flat)
        )
        self.gate_weights = weights.pin_memory() if pin else weights  # (B, 1, T) 1/count
        self._buffers: dict[tuple[int, torch.dtype], Tensor] = {}

    def to(self, device: torch.device) -> Packed:
        """The same packing with its tensors on `device` (itself when they are there)."""
        if self.flat.device == device:
            return self
        moved = copy.copy(self)
        for name in ("owner", "position", "flat", "gate_weights"):
            setattr(moved, name, getattr(self, name).to(device, non_blocking=True))
        moved._buffers = {}
        return moved

    def pack(self, t: Tensor) -> Tensor:
        """(B, T, w) -> (n, w), or (B * T, w) -> (n, w): the real tokens."""
        if t.dim() == 2:
            return t.index_select(0, self.flat)
        return t[self.owner, self.position]

    def unpack(self, t: Tensor) -> Tensor:
        """(n, w) -> (B, T, w), written into a buffer of this width that lives for the forward
        (its padding rows are zero at first, then finite leftovers). The result is valid until
        the next unpack of the same width."""
        key = (t.shape[-1], t.dtype)
        rows = self._buffers.get(key)
        if rows is None:
            rows = self._buffers[key] = t.new_zeros(self.rows, self.tokens, t.shape[-1])
        return rows.index_put_((self.owner, self.position), t)

    def per_token(self, row_values: Tensor) -> Tensor:
        """(B, ..., w) per-row values -> (n, ..., w), each token taking its row's."""
        return row_values.index_select(0, self.owner)


Packing = Unpacked | Packed


def packing_for(plan: BatchPlan, tokens: int, dtype: torch.dtype, pin: bool = False) -> Packing:
    """Packed (host tensors, pinned with `pin`) when the plan has the rows' lengths (`tokens`:
    the padded length; `dtype`: the bank's), else not."""
    if plan.lengths is None:
        return Unpacked()
    return Packed(plan.lengths, tokens, dtype, pin)
