"""A table of malformed or mismatched artifacts: (id, mutation of (manifest, weights), reason)."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

Mutation = Callable[[bytes, bytes], tuple[bytes, bytes]]


def tamper_manifest(change: Callable[[dict], object]) -> Mutation:
    def apply(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
        data = json.loads(manifest)
        change(data)
        return json.dumps(data).encode(), blob

    return apply


def _with_checksum(manifest: bytes, blob: bytes) -> bytes:
    data = json.loads(manifest)
    data["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    return json.dumps(data).encode()


def replace_tensors(change: Callable[[dict], object]) -> Mutation:
    """Re-serialise the weights after `change(dict)` and fix the checksum, so only it fails."""

    def apply(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
        tensors = load_safetensors(blob)
        change(tensors)
        new_blob = save_safetensors(tensors)
        return _with_checksum(manifest, new_blob), new_blob

    return apply


def pickle_payload(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
    payload = pickle.dumps({"lora_q_A": [1, 2, 3]})
    return _with_checksum(manifest, payload), payload


def truncated(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
    short = blob[: len(blob) // 2]
    return _with_checksum(manifest, short), short


def huge_declared_size(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
    """A safetensors header that claims a 2**40-byte tensor the file does not hold."""
    header = json.dumps(
        {"lora_q_A": {"dtype": "F32", "shape": [2**18, 2**20], "data_offsets": [0, 2**40]}}
    ).encode()
    fake = len(header).to_bytes(8, "little") + header + b"\0" * 64
    return _with_checksum(manifest, fake), fake


def huge_integer(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
    """An integer of 5,000 digits: over Python's int-from-text limit, so json.loads raises."""
    data = json.loads(manifest)
    data["trainable_parameters"] = 0
    text = json.dumps(data).replace(
        '"trainable_parameters": 0', '"trainable_parameters": ' + "9" * 5000
    )
    return text.encode(), blob


def with_metadata(size: int) -> Mutation:
    """The same tensors, saved with a safetensors __metadata__ string of `size` characters."""

    def apply(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
        new_blob = save_safetensors(load_safetensors(blob), metadata={"note": "x" * size})
        return _with_checksum(manifest, new_blob), new_blob

    return apply


def _nan(tensors: dict) -> None:
    tensors["head_out_w"].view(-1)[0] = float("nan")


def _off_backbone(d: dict) -> None:
    d["backbone"]["fingerprint"] = "f" * 64


def _first_lora_key(tensors: dict) -> str:
    return next(k for k in tensors if k.startswith("lora_q_A"))


def _wrong_shape(tensors: dict) -> None:
    shape = tensors["head_dense_w"].shape
    tensors["head_dense_w"] = torch.zeros(shape[0] + 1, shape[1])


def _int_dtype(tensors: dict) -> None:
    tensors["head_out_b"] = tensors["head_out_b"].to(torch.int32)


BAD_ARTIFACTS: list[tuple[str, Mutation, str]] = [
    ("not-json", lambda m, b: (b"{nope", b), "not valid JSON"),
    ("json-array", lambda m, b: (b"[1, 2]", b), "JSON object"),
    ("path-traversal-task", tamper_manifest(lambda d: d.update(task="../etc")), "task"),
    ("unknown-field", tamper_manifest(lambda d: d.update(extra=1)), "extra"),
    ("future-format", tamper_manifest(lambda d: d.update(format_version=99)), "format_version"),
    ("bad-method", tamper_manifest(lambda d: d["method"].update(lora_r=0)), "lora_r"),
    ("one-label", tamper_manifest(lambda d: d.update(label_names=["x"])), "two label_names"),
    ("wrong-backbone", tamper_manifest(_off_backbone), "trained on backbone"),
    ("checksum-mismatch", lambda m, b: (m, b[:-1] + bytes([b[-1] ^ 1])), "sha256"),
    ("truncated", truncated, "safetensors"),
    ("pickle", pickle_payload, "safetensors"),
    ("huge-declared-size", huge_declared_size, "safetensors"),
    ("missing-tensor", replace_tensors(lambda t: t.pop("head_out_b")), "lack tensors"),
    ("extra-tensor", replace_tensors(lambda t: t.update(evil=torch.zeros(1))), "unexpected"),
    ("wrong-shape", replace_tensors(_wrong_shape), "shape"),
    ("nan-weights", replace_tensors(_nan), "NaN"),
    ("int-dtype", replace_tensors(_int_dtype), "dtype"),
    ("integer-over-4300-digits", huge_integer, "not valid JSON"),
    ("created-at-not-a-date", tamper_manifest(lambda d: d.update(created_at="soon")), "created_at"),
    ("20000-metrics", tamper_manifest(lambda d: d.update(metrics=_many_metrics())), "metrics"),
    ("label-100k-chars", tamper_manifest(lambda d: d["label_names"].append("x" * 10**5)), "label"),
    ("empty-label", tamper_manifest(lambda d: d["label_names"].append("")), "label"),
    ("blank-label", tamper_manifest(lambda d: d["label_names"].append("  ")), "whitespace"),
    ("blank-metric", tamper_manifest(lambda d: d.update(metrics={" ": 1.0})), "whitespace"),
    ("metric-nan-string", tamper_manifest(lambda d: d.update(metrics={"acc": "NaN"})), "number"),
    ("metric-inf-string", tamper_manifest(lambda d: d.update(metrics={"f1": "inf"})), "number"),
    ("metric-nan", tamper_manifest(lambda d: d.update(metrics={"acc": float("nan")})), "finite"),
    ("metric-number-string", tamper_manifest(lambda d: d.update(metrics={"a": "0.9"})), "number"),
    ("metric-bool", tamper_manifest(lambda d: d.update(metrics={"acc": True})), "number"),
    (
        "parameters-10**400",
        tamper_manifest(lambda d: d.update(trainable_parameters=10**400)),
        "trainable",
    ),
    (
        "lora-scale-1e20",
        tamper_manifest(lambda d: d["method"].update(lora_alpha=1.37e21)),
        "lora_alpha / lora_r",
    ),
    (
        "lora-alpha-nan",
        tamper_manifest(lambda d: d["method"].update(lora_alpha=float("nan"))),
        "lora_alpha",
    ),
    ("metadata-1mib", with_metadata(2**20), "header"),
    ("metadata-100kib", with_metadata(100 * 2**10), "__metadata__"),
]


def _many_metrics() -> dict[str, float]:
    return {f"m{i}": 0.5 for i in range(20_000)}
