"""Convert a PEFT sequence-classification adapter into this library's artifact, exactly.

The adapter's `peft_type` picks the method whose PEFT format it is (`Method.peft`: LoRA on
query/value becomes method `l`, gates off, scale alpha / r); a module or layer PEFT left out
(`target_modules`, `layers_to_transform`) gets the value that adds nothing (zero LoRA
weights). Anything else is refused with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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
from adapters.methods import BY_NAME, PEFT_FORMATS
from adapters.peft_header import Limits, check_entries, read_header

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
    limits: Limits = field(default_factory=Limits)  # a server passes its bank's sizes


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
    """Our manifest (sha256 not yet filled in) and float32 weights for a PEFT adapter.

    Config, tensor names, dtypes and shapes, labels and metadata are all checked (against
    `options.limits` too) before any tensor is loaded or allocated."""
    config = parse_config(config_bytes)
    family = backbone.family
    refused = family.peft_refusal(_format(config).peft_type)
    if refused is not None:
        raise ArtifactError(f"not on the {family.name} family: {refused}")
    fmt, settings = check_config(config, family.peft_names)
    rename = P.renamer(family.peft_names)
    header = read_header(weights_bytes)
    header = replace(header, entries={rename(k): e for k, e in header.entries.items()})
    check_base_model(config, header.metadata, backbone, options.load_base_model)
    layout = P.head_layout(backbone.config.model_type)
    num_labels = check_entries(header, fmt, settings, layout, backbone.dims, options.limits)
    labels = _labels(options.labels, header.metadata, num_labels)
    cfg = fmt.method_config(settings)
    raw = {rename(k): t for k, t in _load(weights_bytes).items()}
    weights = {
        **_method_weights(raw, fmt, cfg, layout, backbone),
        **_head_weights(raw, backbone, layout),
    }
    try:
        manifest = _manifest(options, cfg, labels, header.metadata, weights, backbone)
    except ValidationError as exc:
        raise ArtifactError(f"converted manifest is invalid: {exc.errors()[0]['msg']}") from exc
    return manifest, check_tensors(manifest, weights, backbone)


def check_config(
    config: dict, names: dict[str, str] | None = None
) -> tuple[P.PeftFormat, P.Settings]:
    """The format of the adapter's `peft_type`, and its settings, checked. `names`: PEFT's
    module names on the backbone's layout (`Family.peft_names`); None (no backbone at hand):
    those of the family whose names the config uses."""
    fmt = _format(config)
    if names is None:
        names = _names_used(config)
    config = P.names_to_ours(config, names)
    placement = P.placement(config, fmt)
    return fmt, P.Settings(placement, fmt.values(config, placement))


def _format(config: dict) -> P.PeftFormat:
    peft_type = config.get("peft_type")
    fmt = PEFT_FORMATS.get(peft_type) if isinstance(peft_type, str) else None
    if fmt is None:
        raise P.refuse(
            f"peft_type is {P.short(peft_type)}; only {' and '.join(PEFT_FORMATS)} are supported"
        )
    return fmt


def _names_used(config: dict) -> dict[str, str]:
    """The `peft_names` of the family whose module names the config's targets use, if any."""
    from adapters.families import FAMILIES

    targets = config.get("target_modules")
    words: set[str] = set()
    if isinstance(targets, list) and P.is_names(targets):
        words = {w for t in targets for w in t.split(".")}
    for family in FAMILIES:
        if words & set(family.peft_names.values()):
            return family.peft_names
    return {}


def _manifest(
    options: ImportOptions,
    cfg: MethodConfig,
    labels: list[str],
    metadata: dict[str, str],
    weights: dict[str, Tensor],
    backbone: Backbone,
) -> Manifest:
    max_length = _meta(options.max_length, metadata, P.META_MAX_LENGTH, 128, int)
    text_pair = _meta(options.text_pair, metadata, P.META_TEXT_PAIR, False, bool)
    return Manifest(
        task=options.task,
        method=cfg.to_dict(),
        problem_type="classification" if labels else "regression",
        label_names=labels,
        backbone=backbone_identity(backbone),
        tokenizer=TokenizerSettings(max_length=max_length, text_pair=text_pair),
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


def _load(data: bytes) -> dict[str, Tensor]:
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{P.WEIGHTS_FILE} is not a valid safetensors file: {exc}") from exc


def _method_weights(
    raw: dict[str, Tensor],
    fmt: P.PeftFormat,
    cfg: MethodConfig,
    layout: P.HeadLayout,
    backbone: Backbone,
) -> dict[str, Tensor]:
    """The method's tensors: `fmt.fill` (adds nothing) where PEFT put none, each PEFT tensor
    as row [layer] of ours (names, layers and shapes were checked from the header)."""
    dims = backbone.dims
    shapes = BY_NAME[fmt.method].artifact_shapes(cfg, dims, 1)
    out = {name: torch.full(shape, fmt.fill) for name, shape in shapes.items()}
    for tensor in fmt.tensors():
        for layer in range(dims.layers):
            key = P.layer_key(layout.base, layer, tensor.module, tensor.suffix)
            if key in raw:
                out[tensor.ours][layer] = tensor.to_ours(raw[key].float())
    return out


def _head_weights(
    raw: dict[str, Tensor], backbone: Backbone, layout: P.HeadLayout
) -> dict[str, Tensor]:
    """The head; BERT's dense layer is the backbone's pooler where the adapter lacks it, as
    PEFT (which loads such tensors into the base model) would have it."""
    keys = layout.keys()
    pooler = getattr(backbone.model, "pooler", None)
    fallback: dict[str, Any] = {}
    if layout.dense_from_backbone and pooler is not None:
        fallback = {"head_dense_w": pooler.dense.weight, "head_dense_b": pooler.dense.bias}
    dense: dict[str, Tensor] = {}
    for name in ("head_dense_w", "head_dense_b"):
        tensor = raw.get(keys[name], fallback.get(name))
        if tensor is None:
            raise ArtifactError(f"PEFT adapter lacks the head's dense layer {keys[name]}")
        dense[name] = tensor.detach().float()
    return {
        "head_dense_w": dense["head_dense_w"].t().contiguous(),
        "head_dense_b": dense["head_dense_b"].clone(),
        "head_out_w": raw[keys["head_out_w"]].float().t().contiguous(),
        "head_out_b": raw[keys["head_out_b"]].float(),
    }


def _labels(given: list[str] | None, metadata: dict[str, str], num_labels: int) -> list[str]:
    if num_labels == 1:
        if given:
            raise ArtifactError("the head has one output (regression): it takes no --labels")
        return []
    if given is None:
        given = _meta(None, metadata, P.META_LABELS, None, list)
    if given is None:
        return [f"LABEL_{i}" for i in range(num_labels)]
    if not all(isinstance(x, str) for x in given):
        raise ArtifactError("labels must be a list of strings")
    if len(given) != num_labels:
        raise ArtifactError(f"{len(given)} labels given but the head has {num_labels} outputs")
    return list(given)


def _meta(given, metadata: dict[str, str], key: str, default, kind: type):
    """`given` if set, else the JSON value our export recorded under `key` (of type `kind`)."""
    if given is not None:
        return given
    if key not in metadata:
        return default
    try:
        value = json.loads(metadata[key])
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(
            f"{P.WEIGHTS_FILE} metadata {key} is not JSON ({type(exc).__name__})"
        ) from exc
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArtifactError(f"{P.WEIGHTS_FILE} metadata {key} must be a JSON {kind.__name__}")
    return value
