"""The trainable unit of one run: a task's weights on the frozen backbone, or a full copy.

Full fine-tuning trains a private copy of the backbone together with a head; its result is a
whole model, not an adapter artifact.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from adapters.backbone import Backbone, backbone_from_model
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from adapters.schema import kept_parameter_count
from adapters.task_module import TaskAdapter
from adapters.training.batching import Batch


def backbone_device(backbone: Backbone) -> torch.device:
    return next(backbone.model.parameters()).device


def trainable_copy(backbone: Backbone) -> Backbone:
    """A deep copy of the backbone whose weights train (for full fine-tuning), on its device."""
    wrapped = backbone_from_model(
        copy.deepcopy(backbone.model),
        name=f"{backbone.name}-finetuned",
        path=backbone.path,
        device=backbone_device(backbone),
    )
    for p in wrapped.model.parameters():
        p.requires_grad_(True)
    pooler = getattr(wrapped.model, "pooler", None)
    if pooler is not None:  # the task head replaces the pooler; it gets no gradient
        pooler.requires_grad_(False)
    return wrapped


class Learner(nn.Module):
    """UniPELTModel + one TaskAdapter on the backbone's device; `forward` gives each row's
    task logits (B, n) for a batch on any device."""

    def __init__(self, cfg: MethodConfig, backbone: Backbone, num_labels: int) -> None:
        super().__init__()
        self.cfg, self.num_labels = cfg, num_labels
        if cfg.full_finetune:
            backbone = trainable_copy(backbone)
            cfg = MethodConfig.preset("head")
        self.backbone = backbone
        self.device = backbone_device(backbone)
        self.task = TaskAdapter(cfg, backbone, num_labels).to(self.device)
        self.model = UniPELTModel(backbone)

    def forward(self, batch: Batch, bank: TaskBank | None = None) -> Tensor:
        batch = batch.to(self.device)
        slots = torch.zeros(batch.input_ids.shape[0], dtype=torch.long, device=self.device)
        out = self.model(
            batch.input_ids,
            batch.attention_mask,
            bank if bank is not None else self.task.bank(),
            slots,
            batch.token_type_ids,
        )
        return out.logits[:, : self.num_labels]

    @torch.no_grad()
    def centre_regression_head(self, labels: Tensor) -> None:
        """Start a regression head's output bias at the mean training label, not at 0."""
        if self.num_labels == 1 and len(labels):
            self.task.weights["head_out_b"].fill_(float(labels.float().mean()))

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, Tensor]:
        """A detached copy of every trainable tensor (to keep the best checkpoint)."""
        return {k: v.detach().clone() for k, v in self.named_parameters() if v.requires_grad}

    @torch.no_grad()
    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        params = dict(self.named_parameters())
        for name, value in state.items():
            params[name].copy_(value)

    def training_parameter_count(self) -> int:
        """Parameters updated during training (the prefix MLP included)."""
        return sum(p.numel() for p in self.trainable())

    def kept_parameter_count(self) -> int:
        """Parameters a finished run keeps: the artifact's, or the whole model for FT."""
        if self.cfg.full_finetune:
            return self.training_parameter_count()
        return kept_parameter_count(self.cfg, self.backbone.dims, self.num_labels)
