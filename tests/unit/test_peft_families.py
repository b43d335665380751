"""PEFT conversion on the other families. DeBERTa-v2/v3: LoRA on query_proj / value_proj and
(IA)^3 on PEFT's default modules convert exactly (our logits equal PeftModel's), also where
the shared query / key projections reach the relative positions, and export round-trips;
ModernBERT: LoRA and (IA)^3 are refused with the reason."""

from __future__ import annotations

import pytest
import torch

from adapters.artifact import load_artifact
from adapters.backbone import Backbone, load_backbone
from adapters.errors import ArtifactError
from adapters.peft_export import export_peft
from adapters.peft_import import ImportOptions, import_peft, read_peft_dir
from harness.peft_models import (
    load_peft,
    lora_effect,
    make_peft_adapter,
    make_peft_ia3_adapter,
    peft_logits,
    saved_encoder,
)
from tests.conftest import tiny_deberta, tiny_modernbert
from tests.peft_conversion import batch, convert

pytest.importorskip("peft")
LORA = {"target_modules": ["query_proj", "value_proj"], "modules_to_save": ["pooler"]}


@pytest.fixture(scope="module", params=["v2", "v3"])
def deberta(request, tmp_path_factory) -> Backbone:
    """v2: separate position projections; v3: shared ones, which LoRA on query_proj reaches."""
    path = saved_encoder(tiny_deberta(request.param), tmp_path_factory.mktemp(request.param))
    return load_backbone(str(path))


def test_lora_converts_exactly_and_round_trips(deberta, tmp_path):
    model = make_peft_adapter(deberta.path, tmp_path / "peft", num_labels=3, **LORA)
    predictor = convert(tmp_path / "peft", deberta, tmp_path / "ours", labels=["a", "b", "c"])
    reference = peft_logits(model, *batch(deberta))
    assert lora_effect(model, *batch(deberta)) > 1e-3
    assert (predictor.logits(*batch(deberta)) - reference).abs().max() < 1e-4

    export_peft(load_artifact(tmp_path / "ours", deberta), deberta, tmp_path / "back")
    again = load_peft(deberta.path, tmp_path / "back", num_labels=3)
    assert (peft_logits(again, *batch(deberta)) - reference).abs().max() < 1e-4


def test_ia3_converts_exactly(deberta, tmp_path):
    """PEFT's default for deberta-v2: key_proj, value_proj and output.dense (feed-forward)."""
    model = make_peft_ia3_adapter(
        deberta.path, tmp_path / "peft", num_labels=2, modules_to_save=["pooler"]
    )
    predictor = convert(tmp_path / "peft", deberta, tmp_path / "ours")
    reference = peft_logits(model, *batch(deberta))
    assert (predictor.logits(*batch(deberta)) - reference).abs().max() < 1e-4

    export_peft(load_artifact(tmp_path / "ours", deberta), deberta, tmp_path / "back")
    again = load_peft(deberta.path, tmp_path / "back", num_labels=2)
    assert (peft_logits(again, *batch(deberta)) - reference).abs().max() < 1e-4


def test_a_head_without_its_pooler_is_refused(deberta, tmp_path):
    """PEFT saves `classifier` only by default; DeBERTa's pooler is not in the encoder
    checkpoint, so its values would be lost."""
    make_peft_adapter(deberta.path, tmp_path / "peft", target_modules=["query_proj"])
    with pytest.raises(ArtifactError, match=r"pooler\.dense.*modules_to_save"):
        import_peft(*read_peft_dir(tmp_path / "peft"), deberta, ImportOptions(task="t"))


def test_bert_module_names_are_refused_on_deberta(deberta, tmp_path):
    make_peft_adapter(deberta.path, tmp_path / "peft", **LORA)
    config, weights = read_peft_dir(tmp_path / "peft")
    renamed = config.replace(b'"query_proj"', b'"query"')
    with pytest.raises(ArtifactError, match=r"no module is named 'query'.*'query_proj'"):
        import_peft(renamed, weights, deberta, ImportOptions(task="t"))


@pytest.fixture(scope="module")
def modernbert(tmp_path_factory) -> Backbone:
    path = saved_encoder(tiny_modernbert(), tmp_path_factory.mktemp("modernbert"))
    return load_backbone(str(path))


def test_modernbert_ia3_is_refused_with_the_reason(modernbert, tmp_path):
    make_peft_ia3_adapter(
        modernbert.path,
        tmp_path / "peft",
        num_labels=2,
        target_modules=["Wqkv", "Wo"],
        feedforward_modules=["Wo"],
    )
    with pytest.raises(ArtifactError) as info:
        import_peft(*read_peft_dir(tmp_path / "peft"), modernbert, ImportOptions(task="t"))
    reason = str(info.value)
    assert "modernbert family" in reason and "(IA)^3" in reason and "Wqkv scales q" in reason
    assert "LayerNorm" in reason  # its classification head, too


def test_modernbert_lora_is_refused_with_the_reason(modernbert, tmp_path):
    make_peft_adapter(modernbert.path, tmp_path / "peft", target_modules=["Wqkv"])
    with pytest.raises(ArtifactError, match="an update of k has no place to go"):
        import_peft(*read_peft_dir(tmp_path / "peft"), modernbert, ImportOptions(task="t"))


def test_the_tiny_adapters_make_a_difference(deberta, tmp_path):
    """Control: the converted (IA)^3 vectors move the logits past the tolerance."""
    model = make_peft_ia3_adapter(
        deberta.path, tmp_path / "peft", num_labels=2, modules_to_save=["pooler"]
    )
    with_ia3 = peft_logits(model, *batch(deberta))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ia3_l" in name:
                p.fill_(1.0)
    assert (peft_logits(model, *batch(deberta)) - with_ia3).abs().max() > 1e-3


def test_the_check_without_a_backbone_reads_deberta_names(deberta, tmp_path):
    """`unipelt push` checks a PEFT config before upload, with no backbone at hand."""
    from adapters.peft_import import check_config, parse_config

    make_peft_adapter(deberta.path, tmp_path / "peft", **LORA)
    fmt, settings = check_config(parse_config(read_peft_dir(tmp_path / "peft")[0]))
    assert fmt.peft_type == "LORA" and settings.placement.targets == {"query", "value"}
