"""Bottleneck adapter after the feed-forward block: h + G_A * (f(h W_down + b) W_up + b).

It sits after the block's residual + LayerNorm and adds its own residual, so a fresh adapter
(up-projection zero) is exactly the identity. Its down-projection is the part of the
adapter-input site that follows its gate's row (`methods.gates`): one baddbmm gives the gate
logit and `h W_down + b`; its up-projection has a zero row for that gate column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters.constants import MAX_BOTTLENECK
from adapters.dims import BackboneDims, BankSizes
from adapters.methods.base import (
    ADAPTER_INPUT,
    FFN_BLOCK,
    BankTensor,
    Gate,
    Method,
    SitePart,
    Term,
    TermFn,
    gates_at,
    pad_to,
    stored,
)
from adapters.methods.fields import choice, flag, positive_int

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "swish": F.silu,
}
ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
_BY_ID = tuple(ACTIVATIONS.values())


class Adapter(Method):
    name = "adapter"
    switch = "adapter"
    fields = (
        flag("adapter", True),
        positive_int("bottleneck", 48, most=MAX_BOTTLENECK),
        choice("adapter_non_linearity", "relu", tuple(ACTIVATIONS)),
    )
    letter = "A"
    paper_name = "Adapter"
    size = size_field = "bottleneck"
    gates = (Gate("adapter", 3, ADAPTER_INPUT, lambda cfg: 1.0),)
    parts = (SitePart(ADAPTER_INPUT, per_unit=1),)
    table_columns = len(ACTIVATIONS)  # the row's activation, one-hot
    # 1e-4 (a replication's) predicted the majority class at K=100 (docs/results.md)
    learning_rate = 1e-3
    presets: ClassVar[dict[str, tuple[str, ...]]] = {"a": ("adapter",)}

    def artifact_shapes(self, cfg, dims: BackboneDims, num_labels: int):
        L, d, m = dims.layers, dims.hidden, cfg.bottleneck
        return {
            "adapter_down_w": (L, d, m),
            "adapter_down_b": (L, m),
            "adapter_up_w": (L, m, d),
            "adapter_up_b": (L, d),
        }

    def init(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> dict[str, Tensor]:
        """Down-projection N(0, 0.02); up-projection zero, so a fresh adapter is the identity."""
        L, d, m = backbone.dims.layers, backbone.dims.hidden, cfg.bottleneck
        return {
            "adapter_down_w": torch.randn(L, d, m) * 0.02,
            "adapter_down_b": torch.zeros(L, m),
            "adapter_up_w": torch.zeros(L, m, d),
            "adapter_up_b": torch.zeros(L, d),
        }

    def bank_tensors(self) -> dict[str, BankTensor]:
        g = gates_at(ADAPTER_INPUT)
        return {
            "ad_up": BankTensor(
                lambda d, s: (d.layers, g + s.bottleneck, d.hidden), self.size, (-2,)
            ),
            "ad_up_b": BankTensor(lambda d, s: (d.layers, 1, d.hidden)),
        }

    def site_rows(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        L, d, M = dims.layers, dims.hidden, sizes.bottleneck
        down = stored(tensors, "adapter_down_w", (L, d, 0), like)
        down_b = stored(tensors, "adapter_down_b", (L, 0), like)
        return pad_to(down, -1, M), pad_to(down_b, -1, M)

    def fuse(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        L, d = dims.layers, dims.hidden
        up_w = pad_to(stored(tensors, "adapter_up_w", (L, 0, d), like), -2, sizes.bottleneck)
        return {
            "ad_up": F.pad(up_w, (0, 0, gates_at(ADAPTER_INPUT), 0)),
            "ad_up_b": stored(tensors, "adapter_up_b", (L, d), like).unsqueeze(1),
        }

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        g = gates_at(ADAPTER_INPUT)
        site = ADAPTER_INPUT
        reads = {
            "adapter_down_w": lambda: fused[site.weight][:, g:].transpose(1, 2),
            "adapter_down_b": lambda: fused[site.bias][:, 0, g:],
            "adapter_up_w": lambda: fused["ad_up"][:, g:],
            "adapter_up_b": lambda: fused["ad_up_b"][:, 0],
        }
        return reads[name]()

    def table_row(self, cfg: MethodConfig) -> list[float]:
        row = [0.0] * len(ACTIVATIONS)
        row[ACTIVATION_IDS[cfg.adapter_non_linearity]] = 1.0
        return row

    def slot_value(self, cfg: MethodConfig) -> int:
        return ACTIVATION_IDS[cfg.adapter_non_linearity] if cfg.adapter else -1

    def plan_value(self, values: list[int]) -> tuple[int, ...]:
        """The adapter activations a batch holds (ids into ACTIVATIONS)."""
        return tuple(sorted({v for v in values if v >= 0})) or (0,)

    def needs_table(self, plan) -> bool:
        return len(plan.switch(self.name)) > 1

    def terms(self) -> dict[str, TermFn]:
        return {FFN_BLOCK: self.add}

    def add(self, h: Tensor, t: Term) -> Tensor:
        """h + scale * (f(h W_down + b_down) W_up + b_up), per row. h: (B, T, d).

        Zero-padded bottleneck units contribute exactly zero (every activation maps 0 to 0).
        When rows use different activations, each row keeps its own (a one-hot mix)."""
        site, w = t.sites[ADAPTER_INPUT.name], t.w
        assert site.columns is not None  # projected whenever a row has an adapter
        activations = t.rows.plan.switch(self.name)
        up_w, up_b = w["ad_up"], w["ad_up_b"]  # (B, g + m, d) zero gate rows, (B, 1, d)
        ys = [torch.baddbmm(up_b, _BY_ID[a](site.columns), up_w) for a in activations]
        out = ys[0]
        if len(activations) > 1:
            onehot = t.rows.table_columns(self.name)  # (B, activations)
            out = out * onehot[:, activations[0], None, None]
            for a, y in zip(activations[1:], ys[1:]):
                out = torch.addcmul(out, y, onehot[:, a, None, None])
        return torch.addcmul(h, out, site.scale_of("adapter"))
