"""A PEFT upload (adapter_config + adapter_weights + labels) as our artifact's bytes.

The converted artifact then goes through the same validation and publish as any upload. The
server never loads a base model named by an upload: the adapter must carry our export's
backbone fingerprint, or name this server's backbone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from adapters.artifact import serialize
from adapters.backbone import Backbone
from adapters.errors import ArtifactError
from adapters.peft_header import Limits
from adapters.peft_import import ImportOptions, import_peft


@dataclass(frozen=True)
class PeftUpload:
    config: bytes  # adapter_config.json
    weights: bytes  # adapter_model.safetensors
    task: str
    labels: str | None = None  # JSON list or comma-separated names, in head order
    text_pair: bool | None = None
    max_length: int | None = None


def parse_labels(text: str | None) -> list[str] | None:
    if text is None or not text.strip():
        return None
    if text.lstrip().startswith("["):
        try:
            labels = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ArtifactError(f"labels is not a JSON list ({type(exc).__name__})") from exc
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ArtifactError("labels must be a JSON list of strings")
        return labels
    return [x.strip() for x in text.split(",")]


def peft_artifact_bytes(
    upload: PeftUpload, backbone: Backbone, limits: Limits
) -> tuple[bytes, bytes]:
    """(manifest JSON, safetensors) of the converted adapter; refusals raise ArtifactError."""
    options = ImportOptions(
        limits=limits,
        task=upload.task,
        labels=parse_labels(upload.labels),
        text_pair=upload.text_pair,
        max_length=upload.max_length,
        load_base_model=False,
    )
    manifest, weights = import_peft(upload.config, upload.weights, backbone, options)
    return serialize(manifest, weights)
