"""PEFT (IA)^3 adapters convert exactly: our logits equal PeftModel's, in a mixed batch with
UniPELT rows too; export round-trips; what this format cannot hold is refused."""

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
from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.errors import ArtifactError
from adapters.model import UniPELTModel
from adapters.peft_export import export_peft
from adapters.peft_import import ImportOptions, import_peft, read_peft_dir
from adapters.training.inference import Predictor
from harness.peft_models import load_peft, make_peft_ia3_adapter, peft_logits, saved_encoder
from harness.tasks import random_task
from tests.conftest import tiny_backbone
from tests.peft_conversion import batch, convert

pytest.importorskip("peft")


def ia3_effect(model, ids, mask, types) -> float:
    """Largest logit change the (IA)^3 vectors make (set to ones for the comparison)."""
    with_ia3 = peft_logits(model, ids, mask, types)
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if "ia3_l" in n}
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n in saved:
            params[n].fill_(1.0)
        without = peft_logits(model, ids, mask, types)
        for n, value in saved.items():
            params[n].copy_(value)
    return float((with_ia3 - without).abs().max())


@pytest.mark.parametrize(
    "ia3",
    [
        {},  # PEFT's default for the family: key, value and output.dense (feed-forward)
        {"target_modules": ["key", "value"], "feedforward_modules": []},
        {"target_modules": ["value", "attention.output.dense"]},
    ],
    ids=["default", "key-value", "value-attention-output"],
)
def test_converted_adapter_equals_peft_forward(tiny, tmp_path, ia3):
    model = make_peft_ia3_adapter(tiny.path, tmp_path / "peft", num_labels=3, **ia3)
    predictor = convert(tmp_path / "peft", tiny, tmp_path / "ours", labels=["a", "b", "c"])
    reference = peft_logits(model, *batch(tiny))
    assert ia3_effect(model, *batch(tiny)) > 1e-3  # the vectors move logits 10x the tolerance
    assert (predictor.logits(*batch(tiny)) - reference).abs().max() < 1e-4
    assert predictor.artifact.config == MethodConfig.preset("ia3")


def test_regression_head_converts(tiny, tmp_path):
    model = make_peft_ia3_adapter(tiny.path, tmp_path / "peft", num_labels=1)
    predictor = convert(tmp_path / "peft", tiny, tmp_path / "ours")
    assert predictor.artifact.manifest.problem_type == "regression"
    assert (predictor.logits(*batch(tiny)) - peft_logits(model, *batch(tiny))).abs().max() < 1e-4


def test_rows_of_a_converted_task_in_a_mixed_batch_with_unipelt_rows(tiny, tmp_path):
    """The (IA)^3 rows of a batch that also holds APL rows give PeftModel's logits."""
    model = make_peft_ia3_adapter(tiny.path, tmp_path / "peft", num_labels=3)
    manifest, weights = import_peft(
        *read_peft_dir(tmp_path / "peft"), tiny, ImportOptions(task="t", labels=["a", "b", "c"])
    )
    apl = MethodConfig.preset("apl")
    bank = TaskBank.from_tasks(
        [(manifest.method_config, weights), (apl, random_task(apl, tiny, 2))], tiny.dims
    )
    ids, mask, types = batch(tiny)
    ids, mask, types = (torch.cat([t, t]) for t in (ids, mask, types))
    slots = torch.tensor([0, 1, 0, 1, 0, 1])
    with torch.no_grad():
        out = UniPELTModel(tiny).eval()(ids, mask, bank, slots, types)
    reference = peft_logits(model, ids[slots == 0], mask[slots == 0], types[slots == 0])
    assert (out.logits[slots == 0] - reference).abs().max() < 1e-4


def test_export_round_trips_through_peft(tiny, tmp_path):
    make_peft_ia3_adapter(tiny.path, tmp_path / "peft", num_labels=2)
    predictor = convert(tmp_path / "peft", tiny, tmp_path / "ours", labels=["no", "yes"])
    export_peft(load_artifact(tmp_path / "ours", tiny), tiny, tmp_path / "back")
    config = json.loads((tmp_path / "back" / P.CONFIG_FILE).read_text())
    assert (config["peft_type"], config["feedforward_modules"]) == ("IA3", ["output.dense"])
    again = load_peft(tiny.path, tmp_path / "back", num_labels=2)
    assert (peft_logits(again, *batch(tiny)) - predictor.logits(*batch(tiny))).abs().max() < 1e-4
    predictor2 = convert(tmp_path / "back", tiny, tmp_path / "ours2")
    assert predictor2.artifact.manifest.label_names == ["no", "yes"]
    assert torch.equal(predictor2.logits(*batch(tiny)), predictor.logits(*batch(tiny)))


def test_export_writes_a_task_trained_here(tiny_bert, tmp_path):
    """A task of ours with (IA)^3 alone is a PEFT (IA)^3 adapter of PEFT's default modules."""
    from harness.tasks import make_manifest

    path = saved_encoder(tiny_bert, tmp_path / "bert")
    backbone = load_backbone(str(path))
    cfg = MethodConfig.preset("ia3")
    save_artifact(
        tmp_path / "a", make_manifest("t", cfg, backbone, ["a", "b"]), random_task(cfg, backbone, 2)
    )
    artifact = load_artifact(tmp_path / "a", backbone)
    export_peft(artifact, backbone, tmp_path / "out")
    model = load_peft(path, tmp_path / "out", num_labels=2)
    ours = Predictor.load(tmp_path / "a", backbone).logits(*batch(backbone))
    assert (peft_logits(model, *batch(backbone)) - ours).abs().max() < 1e-4


@pytest.fixture(scope="module")
def bert_ia3(tmp_path_factory) -> tuple[Backbone, Path]:
    path = saved_encoder(tiny_backbone("bert"), tmp_path_factory.mktemp("bert"))
    peft_dir = tmp_path_factory.mktemp("peft")
    make_peft_ia3_adapter(path, peft_dir, num_labels=2)
    return load_backbone(str(path)), peft_dir


def edited(peft_dir: Path, config: dict | None = None, add: dict | None = None) -> tuple:
    config_bytes, blob = read_peft_dir(peft_dir)
    data = {**json.loads(config_bytes), **(config or {})}
    return json.dumps(data).encode(), save_safetensors({**load_safetensors(blob), **(add or {})})


LORA_A = P.layer_key("bert", 0, "attention.self.query", "lora_A.weight")


@pytest.mark.parametrize(
    ("config", "add", "reason"),
    [
        ({"target_modules": ["query", "value"]}, None, "['query']"),
        ({"target_modules": ".*key"}, None, "target_modules"),
        ({"feedforward_modules": ["key", "output.dense"]}, None, "input of attention.self.key"),
        ({"feedforward_modules": []}, None, "output of attention.output.dense"),
        ({"feedforward_modules": ["query"]}, None, "['query'] are not modules it holds"),
        ({"feedforward_modules": "output.*"}, None, "regular expression"),
        ({"fan_in_fan_out": True}, None, "fan_in_fan_out"),
        ({"target_modules": ["key"]}, None, "target_modules=['key'] leaves out"),
        (None, {LORA_A: torch.zeros(4, 32)}, "neither (IA)^3"),
        ({"peft_type": "VERA"}, None, "only LORA and IA3"),
    ],
)
def test_what_cannot_be_represented_is_refused(bert_ia3, config, add, reason):
    backbone, peft_dir = bert_ia3
    with pytest.raises(ArtifactError) as info:
        import_peft(*edited(peft_dir, config, add), backbone, ImportOptions(task="t"))
    assert reason in str(info.value)


def test_export_refuses_tasks_of_more_than_ia3(tiny_bert, tmp_path):
    from harness.tasks import make_manifest

    cfg = MethodConfig.preset("ia3", bitfit=True)
    manifest = make_manifest("t", cfg, tiny_bert, ["a", "b"])
    save_artifact(tmp_path / "a", manifest, random_task(cfg, tiny_bert, 2))
    with pytest.raises(ArtifactError, match=r"\(IA\)\^3-only"):
        export_peft(load_artifact(tmp_path / "a", tiny_bert), tiny_bert, tmp_path / "out")
