"""Artifacts: round trip, and every malformed or mismatched artifact refused with its reason."""

from __future__ import annotations

import json

import pytest
import torch

from adapters.artifact import load_artifact, parse_artifact, save_artifact, serialize
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import ArtifactError, BackboneMismatchError
from adapters.model import UniPELTModel
from harness.tasks import artifact_bytes, make_manifest, random_task
from tests.bad_artifacts import BAD_ARTIFACTS, replace_tensors
from tests.conftest import tiny_backbone

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


@pytest.mark.parametrize(
    ("case", "mutate", "message"), BAD_ARTIFACTS, ids=[c[0] for c in BAD_ARTIFACTS]
)
def test_bad_artifacts_are_refused_with_reason(tiny_bert, case, mutate, message):
    manifest, blob = artifact_bytes("task-a", APL, tiny_bert)
    manifest, blob = mutate(manifest, blob)
    with pytest.raises(ArtifactError, match=message):
        parse_artifact(manifest, blob, tiny_bert)


def test_reserialised_weights_are_accepted(tiny_bert):
    """Control for the table: re-serialising with a fixed checksum alone is fine."""
    manifest, blob = replace_tensors(lambda t: None)(*artifact_bytes("task-a", APL, tiny_bert))
    assert parse_artifact(manifest, blob, tiny_bert).manifest.task == "task-a"


def test_full_finetune_manifest_is_refused(tiny_bert):
    manifest, blob = artifact_bytes("task-a", APL, tiny_bert)
    data = json.loads(manifest)
    data["method"] = {"adapter": False, "prefix": False, "lora": False, "full_finetune": True}
    with pytest.raises(ArtifactError, match="not an adapter"):
        parse_artifact(json.dumps(data).encode(), blob, tiny_bert)


def test_other_backbone_is_refused(tiny_bert):
    other = tiny_backbone("bert", seed=7)  # same shapes, different weights
    manifest, blob = artifact_bytes("task-a", APL, other)
    with pytest.raises(BackboneMismatchError, match="trained on backbone"):
        parse_artifact(manifest, blob, tiny_bert)


def test_serialize_fills_checksum(tiny_bert):
    weights = random_task(APL, tiny_bert, 2)
    manifest, blob = serialize(make_manifest("x", APL, tiny_bert, ["n", "p"]), weights)
    assert parse_artifact(manifest, blob, tiny_bert).manifest.task == "x"
