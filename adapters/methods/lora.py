"""LoRA on the query and value projections: W x + s * (x A) B, s = its gate or alpha / r.

Its down-projections are the part of the layer-input site that follows the gate rows
(`methods.gates`): A_q and A_v interleaved by rank (`[a_q0, a_v0, a_q1, a_v1, ...]`), each
row scaled by its own gate (q or v). Its up-projection `lora_up` has zero rows for the gate
columns, then B_q and B_v block-diagonal into [q | v], so one baddbmm adds both deltas to the
fused QKV output (columns [q | v | k]). Ranks are zero-padded to the batch's (exact zeros).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from adapters import peft_layout as P
from adapters.constants import MAX_LORA_RANK, MAX_LORA_SCALING
from adapters.dims import BackboneDims, BankSizes
from adapters.errors import ArtifactError
from adapters.methods.base import (
    LAYER_INPUT,
    QKV_ROWS,
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
from adapters.methods.fields import flag, positive_int, positive_number

if TYPE_CHECKING:
    from adapters.backbone import Backbone
    from adapters.config import MethodConfig

PROJECTIONS = ("q", "v")


def scaling(cfg: MethodConfig) -> float:
    """LoRA's constant scale, used when gates are off (gates replace it)."""
    return cfg.lora_alpha / cfg.lora_r


class LoRA(Method):
    name = "lora"
    switch = "lora"
    fields = (
        flag("lora", True),
        positive_int("lora_r", 8, most=MAX_LORA_RANK),
        positive_number("lora_alpha", 16.0),
    )
    letter = "L"
    paper_name = "LoRA"
    size, size_field = "lora_rank", "lora_r"
    gates = (
        Gate("lora_q", 1, LAYER_INPUT, scaling),
        Gate("lora_v", 2, LAYER_INPUT, scaling),
    )
    parts = (SitePart(LAYER_INPUT, per_unit=2, gates=("lora_q", "lora_v")),)
    learning_rate = 5e-4
    presets: ClassVar[dict[str, tuple[str, ...]]] = {"l": ("lora",)}

    def check(self, cfg: MethodConfig) -> str | None:
        if not scaling(cfg) <= MAX_LORA_SCALING:  # also refuses inf and NaN
            return (
                f"lora_alpha / lora_r = {scaling(cfg):g} exceeds the limit of "
                f"{MAX_LORA_SCALING:g} (a scale that large overflows the forward)"
            )
        return None

    def artifact_shapes(self, cfg, dims: BackboneDims, num_labels: int):
        L, d, r = dims.layers, dims.hidden, cfg.lora_r
        shapes = {}
        for p in PROJECTIONS:
            shapes[f"lora_{p}_A"], shapes[f"lora_{p}_B"] = (L, d, r), (L, r, d)
        return shapes

    def init(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> dict[str, Tensor]:
        """A from a Kaiming-uniform range, B zero, so a fresh LoRA changes nothing."""
        L, d, r = backbone.dims.layers, backbone.dims.hidden, cfg.lora_r
        bound = 1.0 / math.sqrt(d)
        out = {}
        for p in PROJECTIONS:
            out[f"lora_{p}_A"] = torch.empty(L, d, r).uniform_(-bound, bound)
            out[f"lora_{p}_B"] = torch.zeros(L, r, d)
        return out

    def bank_tensors(self) -> dict[str, BankTensor]:
        g = gates_at(LAYER_INPUT)

        def shape(d: BackboneDims, s: BankSizes) -> tuple[int, ...]:
            return (d.layers, g + 2 * s.lora_rank, 2 * d.hidden)

        return {"lora_up": BankTensor(shape, self.size, (-2,))}

    def site_rows(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        L, d, R = dims.layers, dims.hidden, sizes.lora_rank
        a_q, a_v = (
            pad_to(stored(tensors, f"lora_{p}_A", (L, d, 0), like), -1, R) for p in PROJECTIONS
        )
        inter = torch.stack([a_q, a_v], dim=-1).reshape(L, d, 2 * R)
        return inter, like.new_zeros(L, 2 * R)

    def fuse(self, tensors, dims: BackboneDims, sizes: BankSizes, like: Tensor):
        L, d, R = dims.layers, dims.hidden, sizes.lora_rank
        b_q, b_v = (
            pad_to(stored(tensors, f"lora_{p}_B", (L, 0, d), like), -2, R) for p in PROJECTIONS
        )
        zeros = like.new_zeros(L, R, d)
        up = torch.stack([torch.cat([b_q, zeros], -1), torch.cat([zeros, b_v], -1)], dim=2)
        gate_rows = (0, 0, gates_at(LAYER_INPUT), 0)
        return {"lora_up": F.pad(up.reshape(L, 2 * R, 2 * d), gate_rows)}

    def unfuse(self, fused: dict[str, Tensor], name: str) -> Tensor:
        g, proj, part = gates_at(LAYER_INPUT), name[5], name[-1]
        first = g + PROJECTIONS.index(proj)
        if part == "A":
            return fused[LAYER_INPUT.weight][:, first::2].transpose(1, 2)
        d = fused["lora_up"].shape[-1] // 2
        cols = slice(0, d) if proj == "q" else slice(d, 2 * d)
        return fused["lora_up"][:, first::2, cols]

    def terms(self) -> dict[str, TermFn]:
        return {QKV_ROWS: add}

    @property
    def peft(self) -> P.PeftFormat:
        return PEFT


def add(qkv: Tensor, t: Term) -> Tensor:
    """Add both LoRA deltas to the fused QKV output (B, T, 3d) [q | v | k] in place, in one
    baddbmm: the site's columns (B, T, c) times their scales (B, 1, c) (the gate or
    alpha / r) times `lora_up` (B, c, 2d)."""
    site, up = t.sites[LAYER_INPUT.name], t.w["lora_up"]
    assert site.columns is not None  # projected whenever a row has LoRA
    qkv[..., : up.shape[-1]].baddbmm_(site.columns * site.scale, up)
    return qkv


class LoraPeft(P.PeftFormat):
    """PEFT's LoRA on query and value: `lora_A.weight` (r, d) and `lora_B.weight` (d, r) per
    layer are our A (d, r) and B (r, d) transposed; a module or layer PEFT left out gets
    zeros. Scale alpha / r (gates off); DoRA, rsLoRA, trained biases, per-module patterns and
    initialisations that rewrite base weights are refused."""

    peft_type, method, preset = "LORA", "lora", "l"
    holds = "LoRA on query/value"
    targets = ("query", "value")
    informational = frozenset(
        {"lora_dropout", "megatron_core", "qalora_group_size", "eva_config"}
        | {"loftq_config"}  # used only with init_lora_weights="loftq", refused below
    )
    checked = frozenset({"r", "lora_alpha", "init_lora_weights", "bias"})
    plain_inits = (True, False, "gaussian", "eva")  # these only initialise A and B

    def tensors(self) -> tuple[P.LayerTensor, ...]:
        def shape(part: str):
            return lambda s, d: (
                (s.values["r"], d.hidden) if part == "A" else (d.hidden, s.values["r"])
            )

        return tuple(
            P.LayerTensor(
                f"attention.self.{module}", f"lora_{part}.weight", f"lora_{proj}_{part}",
                shape(part), lambda t: t.t(), lambda t: t.t(),
            )
            for module, proj in zip(self.targets, PROJECTIONS)
            for part in "AB"
        )  # fmt: skip

    def values(self, config: dict, placement: P.Placement) -> dict[str, Any]:
        if config.get("bias", "none") != "none":
            raise P.refuse(f"bias={P.short(config['bias'])}: trained biases are not supported")
        init = config.get("init_lora_weights", True)
        if not any(init is x or (isinstance(init, str) and init == x) for x in self.plain_inits):
            raise P.refuse(f"init_lora_weights={P.short(init)} changes the base model's weights")
        return {"r": _rank(config.get("r")), "alpha": _alpha(config.get("lora_alpha"))}

    def check_limits(self, settings: P.Settings, limits: Any) -> None:
        r = settings.values["r"]
        if r > limits.max_lora_rank:
            raise P.over_limit(f"r={r} exceeds", limits.max_lora_rank, limits.rank_setting)

    def describe(self, settings: P.Settings, dims: BackboneDims) -> str:
        return f"r={settings.values['r']}, hidden={dims.hidden}"

    def check_complete(self, found: set[tuple[int, str, str]]) -> None:
        halves: dict[tuple[int, str], set[str]] = {}
        for layer, module, suffix in found:
            halves.setdefault((layer, module.rsplit(".", 1)[-1]), set()).add(suffix[5])
        for (layer, proj), parts in sorted(halves.items()):
            if parts != {"A", "B"}:
                raise ArtifactError(
                    f"PEFT adapter holds only lora_{''.join(parts)} of layer {layer} {proj}"
                )

    def method_config(self, settings: P.Settings) -> MethodConfig:
        from adapters.config import MethodConfig

        r, alpha = settings.values["r"], settings.values["alpha"]
        return MethodConfig.preset(self.preset, lora_r=r, lora_alpha=alpha)

    def config(self, cfg: MethodConfig, base_model: str, layout: P.HeadLayout) -> dict:
        return {
            "peft_type": self.peft_type,
            "task_type": "SEQ_CLS",
            "base_model_name_or_path": base_model,
            "r": cfg.lora_r,
            "lora_alpha": cfg.lora_alpha,
            "lora_dropout": 0.0,
            "target_modules": list(self.targets),
            "modules_to_save": list(layout.modules_to_save),
            "bias": "none",
            "fan_in_fan_out": False,
            "init_lora_weights": True,
            "use_dora": False,
            "use_rslora": False,
            "inference_mode": True,
        }


def _rank(r: object) -> int:
    if not P.is_int(r) or not 1 <= r <= MAX_LORA_RANK:  # type: ignore[operator]
        raise P.refuse(f"r must be an integer from 1 to {MAX_LORA_RANK}, got {P.short(r)}")
    return int(r)  # type: ignore[call-overload]


def _alpha(alpha: object) -> float:
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        raise P.refuse(f"lora_alpha must be a positive number, got {P.short(alpha)}")
    try:
        value = float(alpha)
    except OverflowError:
        value = math.inf
    if not (math.isfinite(value) and value > 0):
        raise P.refuse(f"lora_alpha must be a positive finite number, got {P.short(alpha)}")
    return value


PEFT = LoraPeft()
