"""The backbone a benchmark runs on: a checkpoint directory, or a config alone.

A directory with weights loads as the service loads it (`load_backbone`, float32). A directory
with a `config.json` and tokenizer files but no weights builds that architecture with seeded
random weights: speed does not depend on the values, so the speed rows at BERT-base sizes need
no 440 MB checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from adapters.backbone import Backbone, backbone_from_model, load_backbone

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def bench_backbone(name_or_path: str | None = None, seed: int = 0) -> Backbone:
    """`load_backbone(name_or_path)`, or random weights when the directory holds none."""
    path = Path(name_or_path).expanduser() if name_or_path else None
    if path is None or not path.is_dir() or any((path / f).exists() for f in WEIGHT_FILES):
        return load_backbone(name_or_path)
    from transformers import AutoConfig, AutoModel

    from adapters.families import family_for

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    options = family_for(config.model_type).load_options()
    torch.manual_seed(seed)
    model = AutoModel.from_config(config, dtype=torch.float32, **options)
    return backbone_from_model(model, name=f"{path.name}-random-{seed}", path=path.resolve())
