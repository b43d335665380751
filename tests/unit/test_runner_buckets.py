"""Shape buckets are exact: padding a batch to the graph buckets (more rows, more tokens, bank
sizes rounded up) gives every real row the logits of the batch at its exact sizes."""

from __future__ import annotations

import torch

from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from adapters.plan import Buckets, plan_batch
from harness.tasks import random_task
from service.engine.inference.runner import BatchRunner

P = MethodConfig.preset
TASKS = [
    (P("apl", lora_r=3, bottleneck=5, prefix_length=3), 2),
    (P("l", lora_r=5), 3),
    (P("a", bottleneck=9, adapter_non_linearity="tanh"), 2),
]


def test_bucketed_batch_gives_the_exact_batch_logits(tiny_bert):
    model = UniPELTModel(tiny_bert).eval()
    bank = TaskBank.allocate(4, tiny_bert.dims, BankSizes(16, 32, 8, 4))
    for slot, (cfg, n) in enumerate(TASKS):
        bank.write(slot + 1, cfg, random_task(cfg, tiny_bert, n, seed=slot))
    g = torch.Generator().manual_seed(1)
    encoded = [(torch.randint(3, 120, (n,), generator=g).tolist(), None) for n in (5, 11, 3, 7, 9)]
    slots = [1, 2, 3, 3, 1]
    runner = BatchRunner(model, bank, None, pad_token_id=0, device=torch.device("cpu"))
    exact, _ = runner.inputs(encoded, slots)
    runner.buckets = Buckets.static(max_rows=32)
    padded, _ = runner.inputs(encoded, slots)
    assert tuple(padded.ids.shape) == (8, 16) and tuple(exact.ids.shape) == (5, 11)
    static = plan_batch(bank, padded.slots.tolist(), True, Buckets.static(), single_slot=False)
    sizes = static.sizes
    assert (sizes.lora_rank, sizes.bottleneck, sizes.prefix_length) == (8, 16, 4)
    with torch.no_grad():
        want = model(exact.ids, exact.mask, bank, exact.slots, exact.types).logits
        got = model(padded.ids, padded.mask, bank, padded.slots, padded.types, plan=static)
    torch.testing.assert_close(got.logits[:5, : want.shape[1]], want, atol=1e-5, rtol=0)
