"""Backbone dimensions and the exact tensor schema of one task's weights."""

from __future__ import annotations

from dataclasses import dataclass

from adapters import constants as C
from adapters.config import MethodConfig


@dataclass(frozen=True)
class BackboneDims:
    """The sizes of a BERT-layout encoder that adapter shapes depend on."""

    hidden: int
    layers: int
    heads: int
    intermediate: int


def bitfit_sizes(dims: BackboneDims) -> dict[str, int]:
    """Width of each bias that BitFit tunes."""
    d = dims.hidden
    widths = {"q": d, "k": d, "v": d, "attn_out": d, "ln_attn": d}
    widths.update({"ffn_in": dims.intermediate, "ffn_out": d, "ln_ffn": d})
    return widths


def expected_shapes(
    cfg: MethodConfig, dims: BackboneDims, num_labels: int
) -> dict[str, tuple[int, ...]]:
    """Every tensor a task with this config must carry, with its shape."""
    L, d = dims.layers, dims.hidden
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg.lora:
        r = cfg.lora_r
        for proj in ("q", "v"):
            shapes[f"lora_{proj}_A"] = (L, d, r)
            shapes[f"lora_{proj}_B"] = (L, r, d)
    if cfg.prefix:
        shapes["prefix_k"] = (L, cfg.prefix_length, d)
        shapes["prefix_v"] = (L, cfg.prefix_length, d)
    if cfg.adapter:
        m = cfg.bottleneck
        shapes.update(
            adapter_down_w=(L, d, m),
            adapter_down_b=(L, m),
            adapter_up_w=(L, m, d),
            adapter_up_b=(L, d),
        )
    if cfg.uses_gates:
        shapes["gate_w"] = (L, d, len(C.GATE_NAMES))
        shapes["gate_b"] = (L, len(C.GATE_NAMES))
    if cfg.bitfit:
        for target, width in bitfit_sizes(dims).items():
            shapes[f"bitfit_{target}"] = (L, width)
    shapes.update(
        head_dense_w=(d, d),
        head_dense_b=(d,),
        head_out_w=(d, num_labels),
        head_out_b=(num_labels,),
    )
    return shapes


def kept_parameter_count(cfg: MethodConfig, dims: BackboneDims, num_labels: int) -> int:
    """Parameters stored in the artifact (the prefix MLP is folded away after training)."""
    total = 0
    for shape in expected_shapes(cfg, dims, num_labels).values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


def prefix_mlp_parameter_count(cfg: MethodConfig, dims: BackboneDims) -> int:
    """Parameters of the training-time prefix reparameterisation MLP."""
    if not cfg.prefix:
        return 0
    d, h, out = dims.hidden, cfg.prefix_hidden, dims.layers * 2 * dims.hidden
    return cfg.prefix_length * d + d * h + h + h * out + out
