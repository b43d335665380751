"""Prefix-tuning: gated per-layer vectors prepended to the attention keys and values.

The gate reads the layer input (its logit rides in the layer-input site) and scales both
`P_K` and `P_V`. In the bank they are one (P, 2d) block `[P_V | P_K]`, prepended to the
`[v | k]` columns of the QKV output in one cat; positions past a task's own length are masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn

from adapters.constants import MAX_PREFIX_LENGTH
from adapters.dims import BackboneDims, BankSizes
from adapters.methods.base import (
    ATTENTION_KV,
    LAYER_INPUT,
    BankTensor,
    Gate,
    Method,
    Term,
    TermFn,
    pad_to,
    stored,
)
from adapters.methods.fields import flag, positive_int

if TYPE_CHECKING:
    from adapters.config import MethodConfig


class PrefixEncoder(nn.Module):
    """Training-time reparameterisation shared by all layers.

    Embedding(P, d) -> Linear(d, hidden) -> tanh -> Linear(hidden, layers * 2 * d). After
    training only its output (`P_K`, `P_V` per layer) is kept in the artifact.
    """

    def __init__(self, layers: int, hidden: int, length: int, mlp_hidden: int) -> None:
        super().__init__()
        self.layers, self.hidden, self.length = layers, hidden, length
        self.embedding = nn.Embedding(length, hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_hidden), nn.Tanh(), nn.Linear(mlp_hidden, layers * 2 * hidden)
        )

    def forward(self) -> dict[str, Tensor]:
        """P_K and P_V, each (layers, length, hidden)."""
        idx = torch.arange(self.length, device=self.embedding.weight.device)
        out = self.mlp(self.embedding(idx))  # (P, L * 2 * d)
        out = out.view(self.length, self.layers, 2, self.hidden).permute(2, 1, 0, 3)
        return {"prefix_k": out[0], "prefix_v": out[1]}


def prefix_mlp_parameter_count(cfg: MethodConfig, dims: BackboneDims) -> int:
    """Parameters of the training-time prefix reparameterisation MLP."""
    if not cfg.prefix:
        return 0
    d, h, out = dims.hidden, cfg.prefix_hidden, dims.layers * 2 * dims.hidden
    return cfg.prefix_length * d + d * h + h + h * out + out


class Prefix(Method):
    name = "prefix"
    switch = "prefix"
    fields = (
        flag("prefix", True),
        positive_int("prefix_length", 10, most=MAX_PREFIX_LENGTH),
        positive_int("prefix_hidden", 512, most=1 << 16),
    )
    letter = "P"
    paper_name = "Prefix"
    size = size_field = "prefix_length"
    gates = (Gate("prefix", 0, LAYER_INPUT, lambda cfg: 1.0),)
    prepends_keys = True  # the bank keeps which of its key positions are real (`key_tables`)
    learning_rate = 2e-4
    presets: ClassVar[dict[str, tuple[str, ...]]] = {"p": ("prefix",)}

    def artifact_shapes(self, cfg, dims: BackboneDims, num_labels: int):
        shape = (dims.layers, cfg.prefix_length, dims.hidden)
        return {"prefix_k": shape, "prefix_v": shape}

    def encoder(self, cfg: MethodConfig, dims: BackboneDims) -> nn.Module:
        return PrefixEncoder(dims.layers, dims.hidden, cfg.prefix_length, cfg.prefix_hidden)

    def bank_tensors(self) -> dict[str, BankTensor]:
        def shape(d: BackboneDims, s: BankSizes) -> tuple[int, ...]:
            return (d.layers, s.prefix_length, 2 * d.hidden)

        return {"prefix": BankTensor(shape, self.size, (-2,))}

    def fuse(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        empty = (dims.layers, 0, dims.hidden)
        pv, pk = (
            pad_to(stored(tensors, n, empty, like), -2, sizes.prefix_length)
            for n in ("prefix_v", "prefix_k")
        )
        return {"prefix": torch.cat([pv, pk], -1)}

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        prefix = fused["prefix"]
        d = prefix.shape[-1] // 2
        return {"prefix_k": prefix[..., d:], "prefix_v": prefix[..., :d]}[name]

    def masks_keys(self, sizes: list[int], planned: BankSizes) -> bool:
        """A task's prefix shorter than the batch's leaves masked key positions."""
        return any(n != planned.prefix_length for n in sizes)

    def terms(self) -> dict[str, TermFn]:
        return {ATTENTION_KV: prepend}


def prepend(values_keys: Tensor, t: Term) -> Tensor:
    """Prepend each row's gated prefix to its values and keys, in one cat.

    values_keys: (B, T, 2d) the [v | k] columns of the fused QKV output; the rows' prefix:
    (B, P, 2d) [P_V | P_K] zero-padded to the batch's longest prefix (padding positions are
    masked in attention), scaled by the prefix gate (B, 1, 1). Returns (B, P + T, 2d).
    """
    scale = t.sites[LAYER_INPUT.name].scale_of("prefix")
    return torch.cat([t.w["prefix"] * scale, values_keys], dim=1)
