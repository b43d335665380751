"""A PEFT LoRA adapter on a tiny RoBERTa built from a config, pushed as PEFT parts to a real
service (uvicorn + Redis) running that RoBERTa: the served answers are PeftModel's logits."""

from __future__ import annotations

import httpx
import pytest
import torch

from adapters.tokenization import load_tokenizer
from cli.main import main
from harness.peft_models import (
    lora_effect,
    make_peft_adapter,
    peft_logits,
    save_word_tokenizer,
    saved_encoder,
)
from harness.service_process import start_service
from tests.conftest import tiny_backbone

pytestmark = [pytest.mark.service, pytest.mark.slow]
TEXTS = ["w1 w2 w3 w4 w5", "w7 w70 w9", "w100 w3 w55 w12 w13 w14 w15"]


def test_served_tiny_roberta_adapter_equals_peft_forward(tmp_path, capsys):
    base = saved_encoder(tiny_backbone("roberta", seed=1), tmp_path / "roberta")
    save_word_tokenizer(base, vocab_size=120)
    model = make_peft_adapter(base, tmp_path / "peft", num_labels=3)
    service = start_service(tmp_path / "svc", {"UNIPELT_BACKBONE": str(base)})
    try:
        push = ["push", str(tmp_path / "peft"), "--url", service.url, "--task", "tiny"]
        assert main([*push, "--labels", "a,b,c"]) == 0, capsys.readouterr().err
        served = httpx.post(
            f"{service.url}/v1/tiny/predict", json={"inputs": TEXTS}, timeout=60
        ).json()["predictions"]
    finally:
        service.stop()
    enc = load_tokenizer(base)(TEXTS, padding=True, return_tensors="pt")
    inputs = (enc["input_ids"], enc["attention_mask"], None)
    reference = peft_logits(model, *inputs)
    assert lora_effect(model, *inputs) > 1e-2
    got = torch.tensor([[row["scores"][n] for n in "abc"] for row in served])
    # probabilities from equal logits: compare the logits back, up to softmax's shift
    assert ((got.log() - got.log()[:, :1]) - (reference - reference[:, :1])).abs().max() < 1e-4
