"""Save and load a task artifact: safetensors weights + JSON manifest, validated, no pickle."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from adapters import constants as C
from adapters.atomic import write_directory
from adapters.backbone import Backbone
from adapters.config import MethodConfig
from adapters.errors import ArtifactError, BackboneMismatchError, ConfigError
from adapters.manifest import BackboneIdentity, Manifest
from adapters.schema import BackboneDims, expected_shapes

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ALLOWED_DTYPES = tuple(DTYPES.values())


@dataclass
class Artifact:
    """A validated task: its manifest, method config and tensors, in the manifest's dtype
    (float32, float16 or bfloat16; a bank casts them to its own dtype at slot write)."""

    manifest: Manifest
    weights: dict[str, Tensor]

    @property
    def config(self) -> MethodConfig:
        return self.manifest.method_config

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.weights.values())


def backbone_identity(backbone: Backbone) -> BackboneIdentity:
    d = backbone.dims
    return BackboneIdentity(
        name=backbone.name,
        fingerprint=backbone.fingerprint,
        family=backbone.family.name,
        hidden=d.hidden,
        layers=d.layers,
        heads=d.heads,
        intermediate=d.intermediate,
    )


def weights_dtype(weights: dict[str, Tensor]) -> str:
    """The one storage dtype of `weights` (its manifest name); mixed or other dtypes refused."""
    names = {n for t in weights.values() for n, d in DTYPES.items() if t.dtype == d}
    if len(names) != 1 or any(t.dtype not in ALLOWED_DTYPES for t in weights.values()):
        found = sorted({str(t.dtype) for t in weights.values()})
        raise ArtifactError(f"weights must all be one of {sorted(DTYPES)}; found {found}")
    return names.pop()


def cast_weights(weights: dict[str, Tensor], dtype: str) -> dict[str, Tensor]:
    """The same tensors stored as `dtype` ("float32", "float16" or "bfloat16")."""
    if dtype not in DTYPES:
        raise ArtifactError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return {k: v.detach().to(DTYPES[dtype]) for k, v in weights.items()}


def serialize(manifest: Manifest, weights: dict[str, Tensor]) -> tuple[bytes, bytes]:
    """(manifest JSON bytes, safetensors bytes) with the manifest's sha256 and dtype filled in
    from the weights."""
    dtype = weights_dtype(weights)
    blob = save_safetensors({k: v.detach().cpu().contiguous() for k, v in weights.items()})
    digest = hashlib.sha256(blob).hexdigest()
    manifest = manifest.model_copy(update={"weights_sha256": digest, "dtype": dtype})
    return manifest.model_dump_json(indent=2).encode(), blob


def save_artifact(directory: Path, manifest: Manifest, weights: dict[str, Tensor]) -> Path:
    """Write the artifact atomically: a reader never sees a half-written directory."""
    manifest_bytes, blob = serialize(manifest, weights)
    return write_directory(directory, {C.WEIGHTS_FILE: blob, C.MANIFEST_FILE: manifest_bytes})


def load_artifact(directory: Path, backbone: Backbone | None = None) -> Artifact:
    """Read and fully validate an artifact directory."""
    directory = Path(directory)
    try:
        manifest_bytes = (directory / C.MANIFEST_FILE).read_bytes()
        blob = (directory / C.WEIGHTS_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactError(f"artifact file missing: {exc.filename}") from exc
    return parse_artifact(manifest_bytes, blob, backbone)


def parse_manifest(manifest_bytes: bytes) -> Manifest:
    try:
        data = json.loads(manifest_bytes)
    except ValueError as exc:  # bad JSON or UTF-8, or an integer over Python's digit limit
        raise ArtifactError(f"manifest is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ArtifactError("manifest is not valid: JSON nested too deeply") from exc
    if not isinstance(data, dict):
        raise ArtifactError("manifest must be a JSON object")
    try:
        return Manifest.model_validate(data)
    except (ValidationError, ConfigError) as exc:
        raise ArtifactError(f"manifest is invalid: {_short(exc)}") from exc


def parse_artifact(
    manifest_bytes: bytes,
    blob: bytes,
    backbone: Backbone | None,
    weights_sha256: str | None = None,
) -> Artifact:
    """Validate manifest, checksum, backbone identity, tensor names, shapes, dtypes, values.

    `weights_sha256`: the blob's sha256 when the caller has computed it already (a store
    fetch verifies it); it is compared with the manifest's instead of hashing the blob again."""
    manifest = parse_manifest(manifest_bytes)
    digest = weights_sha256 or hashlib.sha256(blob).hexdigest()
    if digest != manifest.weights_sha256:
        raise ArtifactError(
            f"weights sha256 {digest[:12]}… does not match the manifest's "
            f"{manifest.weights_sha256[:12]}… (corrupt or mismatched upload)"
        )
    if backbone is not None:
        check_backbone(manifest, backbone)
    check_weights_header(blob)
    try:
        raw = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"weights are not a valid safetensors file: {exc}") from exc
    weights = check_tensors(manifest, raw, backbone)
    return Artifact(manifest=manifest, weights=weights)


def check_weights_header(blob: bytes) -> None:
    """Bound the safetensors header (tensor index and __metadata__) before it is parsed."""
    if len(blob) < 8:
        raise ArtifactError("weights are not a valid safetensors file: shorter than 8 bytes")
    size = int.from_bytes(blob[:8], "little")
    if size > C.MAX_WEIGHTS_HEADER_BYTES:
        raise ArtifactError(
            f"weights are not a valid safetensors file for an adapter: header of {size} bytes "
            f"(at most {C.MAX_WEIGHTS_HEADER_BYTES})"
        )
    try:
        header = json.loads(blob[8 : 8 + size])
    except (ValueError, RecursionError):
        return  # not JSON: the safetensors reader says why
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if metadata is not None and len(json.dumps(metadata)) > C.MAX_WEIGHTS_METADATA_BYTES:
        raise ArtifactError(
            f"weights' safetensors __metadata__ exceeds {C.MAX_WEIGHTS_METADATA_BYTES} bytes"
        )


def check_backbone(manifest: Manifest, backbone: Backbone) -> None:
    ident = manifest.backbone
    if ident.fingerprint != backbone.fingerprint:
        raise BackboneMismatchError(
            f"adapter was trained on backbone {ident.name!r} ({ident.fingerprint[:12]}…), "
            f"but this server runs {backbone.name!r} ({backbone.fingerprint[:12]}…)"
        )
    d = backbone.dims
    got = (ident.hidden, ident.layers, ident.heads, ident.intermediate)
    if got != (d.hidden, d.layers, d.heads, d.intermediate):
        raise BackboneMismatchError(f"manifest backbone sizes {got} differ from the backbone's")
    if ident.family != backbone.family.name:
        raise BackboneMismatchError(
            f"manifest backbone family {ident.family!r} differs from {backbone.family.name!r}"
        )
    refused = backbone.family.refusal(manifest.method_config)
    if refused is not None:
        raise ConfigError(refused)


def check_tensors(
    manifest: Manifest, raw: dict[str, Tensor], backbone: Backbone | None
) -> dict[str, Tensor]:
    """Exact tensor set and shapes for the method config; the manifest's dtype; finite values.
    Tensors stay in their stored dtype."""
    ident = manifest.backbone
    dims = (
        backbone.dims
        if backbone is not None
        else BackboneDims(
            hidden=ident.hidden,
            layers=ident.layers,
            heads=ident.heads,
            intermediate=ident.intermediate,
        )
    )
    if dims.hidden % dims.heads:
        raise ArtifactError(f"hidden size {dims.hidden} is not divisible by {dims.heads} heads")
    wanted = expected_shapes(manifest.method_config, dims, manifest.num_labels)
    missing, extra = sorted(set(wanted) - set(raw)), sorted(set(raw) - set(wanted))
    if missing:
        raise ArtifactError(f"weights lack tensors {missing} required by method {manifest.method}")
    if extra:
        raise ArtifactError(f"weights carry unexpected tensors {extra}")
    out: dict[str, Tensor] = {}
    for name, shape in wanted.items():
        t = raw[name]
        if tuple(t.shape) != shape:
            raise ArtifactError(f"tensor {name} has shape {tuple(t.shape)}, expected {shape}")
        if t.dtype != DTYPES[manifest.dtype]:
            raise ArtifactError(
                f"tensor {name} has dtype {t.dtype}; the manifest says {manifest.dtype}"
            )
        if not _finite(t):
            raise ArtifactError(f"tensor {name} contains NaN or Inf")
        out[name] = t
    return out


def _finite(t: Tensor) -> bool:
    """No NaN or Inf in `t`: one sum, wide enough that finite values cannot overflow it (NaN
    and Inf propagate); several times faster than `isfinite(t).all()` on a CPU."""
    wide = torch.float32 if t.dtype == torch.float16 else torch.float64
    return bool(torch.isfinite(t.sum(dtype=wide)))


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or 'manifest'}: {e['msg']}" for e in exc.errors()]
        return "; ".join(parts[:5])
    return str(exc)
