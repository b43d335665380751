"""float16 / bfloat16: artifacts stored in half precision, banks and backbones run in it.

Tolerance (justified in docs/architecture.md): |low precision - float32| <= 8 u max(1, |ref|)
elementwise-max, with u the format's unit roundoff (bfloat16 2^-8, float16 2^-11), for the
logits and the last hidden states; the same bound between a row in a mixed batch and the row
run alone in that precision.
"""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import torch
from safetensors.torch import save as save_safetensors

from adapters.artifact import cast_weights, parse_artifact, serialize
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import ArtifactError
from adapters.model import UniPELTModel
from adapters.precision import precision_bound
from harness.tasks import make_manifest, random_task

P = MethodConfig.preset
CFG = P("apl", lora_r=4, bottleneck=8, prefix_length=3)
TASKS = [
    (P("apl"), 2),
    (P("a", bottleneck=7), 3),
    (P("p", prefix_length=4), 2),
    (P("l", lora_r=3), 5),
    (P("apl-nogate", adapter_non_linearity="gelu"), 2),
    (P("bitfit"), 4),
    (P("ia3"), 3),
]
LOW = pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_artifact_keeps_its_half_precision_storage(tiny_bert, name):
    weights = random_task(CFG, tiny_bert, 2)
    manifest_bytes, blob = serialize(
        make_manifest("t", CFG, tiny_bert, ["a", "b"]), cast_weights(weights, name)
    )
    assert json.loads(manifest_bytes)["dtype"] == name
    artifact = parse_artifact(manifest_bytes, blob, tiny_bert)
    assert {str(t.dtype) for t in artifact.weights.values()} == {f"torch.{name}"}
    assert artifact.nbytes * 2 == sum(t.numel() * 4 for t in weights.values())


def test_manifest_dtype_must_match_the_tensors(tiny_bert):
    weights = cast_weights(random_task(CFG, tiny_bert, 2), "float16")
    blob = save_safetensors(weights)
    manifest = make_manifest("t", CFG, tiny_bert, ["a", "b"]).model_copy(
        update={"weights_sha256": hashlib.sha256(blob).hexdigest()}
    )
    assert manifest.dtype == "float32"
    with pytest.raises(ArtifactError, match=r"has dtype torch\.float16; the manifest says float32"):
        parse_artifact(manifest.model_dump_json().encode(), blob, tiny_bert)


@pytest.mark.parametrize("name", ["float32", "float16", "bfloat16"])
def test_nan_and_inf_are_refused_and_large_finite_values_kept(tiny_bert, name):
    dtype = getattr(torch, name)
    big = torch.finfo(dtype).max

    def parse(fill: list[float]) -> None:
        weights = cast_weights(random_task(CFG, tiny_bert, 2), name)
        head = weights["head_out_w"].view(-1)
        head[: len(fill)] = torch.tensor(fill, dtype=dtype)
        parse_artifact(*serialize(make_manifest("t", CFG, tiny_bert, ["a", "b"]), weights), None)

    parse([big] * 40 + [-big])  # sums past the format's range: still finite values
    for bad in ([float("nan")], [float("inf")], [float("-inf")], [float("inf"), float("-inf")]):
        with pytest.raises(ArtifactError, match="NaN or Inf"):
            parse(bad)


def test_a_digest_already_computed_is_checked_against_the_manifest(tiny_bert):
    manifest_bytes, blob = serialize(
        make_manifest("t", CFG, tiny_bert, ["a", "b"]), random_task(CFG, tiny_bert, 2)
    )
    digest = hashlib.sha256(blob).hexdigest()
    assert parse_artifact(manifest_bytes, blob, tiny_bert, weights_sha256=digest).weights
    with pytest.raises(ArtifactError, match="does not match the manifest"):
        parse_artifact(manifest_bytes, blob, tiny_bert, weights_sha256="0" * 64)


def test_serialize_refuses_mixed_dtypes(tiny_bert):
    weights = random_task(CFG, tiny_bert, 2)
    weights["head_out_b"] = weights["head_out_b"].half()
    with pytest.raises(ArtifactError, match="one of"):
        serialize(make_manifest("t", CFG, tiny_bert, ["a", "b"]), weights)


@LOW
def test_slot_write_casts_to_the_bank_dtype(tiny_bert, dtype):
    weights = random_task(CFG, tiny_bert, 2)
    stored = {k: v.to(dtype) for k, v in weights.items()}
    from_half = TaskBank.from_tasks([(CFG, stored)], tiny_bert.dims)  # float32 bank
    from_rounded = TaskBank.from_tasks(
        [(CFG, {k: v.float() for k, v in stored.items()})], tiny_bert.dims
    )
    for name, t in from_half.tensors.items():
        assert t.dtype == torch.float32
        assert torch.equal(t, from_rounded.tensors[name]), name
    low = TaskBank.from_tasks([(CFG, weights)], tiny_bert.dims, dtype=dtype)
    assert {t.dtype for t in low.tensors.values()} == {dtype}


@LOW
def test_low_precision_forward_is_within_tolerance_of_float32(tiny_bert, dtype):
    tasks = [(cfg, random_task(cfg, tiny_bert, n, seed=i)) for i, (cfg, n) in enumerate(TASKS)]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 120, (16, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[::3, 7:] = 0
    slots = torch.randint(0, len(TASKS), (16,), generator=g)
    low_model = UniPELTModel(copy.deepcopy(tiny_bert)).to(dtype=dtype).eval()
    low_bank = TaskBank.from_tasks(tasks, tiny_bert.dims, dtype=dtype)
    with torch.no_grad():
        ref = UniPELTModel(tiny_bert).eval()(
            ids, mask, TaskBank.from_tasks(tasks, tiny_bert.dims), slots
        )
        low = low_model(ids, mask, low_bank, slots)
        assert low.logits.dtype == dtype
        for got, want in ((low.logits, ref.logits), (low.hidden, ref.hidden)):
            diff = float((got.float() - want).abs().max())
            assert diff <= precision_bound(dtype, want), (diff, precision_bound(dtype, want))
        for i in range(16):  # batch invariance in this precision
            n, k = int(mask[i].sum()), int(low.num_labels[i])
            alone = low_model(ids[i : i + 1, :n], mask[i : i + 1, :n], low_bank, slots[i : i + 1])
            diff = float((alone.logits[0, :k] - low.logits[i, :k]).float().abs().max())
            assert diff <= precision_bound(dtype, ref.logits), (i, diff)
