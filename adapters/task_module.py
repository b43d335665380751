"""TaskAdapter: the trainable weights of one task, and its single-slot view for the forward."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adapters import constants as C
from adapters.backbone import Backbone
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import ConfigError
from adapters.methods import METHODS
from adapters.schema import expected_shapes


class TaskAdapter(nn.Module):
    """One task's weights for every method it uses (a training-time encoder, such as the
    prefix MLP, in place of the tensors it produces) and its head."""

    def __init__(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> None:
        super().__init__()
        if not 1 <= num_labels <= C.MAX_LABELS:
            raise ValueError(f"num_labels must be in [1, {C.MAX_LABELS}], got {num_labels}")
        refused = backbone.family.refusal(cfg)
        if refused is not None:
            raise ConfigError(refused)
        self.cfg, self.num_labels, self.dims = cfg, num_labels, backbone.dims
        init: dict[str, Tensor] = {}
        encoders: dict[str, nn.Module] = {}
        for method in METHODS:
            if not method.on(cfg):
                continue
            init.update(method.init(cfg, backbone, num_labels))
            encoder = method.encoder(cfg, backbone.dims)
            if encoder is not None:
                encoders[method.name] = encoder
        self.weights = nn.ParameterDict({k: nn.Parameter(v) for k, v in init.items()})
        self.encoders = nn.ModuleDict(encoders)

    def tensors(self) -> dict[str, Tensor]:
        """Current per-task tensors in artifact layout (encoders' outputs graph-connected)."""
        out = dict(self.weights.items())
        for encoder in self.encoders.values():
            out.update(encoder())
        return out

    def bank(self) -> TaskBank:
        """A one-slot bank over this task's live parameters; gradients flow through it."""
        return TaskBank.of_task(self.cfg, self.tensors(), self.dims)

    @torch.no_grad()
    def export(self) -> dict[str, Tensor]:
        """Detached float32 tensors exactly matching `expected_shapes` (encoders folded)."""
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.tensors().items()}
        wanted = expected_shapes(self.cfg, self.dims, self.num_labels)
        return {name: tensors[name] for name in wanted}
