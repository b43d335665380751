"""Check a PEFT adapter's tensors from the safetensors header alone, before any is loaded.

Every tensor must be one the conversion consumes and PEFT itself would apply: a tensor of the
method's format (`PeftFormat.tensors`) on a module the config targets (in
`layers_to_transform`, not in `exclude_modules`), or a classification-head tensor, in a float
dtype, of exactly the expected shape. Sizes are bounded by the caller's limits here, so
nothing is allocated in proportion to a declared size.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from adapters import constants as C
from adapters import peft_layout as P
from adapters.errors import ArtifactError, BackboneMismatchError
from adapters.schema import BackboneDims

FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
# A per-layer tensor's key: base model, layer, the module inside the layer, and what follows
# it (the last one or two names, e.g. `lora_A.weight` or `ia3_l`).
LAYER_KEY = re.compile(
    r"^base_model\.model\.(?P<base>\w+)\.encoder\.layer\.(?P<layer>\d+)\."
    r"(?P<module>[\w.]+?)\.(?P<suffix>\w+(?:\.weight|\.bias)?)$"
)


@dataclass(frozen=True)
class Entry:
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Header:
    entries: dict[str, Entry]
    metadata: dict[str, str]


@dataclass(frozen=True)
class Limits:
    """Largest LoRA rank and label count accepted, and the settings that set them (if any)."""

    max_lora_rank: int = C.MAX_LORA_RANK
    max_labels: int = C.MAX_LABELS
    rank_setting: str = ""
    labels_setting: str = ""


def _invalid(reason: str) -> ArtifactError:
    return ArtifactError(f"{P.WEIGHTS_FILE} is not a valid safetensors file: {reason}")


def read_header(data: bytes) -> Header:
    """The tensor index and `__metadata__`, bounded and typed (nothing else is read)."""
    if len(data) < 8:
        raise _invalid("shorter than 8 bytes")
    size = int.from_bytes(data[:8], "little")
    if size > C.MAX_WEIGHTS_HEADER_BYTES or 8 + size > len(data):
        raise _invalid(f"header of {size} bytes (at most {C.MAX_WEIGHTS_HEADER_BYTES})")
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"unreadable header ({type(exc).__name__})") from exc
    if not isinstance(header, dict):
        raise _invalid("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _invalid("__metadata__ must map strings to strings")
    if sum(len(k) + len(v) for k, v in metadata.items()) > C.MAX_WEIGHTS_METADATA_BYTES:
        raise ArtifactError(
            f"safetensors __metadata__ exceeds {C.MAX_WEIGHTS_METADATA_BYTES} bytes"
        )
    return Header({name: _entry(name, e) for name, e in header.items()}, metadata)


def _entry(name: str, entry: object) -> Entry:
    if not isinstance(entry, dict):
        raise _invalid(f"entry {name[:100]!r} is not an object")
    dtype, shape = entry.get("dtype"), entry.get("shape")
    if not isinstance(dtype, str) or not isinstance(shape, list):
        raise _invalid(f"entry {name[:100]!r} lacks a dtype or a shape")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise _invalid(f"entry {name[:100]!r} has shape {shape!r:.80}")
    return Entry(dtype, tuple(shape))


def check_entries(
    header: Header,
    fmt: P.PeftFormat,
    settings: P.Settings,
    layout: P.HeadLayout,
    dims: BackboneDims,
    limits: Limits,
) -> int:
    """Refuse any tensor the conversion would not apply exactly; return the label count."""
    fmt.check_limits(settings, limits)
    num_labels = _check_head(header.entries, layout, dims, limits)
    head = {key: ours for ours, key in layout.keys().items()}
    ours = {(t.module, t.suffix): t for t in fmt.tensors()}
    found: set[tuple[int, str, str]] = set()
    for key, entry in header.entries.items():
        if entry.dtype not in FLOAT_DTYPES:
            raise ArtifactError(f"PEFT tensor {key[:200]} has dtype {entry.dtype}, not a float")
        if key in head:
            continue
        m = LAYER_KEY.match(key)
        tensor = ours.get((m["module"], m["suffix"])) if m is not None else None
        if m is None or tensor is None:
            raise ArtifactError(
                f"PEFT adapter not representable: tensor {key[:200]} is neither {fmt.holds} "
                "nor the classification head"
            )
        layer = _check_layer(key, m, settings, layout, dims)
        want = tensor.shape(settings, dims)
        if entry.shape != want:
            raise ArtifactError(
                f"{key} has shape {entry.shape}, expected {want} ({fmt.describe(settings, dims)})"
            )
        found.add((layer, tensor.module, tensor.suffix))
    if not found:
        raise ArtifactError(f"PEFT adapter holds no {fmt.holds} weights")
    fmt.check_complete(found)
    return num_labels


def _check_layer(
    key: str, m: re.Match[str], settings: P.Settings, layout: P.HeadLayout, dims: BackboneDims
) -> int:
    """The layer of a per-layer tensor PEFT would apply on this backbone."""
    if m["base"] != layout.base:
        raise ArtifactError(
            f"PEFT adapter not representable: {key} is for a {m['base']!r} model, "
            f"this backbone is {layout.base!r}"
        )
    layer = int(m["layer"])
    if layer >= dims.layers:
        raise BackboneMismatchError(f"{key}: layer {layer}, the backbone has {dims.layers} layers")
    module = f"{m['base']}.encoder.layer.{layer}.{m['module']}"
    left_out_by = settings.placement.applies_to(module, layer)
    if left_out_by is not None:
        raise ArtifactError(
            f"PEFT adapter not representable: tensor {key} is on {module}, which "
            f"{left_out_by} leaves out (PEFT would not apply it)"
        )
    return layer


def _check_head(
    entries: dict[str, Entry], layout: P.HeadLayout, dims: BackboneDims, limits: Limits
) -> int:
    keys, d = layout.keys(), dims.hidden
    out_w, out_b = entries.get(keys["head_out_w"]), entries.get(keys["head_out_b"])
    if out_w is None or out_b is None:
        raise ArtifactError(
            f"PEFT adapter has no trained classification head ({keys['head_out_w']}): "
            f"train it through modules_to_save"
        )
    n = out_b.shape[0] if len(out_b.shape) == 1 else -1
    if out_w.shape != (n, d) or n < 1:
        raise ArtifactError(
            f"PEFT head out {out_w.shape} / {out_b.shape} is not a head on hidden size {d}"
        )
    if n > limits.max_labels:
        raise P.over_limit(f"{n} labels exceed", limits.max_labels, limits.labels_setting)
    dense = {ours: entries.get(keys[ours]) for ours in ("head_dense_w", "head_dense_b")}
    for ours, shape in (("head_dense_w", (d, d)), ("head_dense_b", (d,))):
        entry = dense[ours]
        if entry is None and not layout.dense_from_backbone:
            raise ArtifactError(
                f"PEFT adapter lacks the head's dense layer {keys[ours]}: save the adapter "
                f"with modules_to_save={list(layout.modules_to_save)}"
            )
        if entry is not None and entry.shape != shape:
            raise ArtifactError(f"PEFT head {keys[ours]} has shape {entry.shape}, expected {shape}")
    return n
