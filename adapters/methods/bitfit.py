"""BitFit as per-task bias deltas, so the shared backbone itself is never modified.

A task trains a delta for every bias of the encoder layers (q, k, v, attention output, both
LayerNorms, both feed-forward layers); the forward adds each where the backbone adds that
bias. q, k and v are one (1, 3d) delta in the fused QKV order [q | v | k].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from adapters.dims import BackboneDims, BankSizes
from adapters.methods.base import (
    ATTN_OUT,
    FFN_IN,
    FFN_OUT,
    LN_ATTN,
    LN_FFN,
    QKV,
    BankTensor,
    Method,
    Term,
    TermFn,
    stored,
)
from adapters.methods.fields import flag

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig

# The biases it tunes, and the attach point where each one's delta adds (q, k, v: at QKV).
SINGLE = {"attn_out": ATTN_OUT, "ln_attn": LN_ATTN, "ffn_in": FFN_IN, "ffn_out": FFN_OUT}
SINGLE["ln_ffn"] = LN_FFN
QKV_ORDER = ("q", "v", "k")


def widths(dims: BackboneDims) -> dict[str, int]:
    """Width of each bias that BitFit tunes."""
    d = dims.hidden
    out = {"q": d, "k": d, "v": d, "attn_out": d, "ln_attn": d}
    out.update({"ffn_in": dims.intermediate, "ffn_out": d, "ln_ffn": d})
    return out


class BitFit(Method):
    name = "bitfit"
    switch = "bitfit"
    fields = (flag("bitfit", False),)
    label = paper_name = "BitFit"
    # 1e-4 (a replication's) predicted the majority class at K=100; 5e-3 won the SST-2 K=100
    # sweep on dev over 3 seeds (docs/results.md)
    learning_rate = 5e-3
    presets: ClassVar[dict[str, tuple[str, ...]]] = {"bitfit": ("bitfit",)}

    def artifact_shapes(self, cfg, dims: BackboneDims, num_labels: int):
        return {f"bitfit_{t}": (dims.layers, w) for t, w in widths(dims).items()}

    def init(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> dict[str, Tensor]:
        """Zero deltas: a fresh BitFit task equals the backbone."""
        dims = backbone.dims
        return {f"bitfit_{t}": torch.zeros(dims.layers, w) for t, w in widths(dims).items()}

    def bank_tensors(self) -> dict[str, BankTensor]:
        def width(target: str):
            def shape(d: BackboneDims, s: BankSizes) -> tuple[int, ...]:
                return (d.layers, 1, widths(d)[target])

            return shape

        out = {"bitfit_qkv": BankTensor(lambda d, s: (d.layers, 1, 3 * d.hidden), per_token=True)}
        out.update({f"bitfit_{t}": BankTensor(width(t), per_token=True) for t in SINGLE})
        return out

    def fuse(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        L = dims.layers
        delta = {
            t: stored(tensors, f"bitfit_{t}", (L, w), like).unsqueeze(1)
            for t, w in widths(dims).items()
        }
        out = {"bitfit_qkv": torch.cat([delta[t] for t in QKV_ORDER], -1)}
        out.update({f"bitfit_{t}": delta[t] for t in SINGLE})
        return out

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        target = name.removeprefix("bitfit_")
        if target in SINGLE:
            return fused[name][:, 0]
        d = fused["bitfit_qkv"].shape[-1] // 3
        i = QKV_ORDER.index(target)
        return fused["bitfit_qkv"][:, 0, i * d : (i + 1) * d]

    def terms(self) -> dict[str, TermFn]:
        out = {QKV: _adds("bitfit_qkv")}
        out.update({point: _adds(f"bitfit_{t}") for t, point in SINGLE.items()})
        return out


def _adds(name: str) -> TermFn:
    """The term adding the delta `name`: (B, 1, w) per row, or (n, w) per token when packed."""

    def add(x: Tensor, t: Term) -> Tensor:
        return x + t.w[name]

    return add
