"""`unipelt import-peft` / `export-peft` on the packaged MiniLM with a real PEFT adapter."""

from __future__ import annotations

import pytest

from adapters.backbone import packaged_backbone_path
from adapters.tokenization import encode, load_tokenizer
from adapters.training.inference import Predictor
from cli.main import main
from harness.peft_models import load_peft, lora_effect, make_peft_adapter, peft_logits

pytestmark = pytest.mark.slow
TEXTS = ["a gripping, beautifully acted film", "dull and far too long", "not bad"]
PAIRS = ["it was fine", "I left early", "at all"]


def test_minilm_adapter_converts_and_round_trips(tmp_path, minilm, capsys):
    base = packaged_backbone_path()
    peft_dir = tmp_path / "peft"
    model = make_peft_adapter(base, peft_dir, num_labels=3, r=8, lora_alpha=16, lora_std=0.05)
    args = ["import-peft", str(tmp_path / "peft"), "--output", str(tmp_path / "art")]
    assert main([*args, "--task", "nli", "--labels", "yes,maybe,no", "--text-pair"]) == 0
    assert "task nli, method L r=8, yes, maybe, no" in capsys.readouterr().out
    batch = encode(load_tokenizer(minilm.path), TEXTS, PAIRS)
    inputs = (batch.input_ids, batch.attention_mask, batch.token_type_ids)
    predictor = Predictor.load(tmp_path / "art", minilm)
    assert predictor.artifact.manifest.tokenizer.text_pair
    assert lora_effect(model, *inputs) > 1e-2  # LoRA moves logits 100x the tolerance
    assert (predictor.logits(*inputs) - peft_logits(model, *inputs)).abs().max() < 1e-4
    assert (predictor.logits(*inputs) - peft_logits(model, *inputs)).abs().max() < 1e-4

    back = tmp_path / "back"
    assert main(["export-peft", str(tmp_path / "art"), "--output", str(back)]) == 0
    again = peft_logits(load_peft(base, back, num_labels=3), *inputs)
    assert (again - peft_logits(model, *inputs)).abs().max() < 1e-4


def test_refusals_are_one_line_and_exit_2(tmp_path, capsys):
    make_peft_adapter(packaged_backbone_path(), tmp_path / "peft", num_labels=2, use_rslora=True)
    code = main(["import-peft", str(tmp_path / "peft"), "--output", str(tmp_path / "art")])
    err = capsys.readouterr().err
    assert code == 2 and "use_rslora=True" in err and not (tmp_path / "art").exists()
