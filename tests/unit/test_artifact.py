"""Artifacts: round trip, and every malformed or mismatched artifact refused with its reason."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save as save_safetensors

from adapters.artifact import load_artifact, parse_artifact, save_artifact, serialize
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import ArtifactError, BackboneMismatchError
from adapters.model import UniPELTModel
from tests.conftest import tiny_backbone
from tests.helpers import artifact_bytes, make_manifest, random_task

APL = MethodConfig.preset("apl")


def test_round_trip_gives_identical_outputs(tiny_bert, tmp_path):
    weights = random_task(APL, tiny_bert, 3)
    manifest = make_manifest("sst2", APL, tiny_bert, ["a", "b", "c"])
    save_artifact(tmp_path / "art", manifest, weights)
    loaded = load_artifact(tmp_path / "art", tiny_bert)
    assert loaded.manifest.task == "sst2" and loaded.config == APL
    model = UniPELTModel(tiny_bert).eval()
    ids = torch.randint(3, 120, (2, 8))
    mask = torch.ones_like(ids)
    slots = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        a = model(ids, mask, TaskBank.from_tasks([(APL, weights)], tiny_bert.dims), slots)
        b = model(ids, mask, TaskBank.from_tasks([(APL, loaded.weights)], tiny_bert.dims), slots)
    assert torch.equal(a.logits, b.logits)
    assert not list(tmp_path.glob(".art.*"))  # no temp directory left behind


def _tamper_manifest(change):
    def apply(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
        data = json.loads(manifest)
        change(data)
        return json.dumps(data).encode(), blob

    return apply


def _replace_tensors(change):
    """Re-serialise the weights after `change(dict)` and fix the checksum, so only it fails."""

    def apply(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
        from safetensors.torch import load

        tensors = load(blob)
        change(tensors)
        new_blob = save_safetensors(tensors)
        data = json.loads(manifest)
        import hashlib

        data["weights_sha256"] = hashlib.sha256(new_blob).hexdigest()
        return json.dumps(data).encode(), new_blob

    return apply


def _pickle_blob(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
    import hashlib

    payload = pickle.dumps({"lora_q_A": [1, 2, 3]})
    data = json.loads(manifest)
    data["weights_sha256"] = hashlib.sha256(payload).hexdigest()
    return json.dumps(data).encode(), payload


BAD_ARTIFACTS = [  # (id, mutation, expected message fragment)
    ("not-json", lambda m, b: (b"{nope", b), "not valid JSON"),
    ("json-array", lambda m, b: (b"[1, 2]", b), "JSON object"),
    ("bad-task-name", _tamper_manifest(lambda d: d.update(task="../etc")), "task"),
    ("unknown-field", _tamper_manifest(lambda d: d.update(extra=1)), "extra"),
    ("old-format", _tamper_manifest(lambda d: d.update(format_version=99)), "format_version"),
    ("bad-method", _tamper_manifest(lambda d: d["method"].update(lora_r=0)), "lora_r"),
    (
        "full-ft",
        _tamper_manifest(
            lambda d: d.update(
                method={"adapter": False, "prefix": False, "lora": False, "full_finetune": True}
            )
        ),
        "not an adapter",
    ),
    ("one-label", _tamper_manifest(lambda d: d.update(label_names=["x"])), "two label_names"),
    ("checksum", lambda m, b: (m, b[:-1] + bytes([b[-1] ^ 1])), "sha256"),
    ("valid-control", _replace_tensors(lambda t: None), None),  # re-serialised, still valid
    ("missing-tensor", _replace_tensors(lambda t: t.pop("lora_q_A")), "lack tensors"),
    ("extra-tensor", _replace_tensors(lambda t: t.update(evil=torch.zeros(1))), "unexpected"),
    ("wrong-shape", _replace_tensors(lambda t: t.update(lora_q_A=torch.zeros(2, 32, 4))), "shape"),
    ("nan", _replace_tensors(lambda t: t["adapter_up_w"].view(-1)[0:1].fill_(float("nan"))), "NaN"),
    (
        "int-dtype",
        _replace_tensors(lambda t: t.update(gate_b=torch.zeros(2, 4, dtype=torch.int32))),
        "dtype",
    ),
    ("pickle", _pickle_blob, "safetensors"),
]


@pytest.mark.parametrize(
    ("case", "mutate", "message"), BAD_ARTIFACTS, ids=[c[0] for c in BAD_ARTIFACTS]
)
def test_bad_artifacts_are_refused_with_reason(tiny_bert, case, mutate, message):
    manifest, blob = artifact_bytes("task-a", APL, tiny_bert)
    manifest, blob = mutate(manifest, blob)
    if message is None:
        parse_artifact(manifest, blob, tiny_bert)
        return
    with pytest.raises(ArtifactError, match=message):
        parse_artifact(manifest, blob, tiny_bert)


def test_truncated_blob_is_refused(tiny_bert):
    manifest, blob = artifact_bytes("task-a", APL, tiny_bert)
    short = blob[: len(blob) // 2]
    import hashlib

    data = json.loads(manifest)
    data["weights_sha256"] = hashlib.sha256(short).hexdigest()
    with pytest.raises(ArtifactError, match="safetensors"):
        parse_artifact(json.dumps(data).encode(), short, tiny_bert)


def test_other_backbone_is_refused(tiny_bert):
    other = tiny_backbone("bert", seed=7)  # same shapes, different weights
    manifest, blob = artifact_bytes("task-a", APL, other)
    with pytest.raises(BackboneMismatchError, match="trained on backbone"):
        parse_artifact(manifest, blob, tiny_bert)


def test_serialize_fills_checksum(tiny_bert):
    weights = random_task(APL, tiny_bert, 2)
    manifest, blob = serialize(make_manifest("x", APL, tiny_bert, ["n", "p"]), weights)
    assert parse_artifact(manifest, blob, tiny_bert).manifest.task == "x"
