"""PEFT LoRA adapters convert exactly: our logits equal PeftModel's; export round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from adapters import peft_layout as P
from adapters.artifact import load_artifact, save_artifact
from adapters.backbone import Backbone, load_backbone
from adapters.errors import ArtifactError, BackboneMismatchError
from adapters.peft_export import export_peft
from adapters.peft_import import ImportOptions, import_peft, read_peft_dir
from adapters.training.inference import Predictor
from harness.peft_models import (
    load_peft,
    lora_effect,
    make_peft_adapter,
    peft_logits,
    saved_encoder,
)
from tests.conftest import tiny_backbone
from tests.peft_conversion import batch, convert

pytest.importorskip("peft")


def ours(predictor: Predictor, backbone: Backbone) -> torch.Tensor:
    return predictor.logits(*batch(backbone))


@pytest.mark.parametrize(
    "lora",
    [{}, {"target_modules": ["query"], "lora_alpha": 256}, {"layers_to_transform": [1]}],
    ids=["query-value", "query-only", "layer-1-only"],
)
def test_converted_adapter_equals_peft_forward(tiny, tmp_path, lora):
    model = make_peft_adapter(tiny.path, tmp_path / "peft", num_labels=3, **lora)
    predictor = convert(tmp_path / "peft", tiny, tmp_path / "ours", labels=["a", "b", "c"])
    reference = peft_logits(model, *batch(tiny))
    assert lora_effect(model, *batch(tiny)) > 1e-3  # LoRA moves logits 10x the tolerance
    assert (ours(predictor, tiny) - reference).abs().max() < 1e-4
    assert predictor.artifact.manifest.label_names == ["a", "b", "c"]


def test_regression_head_converts(tiny, tmp_path):
    model = make_peft_adapter(tiny.path, tmp_path / "peft", num_labels=1)
    predictor = convert(tmp_path / "peft", tiny, tmp_path / "ours")
    assert predictor.artifact.manifest.problem_type == "regression"
    assert (ours(predictor, tiny) - peft_logits(model, *batch(tiny))).abs().max() < 1e-4


def test_export_round_trips_through_peft(tiny, tmp_path):
    make_peft_adapter(tiny.path, tmp_path / "peft", num_labels=2, r=3, lora_alpha=5)
    predictor = convert(tmp_path / "peft", tiny, tmp_path / "ours", labels=["no", "yes"])
    export_peft(load_artifact(tmp_path / "ours", tiny), tiny, tmp_path / "back")
    again = load_peft(tiny.path, tmp_path / "back", num_labels=2)
    assert (peft_logits(again, *batch(tiny)) - ours(predictor, tiny)).abs().max() < 1e-4
    # and back again: labels and backbone identity travel in the safetensors metadata
    predictor2 = convert(tmp_path / "back", tiny, tmp_path / "ours2")
    assert predictor2.artifact.manifest.label_names == ["no", "yes"]
    assert torch.equal(ours(predictor2, tiny), ours(predictor, tiny))


def edited(peft_dir: Path, config: dict | None = None, rename: dict | None = None) -> tuple:
    config_bytes, blob = read_peft_dir(peft_dir)
    data = {**json.loads(config_bytes), **(config or {})}
    tensors = load_safetensors(blob)
    for old, new in (rename or {}).items():
        tensors[new] = tensors.pop(old)
    return json.dumps(data).encode(), save_safetensors(tensors)


@pytest.fixture(scope="module")
def bert_peft(tmp_path_factory) -> tuple[Backbone, Path]:
    path = saved_encoder(tiny_backbone("bert"), tmp_path_factory.mktemp("bert"))
    backbone = load_backbone(str(path))
    peft_dir = tmp_path_factory.mktemp("peft")
    make_peft_adapter(path, peft_dir, num_labels=2)
    return backbone, peft_dir


Q0 = "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"


@pytest.mark.parametrize(
    ("config", "rename", "reason"),
    [
        ({"use_dora": True}, None, "use_dora"),
        ({"use_rslora": True}, None, "use_rslora"),
        ({"target_modules": ["query", "key"]}, None, "['key']"),
        ({"target_modules": ".*query"}, None, "target_modules"),
        ({"bias": "all"}, None, "bias"),
        ({"init_lora_weights": "pissa"}, None, "base model's weights"),
        ({"peft_type": "BOFT"}, None, "only LORA"),
        ({"peft_type": {"LORA": 1}}, None, "only LORA"),  # not a name: refused, not a 500
        ({"peft_type": ["LORA"]}, None, "only LORA"),
        ({"task_type": "FEATURE_EXTRACTION"}, None, "SEQ_CLS"),
        ({"rank_pattern": {"query": 2}}, None, "rank_pattern"),
        (None, {Q0: Q0.replace(".query.", ".key.")}, "neither LoRA on query/value"),
        (None, {Q0: Q0.replace("attention.self.query", "output.dense")}, "neither LoRA"),
        (None, {"base_model.model.classifier.weight": "x.weight"}, "no trained classification"),
    ],
)
def test_what_cannot_be_represented_is_refused(bert_peft, config, rename, reason):
    backbone, peft_dir = bert_peft
    with pytest.raises(ArtifactError) as info:
        import_peft(*edited(peft_dir, config, rename), backbone, ImportOptions(task="t"))
    assert reason in str(info.value)


def test_another_backbone_is_refused(bert_peft, tmp_path):
    backbone, peft_dir = bert_peft
    other = saved_encoder(tiny_backbone("bert", seed=5), tmp_path / "other")
    config = edited(peft_dir, {"base_model_name_or_path": str(other)})
    with pytest.raises(BackboneMismatchError, match="trained on base model"):
        import_peft(*config, backbone, ImportOptions(task="t", load_base_model=True))
    unknown = edited(peft_dir, {"base_model_name_or_path": "someone/else"})
    with pytest.raises(BackboneMismatchError, match="someone/else"):
        import_peft(*unknown, backbone, ImportOptions(task="t"))


def test_exported_fingerprint_is_checked(bert_peft, tmp_path):
    backbone, peft_dir = bert_peft
    config_bytes, blob = read_peft_dir(peft_dir)
    meta = {"format": "pt", P.META_FINGERPRINT: "f" * 64}
    forged = save_safetensors(load_safetensors(blob), meta)
    with pytest.raises(BackboneMismatchError, match="ffffffffffff"):
        import_peft(config_bytes, forged, backbone, ImportOptions(task="t"))


def test_unknown_head_family_is_refused(tmp_path):
    path = saved_encoder(tiny_backbone("electra"), tmp_path / "electra")
    backbone = load_backbone(str(path))
    make_peft_adapter(path, tmp_path / "peft", num_labels=2)
    with pytest.raises(ArtifactError, match="electra sequence-classification head"):
        import_peft(*read_peft_dir(tmp_path / "peft"), backbone, ImportOptions(task="t"))


def test_label_count_must_match_the_head(bert_peft):
    backbone, peft_dir = bert_peft
    with pytest.raises(ArtifactError, match="3 labels given but the head has 2"):
        import_peft(*read_peft_dir(peft_dir), backbone, ImportOptions("t", ["a", "b", "c"]))


def test_export_refuses_tasks_that_are_not_lora_only(tiny_bert, tmp_path):
    from adapters.config import MethodConfig
    from harness.tasks import make_manifest, random_task

    cfg = MethodConfig.preset("apl")
    manifest = make_manifest("t", cfg, tiny_bert, ["a", "b"])
    save_artifact(tmp_path / "a", manifest, random_task(cfg, tiny_bert, 2))
    with pytest.raises(ArtifactError, match="LoRA-only"):
        export_peft(load_artifact(tmp_path / "a", tiny_bert), tiny_bert, tmp_path / "out")
