"""TaskAdapter: the trainable weights of one task, and its single-slot view for the forward."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adapters import constants as C
from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.bitfit import init_bitfit_weights
from adapters.bottleneck import init_adapter_weights
from adapters.config import MethodConfig
from adapters.gate import init_gate_weights
from adapters.heads import init_head_weights
from adapters.lora import init_lora_weights
from adapters.prefix import PrefixEncoder
from adapters.schema import expected_shapes


class TaskAdapter(nn.Module):
    """One task's LoRA, prefix (as its training MLP), adapter, gates, BitFit deltas and head."""

    def __init__(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> None:
        super().__init__()
        if not 1 <= num_labels <= C.MAX_LABELS:
            raise ValueError(f"num_labels must be in [1, {C.MAX_LABELS}], got {num_labels}")
        self.cfg, self.num_labels, self.dims = cfg, num_labels, backbone.dims
        L, d = backbone.dims.layers, backbone.dims.hidden
        init: dict[str, Tensor] = {}
        if cfg.lora:
            for proj in ("q", "v"):
                a, b = init_lora_weights(L, d, cfg.lora_r)
                init[f"lora_{proj}_A"], init[f"lora_{proj}_B"] = a, b
        if cfg.adapter:
            init.update(init_adapter_weights(L, d, cfg.bottleneck))
        if cfg.uses_gates:
            init["gate_w"], init["gate_b"] = init_gate_weights(L, d, len(C.GATE_NAMES))
        if cfg.bitfit:
            init.update(init_bitfit_weights(backbone.dims))
        pooler = getattr(backbone.model, "pooler", None)
        pooled = (pooler.dense.weight, pooler.dense.bias) if pooler is not None else None
        init.update(init_head_weights(d, num_labels, pooled))
        self.weights = nn.ParameterDict({k: nn.Parameter(v) for k, v in init.items()})
        self.prefix = (
            PrefixEncoder(L, d, cfg.prefix_length, cfg.prefix_hidden) if cfg.prefix else None
        )

    def tensors(self) -> dict[str, Tensor]:
        """Current per-task tensors in artifact layout (prefix from its MLP, graph-connected)."""
        out = dict(self.weights.items())
        if self.prefix is not None:
            out["prefix_k"], out["prefix_v"] = self.prefix()
        return out

    def bank(self) -> TaskBank:
        """A one-slot bank over this task's live parameters; gradients flow through it."""
        return TaskBank.of_task(self.cfg, self.tensors(), self.dims)

    @torch.no_grad()
    def export(self) -> dict[str, Tensor]:
        """Detached float32 tensors exactly matching `expected_shapes` (prefix MLP folded)."""
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.tensors().items()}
        wanted = expected_shapes(self.cfg, self.dims, self.num_labels)
        return {name: tensors[name] for name in wanted}
