"""Task factories: tasks with random (non-trivial) weights, artifacts built from them."""

from __future__ import annotations

import torch
from torch import Tensor

from adapters.artifact import backbone_identity, serialize
from adapters.backbone import Backbone
from adapters.config import MethodConfig
from adapters.manifest import Manifest
from adapters.task_module import TaskAdapter


def random_task(
    cfg: MethodConfig, backbone: Backbone, num_labels: int, seed: int = 0, noise: float = 0.1
) -> dict[str, Tensor]:
    """Exported weights of a task whose every tensor is perturbed away from its init."""
    torch.manual_seed(seed)
    task = TaskAdapter(cfg, backbone, num_labels)
    with torch.no_grad():
        for p in task.parameters():
            p.add_(torch.randn_like(p) * noise)
    return task.export()


def make_manifest(
    task: str,
    cfg: MethodConfig,
    backbone: Backbone,
    labels: list[str] | None,
    max_length: int = 128,
    text_pair: bool = False,
) -> Manifest:
    return Manifest(
        task=task,
        method=cfg.to_dict(),
        problem_type="classification" if labels else "regression",
        label_names=labels or [],
        backbone=backbone_identity(backbone),
        tokenizer={"max_length": max_length, "text_pair": text_pair},
        weights_sha256="0" * 64,
    )


def artifact_bytes(
    task: str,
    cfg: MethodConfig,
    backbone: Backbone,
    labels: list[str] | None = None,
    seed: int = 0,
    text_pair: bool = False,
) -> tuple[bytes, bytes]:
    """(manifest JSON, safetensors) of a random task, as an upload would carry them."""
    labels = ["negative", "positive"] if labels is None else labels
    weights = random_task(cfg, backbone, max(len(labels), 1), seed=seed)
    manifest = make_manifest(task, cfg, backbone, labels or None, text_pair=text_pair)
    return serialize(manifest, weights)
