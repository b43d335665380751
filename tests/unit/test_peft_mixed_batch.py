"""Our mixed-task LoRA forward equals PEFT's mixed-batch inference (`adapter_names=[...]`) on
the same weights: the equality the benchmark prints before timing the two, asserted."""

from __future__ import annotations

import pytest
import torch

from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from harness.peft_models import adapter_name, build_peft_model
from harness.tasks import random_task

pytest.importorskip("peft", reason="peft is in the bench extra: pip install -e '.[bench]'")

LORA = MethodConfig.preset("l", lora_r=4, lora_alpha=8.0)  # ungated: scale alpha / r, as PEFT
TASKS = 3
ATOL = 1e-5  # float32


def _padded_batch(backbone, rows: int, longest: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 120, (rows, longest), generator=g)
    lengths = torch.randint(2, longest + 1, (rows,), generator=g)
    mask = (torch.arange(longest) < lengths.unsqueeze(1)).long()
    ids[mask == 0] = backbone.config.pad_token_id
    return ids, mask


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta"])
def test_mixed_lora_batch_equals_peft(fixture, request):
    backbone = request.getfixturevalue(fixture)
    weights = [random_task(LORA, backbone, 2, seed=i, noise=0.3) for i in range(TASKS)]
    peft = build_peft_model(backbone, weights, LORA.lora_r, LORA.lora_alpha)
    bank = TaskBank.from_tasks([(LORA, w) for w in weights], backbone.dims)
    ids, mask = _padded_batch(backbone, 9, 11, seed=0)
    tasks = torch.tensor([0, 1, 2, 2, 0, 1, 1, 0, 2])
    with torch.no_grad():
        ours = UniPELTModel(backbone).eval()(ids, mask, bank, tasks).hidden
        names = [adapter_name(int(t)) for t in tasks]
        theirs = peft(input_ids=ids, attention_mask=mask, adapter_names=names).last_hidden_state
        base = backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (theirs - base)[real].abs().max() > 100 * ATOL  # the adapters change the output
    torch.testing.assert_close(ours[real], theirs[real], rtol=0, atol=ATOL)
