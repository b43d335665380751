"""(IA)^3 (Liu et al. 2022): learned vectors rescale keys, values and inner activations.

Per layer: k <- l_k * k and v <- l_v * v (the projections' outputs, before a prefix is put
in front), and the inputs of both output projections: the attention context by l_o and the
feed-forward block's intermediate activations by l_ff. PEFT's default for BERT does the same
(its feed-forward module name `output.dense` matches both output projections), so the two
are one method. Every vector starts at one: a fresh task equals the backbone.

The bank holds l - 1, zero for a slot without (IA)^3 as for every unused part of a slot, and
the forward adds x (l - 1) to x (one addcmul): rows of other tasks in the batch are unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from adapters import peft_layout as P
from adapters.dims import BackboneDims, BankSizes
from adapters.methods.base import (
    CONTEXT,
    FFN_ACT,
    KEYS_VALUES,
    BankTensor,
    Method,
    Term,
    TermFn,
)
from adapters.methods.fields import flag

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig


def widths(dims: BackboneDims) -> dict[str, int]:
    """Each vector's width: keys, values, the attention context, the intermediate activations."""
    d = dims.hidden
    return {"ia3_k": d, "ia3_v": d, "ia3_attn_out": d, "ia3_ff": dims.intermediate}


class IA3(Method):
    name = "ia3"
    switch = "ia3"
    fields = (flag("ia3", False),)
    label = "IA3"
    paper_name = "(IA)^3"
    # won the SST-2 K=100 sweep on dev over 3 seeds against 3e-2 (and 1e-3, 3e-3 on seed 0;
    # docs/results.md)
    learning_rate = 1e-2
    presets: ClassVar[dict[str, tuple[str, ...]]] = {"ia3": ("ia3",)}

    def artifact_shapes(self, cfg, dims: BackboneDims, num_labels: int):
        return {name: (dims.layers, w) for name, w in widths(dims).items()}

    def init(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> dict[str, Tensor]:
        """Ones: every vector starts as the identity."""
        L = backbone.dims.layers
        return {name: torch.ones(L, w) for name, w in widths(backbone.dims).items()}

    def bank_tensors(self) -> dict[str, BankTensor]:
        return {
            "ia3_vk": BankTensor(lambda d, s: (d.layers, 1, 2 * d.hidden)),  # [l_v | l_k] - 1
            "ia3_attn_out": BankTensor(lambda d, s: (d.layers, 1, d.hidden), per_token=True),
            "ia3_ff": BankTensor(lambda d, s: (d.layers, 1, d.intermediate), per_token=True),
        }

    def fuse(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        def minus_one(name: str) -> Tensor:  # (L, 1, w); zero when the task lacks (IA)^3
            t = tensors.get(name)
            if t is None:
                return like.new_zeros(dims.layers, 1, widths(dims)[name])
            return (t - 1.0).unsqueeze(1)

        return {
            "ia3_vk": torch.cat([minus_one("ia3_v"), minus_one("ia3_k")], -1),
            "ia3_attn_out": minus_one("ia3_attn_out"),
            "ia3_ff": minus_one("ia3_ff"),
        }

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        if name in ("ia3_k", "ia3_v"):
            vk = fused["ia3_vk"][:, 0]
            d = vk.shape[-1] // 2
            return (vk[:, d:] if name == "ia3_k" else vk[:, :d]) + 1.0
        return fused[name][:, 0] + 1.0

    def terms(self) -> dict[str, TermFn]:
        return {
            KEYS_VALUES: _scales("ia3_vk"),
            CONTEXT: _scales("ia3_attn_out"),
            FFN_ACT: _scales("ia3_ff"),
        }

    @property
    def peft(self) -> P.PeftFormat:
        return PEFT


def _scales(name: str) -> TermFn:
    """The term x * l = x + x (l - 1), with the rows' l - 1 (B, 1, w), or per token (n, w)."""

    def scale(x: Tensor, t: Term) -> Tensor:
        return torch.addcmul(x, x, t.w[name])

    return scale


# (module inside a layer, our vector, whether PEFT treats it as a feed-forward module: its
# input rescaled, `ia3_l` (1, d_in); else its output, `ia3_l` (d_out, 1))
MODULES = (
    ("attention.self.key", "ia3_k", False),
    ("attention.self.value", "ia3_v", False),
    ("attention.output.dense", "ia3_attn_out", True),
    ("output.dense", "ia3_ff", True),
)


class IA3Peft(P.PeftFormat):
    """PEFT's (IA)^3 (`IA3Config`): one `ia3_l` per targeted module and layer, our vector
    reshaped. PEFT's default for BERT is ours (targets key, value and `output.dense`, the
    last as a feed-forward module); a module or layer it leaves out gets ones (the identity).
    A module PEFT would scale on the other side than ours is refused."""

    peft_type, method, preset = "IA3", "ia3", "ia3"
    holds = "(IA)^3 on key/value/output.dense"
    targets = ("key", "value", "output.dense", "attention.output.dense")
    informational = frozenset({"init_ia3_weights"})  # initial values only
    checked = frozenset({"feedforward_modules"})
    fill = 1.0

    def tensors(self) -> tuple[P.LayerTensor, ...]:
        def shape(name: str, ff: bool):
            return lambda s, d: (1, widths(d)[name]) if ff else (widths(d)[name], 1)

        def to_peft(ff: bool):
            return lambda t: t.reshape(1, -1) if ff else t.reshape(-1, 1)

        return tuple(
            P.LayerTensor(module, "ia3_l", ours, shape(ours, ff), _flat, to_peft(ff))
            for module, ours, ff in MODULES
        )

    def values(self, config: dict, placement: P.Placement) -> dict[str, Any]:
        if isinstance(config.get("feedforward_modules"), str):
            raise P.refuse("feedforward_modules as a regular expression is not supported")
        ff = P.strings(config, "feedforward_modules")
        other = sorted(set(ff) - set(self.targets))  # so each names a module of every layer
        if other:
            raise P.refuse(f"feedforward_modules {P.short(other)} are not modules it holds")
        for module, _, feedforward in MODULES:
            name = f"layer.0.{module}"  # PEFT matches feed-forward names as plain suffixes
            if placement.targets_module(name) and any(name.endswith(f) for f in ff) != feedforward:
                side, ours = ("input", "output") if not feedforward else ("output", "input")
                raise P.refuse(
                    f"feedforward_modules={list(ff)} makes PEFT scale the {side} of {module}; "
                    f"(IA)^3 here scales its {ours}"
                )
        return {}

    def describe(self, settings: P.Settings, dims: BackboneDims) -> str:
        return f"hidden={dims.hidden}, intermediate={dims.intermediate}"

    def config(self, cfg: MethodConfig, base_model: str, layout: P.HeadLayout) -> dict:
        return {
            "peft_type": self.peft_type,
            "task_type": "SEQ_CLS",
            "base_model_name_or_path": base_model,
            "target_modules": ["key", "value", "output.dense"],
            "feedforward_modules": ["output.dense"],
            "modules_to_save": list(layout.modules_to_save),
            "fan_in_fan_out": False,
            "init_ia3_weights": True,
            "inference_mode": True,
        }


def _flat(t: Tensor) -> Tensor:
    return t.flatten()


PEFT = IA3Peft()
