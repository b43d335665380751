"""With no PELT module active, our forward equals the transformers model's own output."""

from __future__ import annotations

import pytest
import torch

from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from adapters.task_module import TaskAdapter
from adapters.tokenization import encode, load_tokenizer


def _compare(backbone, input_ids, mask, token_types, bank, slots) -> float:
    model = UniPELTModel(backbone).eval()
    with torch.no_grad():
        ours = model(input_ids, mask, bank, slots, token_types).hidden
        ref = backbone.model(
            input_ids=input_ids, attention_mask=mask, token_type_ids=token_types
        ).last_hidden_state
    real = mask.bool()
    return float((ours - ref)[real].abs().max())


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta"])
def test_tiny_random_encoders_match_transformers(fixture, request):
    backbone = request.getfixturevalue(fixture)
    torch.manual_seed(0)
    ids = torch.randint(3, 120, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ids[1, 6:] = backbone.config.pad_token_id
    types = torch.zeros_like(ids)
    head_only = TaskAdapter(MethodConfig.preset("head"), backbone, 2).bank()
    assert _compare(backbone, ids, mask, types, head_only, torch.zeros(3, dtype=torch.long)) < 1e-4


@pytest.mark.slow
def test_packaged_minilm_matches_transformers(minilm):
    tokenizer = load_tokenizer(minilm.path)
    batch = encode(
        tokenizer, ["a short one", "a rather longer sentence, padded less"], ["pair", "text b"]
    )
    empty_pool = TaskBank.allocate(4, minilm.dims, BankSizes())  # all slots empty
    slots = torch.tensor([0, 3])
    diff = _compare(
        minilm, batch.input_ids, batch.attention_mask, batch.token_type_ids, empty_pool, slots
    )
    assert diff < 1e-4


def test_fresh_lora_adapter_and_ia3_change_nothing(tiny_bert):
    """LoRA's B and the adapter's up-projection start at zero, (IA)^3's vectors at one:
    identity at initialisation."""
    ids = torch.randint(3, 120, (2, 7))
    mask = torch.ones_like(ids)
    task = TaskAdapter(MethodConfig.preset("al", ia3=True), tiny_bert, 2).bank()
    assert _compare(tiny_bert, ids, mask, None, task, torch.zeros(2, dtype=torch.long)) < 1e-5


def test_backbone_is_frozen_and_shared(tiny_bert):
    assert not any(p.requires_grad for p in tiny_bert.model.parameters())
    task = TaskAdapter(MethodConfig.preset("apl"), tiny_bert, 3)
    backbone_ids = {id(p) for p in tiny_bert.model.parameters()}
    assert not backbone_ids & {id(p) for p in task.parameters()}
