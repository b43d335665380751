"""Convert a PEFT LoRA sequence-classification adapter into this library's artifact, exactly.

LoRA on query/value becomes method `l` (gates off, scale alpha / r); a layer PEFT left out
(`layers_to_transform`) or a projection it did not target gets zero LoRA weights, which adds
exact zeros. Anything else is refused with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import Tensor

from adapters import peft_layout as P
from adapters.artifact import backbone_identity, check_tensors
from adapters.backbone import Backbone, resolve_backbone_path
from adapters.config import MethodConfig
from adapters.errors import ArtifactError, BackboneError, BackboneMismatchError
from adapters.manifest import Manifest, TokenizerSettings

_PLACEHOLDER_SHA = "0" * 64


@dataclass(frozen=True)
class ImportOptions:
    task: str
    labels: list[str] | None = None  # None: from our export's metadata, else LABEL_0, ...
    text_pair: bool | None = None  # None: from our export's metadata, else single texts
    max_length: int | None = None  # None: from our export's metadata, else 128
    # Load `base_model_name_or_path` to compare fingerprints when it is a local model other
    # than the backbone (the command line does; a server never loads paths from uploads).
    load_base_model: bool = False


def read_peft_dir(directory: Path) -> tuple[bytes, bytes]:
    """(adapter_config.json bytes, adapter_model.safetensors bytes) of a PEFT directory."""
    try:
        return (
            (Path(directory) / P.CONFIG_FILE).read_bytes(),
            (Path(directory) / P.WEIGHTS_FILE).read_bytes(),
        )
    except FileNotFoundError as exc:
        raise ArtifactError(f"PEFT file missing: {exc.filename}") from exc


def import_peft(
    config_bytes: bytes, weights_bytes: bytes, backbone: Backbone, options: ImportOptions
) -> tuple[Manifest, dict[str, Tensor]]:
    """Our manifest (sha256 not yet filled in) and float32 weights for a PEFT adapter."""
    config = parse_config(config_bytes)
    r, alpha = P.check_config(config)
    raw, metadata = _safetensors(weights_bytes)
    check_base_model(config, metadata, backbone, options.load_base_model)
    layout = P.head_layout(backbone.config.model_type)
    weights = {**_lora_weights(raw, backbone, layout, r), **_head_weights(raw, backbone, layout)}
    leftover = sorted(set(raw) - _used_keys(raw, layout))
    if leftover:
        raise ArtifactError(
            f"PEFT adapter not representable: tensors {leftover[:5]} are neither LoRA on "
            "query/value nor the classification head"
        )
    num_labels = weights["head_out_b"].shape[0]
    try:
        manifest = _manifest(options, r, alpha, num_labels, metadata, weights, backbone)
    except ValidationError as exc:
        raise ArtifactError(f"converted manifest is invalid: {exc.errors()[0]['msg']}") from exc
    return manifest, check_tensors(manifest, weights, backbone)


def _manifest(
    options: ImportOptions,
    r: int,
    alpha: float,
    num_labels: int,
    metadata: dict[str, str],
    weights: dict[str, Tensor],
    backbone: Backbone,
) -> Manifest:
    return Manifest(
        task=options.task,
        method=MethodConfig.preset("l", lora_r=r, lora_alpha=alpha).to_dict(),
        problem_type="regression" if num_labels == 1 else "classification",
        label_names=_labels(options.labels, metadata, num_labels),
        backbone=backbone_identity(backbone),
        tokenizer=TokenizerSettings(
            max_length=_meta(options.max_length, metadata, P.META_MAX_LENGTH, 128),
            text_pair=_meta(options.text_pair, metadata, P.META_TEXT_PAIR, False),
        ),
        trainable_parameters=sum(t.numel() for t in weights.values()),
        weights_sha256=_PLACEHOLDER_SHA,
    )


def check_base_model(config: dict, metadata: dict, backbone: Backbone, load: bool) -> None:
    """The adapter must have been trained on this backbone: same fingerprint, or named so."""
    recorded = metadata.get(P.META_FINGERPRINT)
    if recorded is not None:
        if recorded != backbone.fingerprint:
            raise _mismatch(f"fingerprint {recorded[:12]}…", backbone)
        return
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ArtifactError(
            "PEFT adapter does not name its base model (base_model_name_or_path): "
            "cannot check it was trained on this backbone"
        )
    if _names_backbone(base, backbone):
        return
    if load:
        from adapters.backbone import load_backbone

        try:
            other = load_backbone(base)
        except BackboneError as exc:
            raise ArtifactError(f"cannot check base model {base!r}: {exc}") from exc
        if other.fingerprint == backbone.fingerprint:
            return
        raise _mismatch(f"{base!r} ({other.fingerprint[:12]}…)", backbone)
    raise _mismatch(f"{base!r}", backbone)


def _names_backbone(base: str, backbone: Backbone) -> bool:
    if base == backbone.name:
        return True
    try:
        _, path = resolve_backbone_path(base)
    except BackboneError:
        return False
    return path.resolve() == Path(backbone.path).resolve()


def _mismatch(what: str, backbone: Backbone) -> BackboneMismatchError:
    return BackboneMismatchError(
        f"PEFT adapter was trained on base model {what}, but this backbone is "
        f"{backbone.name!r} ({backbone.fingerprint[:12]}…)"
    )


def parse_config(data: bytes) -> dict:
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(f"{P.CONFIG_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ArtifactError(f"{P.CONFIG_FILE} must be a JSON object")
    return config


def _safetensors(data: bytes) -> tuple[dict[str, Tensor], dict[str, str]]:
    try:
        raw = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{P.WEIGHTS_FILE} is not a valid safetensors file: {exc}") from exc
    return raw, _metadata(data)


def _metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(f"{P.WEIGHTS_FILE} has an unreadable header: {exc}") from exc
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _lora_weights(
    raw: dict[str, Tensor], backbone: Backbone, layout: P.HeadLayout, r: int
) -> dict[str, Tensor]:
    """Ours: A (L, d, r), B (L, r, d) = PEFT's lora_A.weight.T, lora_B.weight.T per layer."""
    L, d = backbone.dims.layers, backbone.dims.hidden
    out: dict[str, Tensor] = {}
    for p in P.PROJ.values():
        out[f"lora_{p}_A"], out[f"lora_{p}_B"] = torch.zeros(L, d, r), torch.zeros(L, r, d)
    found = 0
    for key, tensor in raw.items():
        m = P.LORA_KEY.match(key)
        if m is None:
            continue
        if m["base"] != layout.base:
            raise ArtifactError(
                f"PEFT adapter not representable: {key} is for a {m['base']!r} model, "
                f"this backbone is {layout.base!r}"
            )
        layer = int(m["layer"])
        if layer >= L:
            raise BackboneMismatchError(f"{key}: layer {layer}, the backbone has {L} layers")
        name = f"lora_{P.PROJ[m['proj']]}_{m['part']}"
        want = (r, d) if m["part"] == "A" else (d, r)
        if tuple(tensor.shape) != want:
            raise ArtifactError(
                f"{key} has shape {tuple(tensor.shape)}, expected {want} (r={r}, hidden={d})"
            )
        out[name][layer] = tensor.float().t()
        found += 1
    if not found:
        raise ArtifactError("PEFT adapter holds no LoRA weights on query or value")
    return out


def _head_weights(
    raw: dict[str, Tensor], backbone: Backbone, layout: P.HeadLayout
) -> dict[str, Tensor]:
    keys = layout.keys()
    if keys["head_out_w"] not in raw or keys["head_out_b"] not in raw:
        raise ArtifactError(
            f"PEFT adapter has no trained classification head ({keys['head_out_w']}): "
            "train it through modules_to_save"
        )
    dense: dict[str, Any] = {n: raw.get(keys[n]) for n in ("head_dense_w", "head_dense_b")}
    if any(t is None for t in dense.values()):
        pooler = getattr(backbone.model, "pooler", None)
        if not layout.dense_from_backbone or pooler is None:
            raise ArtifactError(f"PEFT adapter lacks the head's dense layer {keys['head_dense_w']}")
        dense = {"head_dense_w": pooler.dense.weight, "head_dense_b": pooler.dense.bias}
    out_w = raw[keys["head_out_w"]]
    d = backbone.dims.hidden
    if out_w.dim() != 2 or out_w.shape[1] != d or tuple(dense["head_dense_w"].shape) != (d, d):
        raise ArtifactError(
            f"PEFT head shapes dense {tuple(dense['head_dense_w'].shape)}, out "
            f"{tuple(out_w.shape)} are not a head on hidden size {d}"
        )
    return {
        "head_dense_w": dense["head_dense_w"].detach().float().t().contiguous(),
        "head_dense_b": dense["head_dense_b"].detach().float().clone(),
        "head_out_w": out_w.float().t().contiguous(),
        "head_out_b": raw[keys["head_out_b"]].float(),
    }


def _used_keys(raw: dict[str, Tensor], layout: P.HeadLayout) -> set[str]:
    return {k for k in raw if P.LORA_KEY.match(k)} | set(layout.keys().values())


def _labels(given: list[str] | None, metadata: dict[str, str], num_labels: int) -> list[str]:
    if num_labels == 1:
        if given:
            raise ArtifactError("the head has one output (regression): it takes no --labels")
        return []
    if given is None and P.META_LABELS in metadata:
        given = _meta(None, metadata, P.META_LABELS, None)
    if given is None:
        return [f"LABEL_{i}" for i in range(num_labels)]
    if len(given) != num_labels:
        raise ArtifactError(f"{len(given)} labels given but the head has {num_labels} outputs")
    return list(given)


def _meta(given, metadata: dict[str, str], key: str, default):
    if given is not None:
        return given
    if key not in metadata:
        return default
    try:
        return json.loads(metadata[key])
    except ValueError as exc:
        raise ArtifactError(f"{P.WEIGHTS_FILE} metadata {key} is not JSON: {exc}") from exc
