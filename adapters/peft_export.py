"""Write a task artifact as a PEFT adapter directory (`PeftModel.from_pretrained`), when its
method alone has a PEFT format (`Method.peft`: LoRA without gates, ...).

The base model is `AutoModelForSequenceClassification` on the same backbone with
`num_labels` outputs (1 for regression); the head travels in `modules_to_save`.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save as save_safetensors
from torch import Tensor

from adapters import peft_layout as P
from adapters.artifact import Artifact
from adapters.atomic import write_directory
from adapters.backbone import Backbone
from adapters.errors import ArtifactError
from adapters.methods import BY_NAME, PEFT_FORMATS


def peft_files(artifact: Artifact, backbone: Backbone) -> tuple[bytes, bytes]:
    """(adapter_config.json bytes, adapter_model.safetensors bytes) of the task."""
    cfg, family = artifact.config, backbone.family
    fmt = next((f for f in PEFT_FORMATS.values() if f.exports(cfg)), None)
    if fmt is None:
        kinds = " or ".join(f"{BY_NAME[f.method].paper_name}-only" for f in PEFT_FORMATS.values())
        raise ArtifactError(
            f"only {kinds} tasks without gates can be written as PEFT adapters; "
            f"task {artifact.manifest.task!r} uses {cfg.name}"
        )
    refused = family.peft_refusal(fmt.peft_type)
    if refused is not None:
        raise ArtifactError(f"not on the {family.name} family: {refused}")
    if artifact.manifest.backbone.fingerprint != backbone.fingerprint:
        raise ArtifactError("the artifact was trained on another backbone than the one given")
    layout = P.head_layout(backbone.config.model_type)
    w = artifact.weights
    tensors: dict[str, Tensor] = {}
    for layer in range(backbone.dims.layers):
        for t in fmt.tensors():
            module = P.to_layout(t.module, family.peft_names)
            tensors[P.layer_key(layout.base, layer, module, t.suffix)] = t.to_peft(w[t.ours][layer])
    for ours, key in layout.keys().items():
        tensors[key] = w[ours].t() if ours.endswith("_w") else w[ours]
    manifest = artifact.manifest
    metadata = {
        "format": "pt",
        P.META_FINGERPRINT: backbone.fingerprint,
        P.META_LABELS: json.dumps(manifest.label_names),
        P.META_TEXT_PAIR: json.dumps(manifest.tokenizer.text_pair),
        P.META_MAX_LENGTH: json.dumps(manifest.tokenizer.max_length),
    }
    blob = save_safetensors({k: v.contiguous() for k, v in tensors.items()}, metadata)
    base = str(backbone.path) if Path(backbone.path).is_dir() else backbone.name
    config = P.names_to_layout(fmt.config(cfg, base, layout), family.peft_names)
    return json.dumps(config, indent=2).encode(), blob


def export_peft(artifact: Artifact, backbone: Backbone, directory: Path) -> Path:
    """Write the PEFT directory atomically: a reader never sees a half-written one."""
    config, blob = peft_files(artifact, backbone)
    return write_directory(directory, {P.WEIGHTS_FILE: blob, P.CONFIG_FILE: config})
