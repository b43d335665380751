"""Shared by the PEFT conversion tests: a small padded batch, and a PEFT folder converted to a
loaded artifact."""

from __future__ import annotations

from pathlib import Path

import torch

from adapters.artifact import save_artifact
from adapters.backbone import Backbone
from adapters.peft_import import ImportOptions, import_peft, read_peft_dir
from adapters.training.inference import Predictor


def batch(backbone: Backbone) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(3, 120, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    ids[1, 5:] = backbone.config.pad_token_id
    return ids, mask, torch.zeros_like(ids)


def convert(peft_dir: Path, backbone: Backbone, out: Path, **options) -> Predictor:
    manifest, weights = import_peft(
        *read_peft_dir(peft_dir), backbone, ImportOptions(task="t", **options)
    )
    save_artifact(out, manifest, weights)
    return Predictor.load(out, backbone)
