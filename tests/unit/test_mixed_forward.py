"""A mixed-task batch gives every row exactly what it gets when run alone with its task."""

from __future__ import annotations

import pytest
import torch

from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from harness.tasks import random_task

P = MethodConfig.preset
TASKS = [  # (config, labels)
    (P("apl"), 2),
    (P("a", bottleneck=7), 3),
    (P("p", prefix_length=4), 2),
    (P("l", lora_r=3), 5),
    (P("apl", lora_r=2, bottleneck=5, prefix_length=13), 1),  # regression head
    (P("apl-nogate", adapter_non_linearity="gelu"), 2),
    (P("bitfit"), 4),
    (P("head"), 2),
    (P("ap", gates=True, bottleneck=16), 2),
    (P("l", lora_r=8, lora_alpha=4.0), 3),
    (P("ia3"), 3),
    (P("ap", ia3=True, bitfit=True, prefix_length=5), 2),
]


def _batch(seed: int, rows: int, length: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 120, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    for i in range(rows):
        real = int(torch.randint(2, length + 1, (1,), generator=g))
        mask[i, real:] = 0
        ids[i, real:] = 0
        types[i, real // 2 : real] = 1  # a text pair: second segment
    return ids, mask, types


@pytest.mark.parametrize("backbone_name", ["tiny_bert", "tiny_roberta"])
@pytest.mark.parametrize("seed", [0, 1])
def test_mixed_batch_equals_rows_alone(backbone_name, seed, request):
    backbone = request.getfixturevalue(backbone_name)
    model = UniPELTModel(backbone).eval()
    tasks = [(cfg, random_task(cfg, backbone, n, seed=i)) for i, (cfg, n) in enumerate(TASKS)]
    bank = TaskBank.from_tasks(tasks, backbone.dims)
    rows = 16
    slots = torch.randint(0, len(TASKS), (rows,), generator=torch.Generator().manual_seed(seed))
    ids, mask, types = _batch(seed, rows, 12)
    with torch.no_grad():
        mixed = model(ids, mask, bank, slots, types, return_gates=True)
        for i in range(rows):
            n = int(mask[i].sum())
            alone_bank = TaskBank.from_tasks([tasks[int(slots[i])]], backbone.dims)
            alone = model(
                ids[i : i + 1, :n],
                mask[i : i + 1, :n],
                alone_bank,
                torch.zeros(1).long(),
                types[i : i + 1, :n],
                return_gates=True,
            )
            labels = int(mixed.num_labels[i])
            assert labels == TASKS[int(slots[i])][1]
            torch.testing.assert_close(
                mixed.logits[i, :labels], alone.logits[0, :labels], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(mixed.hidden[i, :n], alone.hidden[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(mixed.gates[i], alone.gates[0], atol=1e-5, rtol=0)


def test_pool_slots_match_exact_size_bank(tiny_bert):
    """Writing tasks into a larger serving pool (zero padding) changes no output."""
    model = UniPELTModel(tiny_bert).eval()
    tasks = [(cfg, random_task(cfg, tiny_bert, n, seed=i)) for i, (cfg, n) in enumerate(TASKS)]
    exact = TaskBank.from_tasks(tasks, tiny_bert.dims)
    pool = TaskBank.allocate(len(TASKS) + 5, tiny_bert.dims, BankSizes(16, 64, 16, 8))
    order = list(range(len(TASKS)))[::-1]
    for slot, task in zip(order, tasks):
        pool.write(slot + 5, *task)
    ids, mask, types = _batch(3, len(TASKS), 10)
    slots = torch.arange(len(TASKS))
    pool_slots = torch.tensor([order[i] + 5 for i in range(len(TASKS))])
    with torch.no_grad():
        a = model(ids, mask, exact, slots, types)
        b = model(ids, mask, pool, pool_slots, types)
    torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.logits, b.logits[:, : a.logits.shape[1]], atol=1e-5, rtol=0)


def test_gates_differ_per_input_and_respect_nogate(tiny_bert):
    model = UniPELTModel(tiny_bert).eval()
    gated = P("apl")
    nogate = P("apl-nogate", lora_r=4, lora_alpha=8.0)
    bank = TaskBank.from_tasks(
        [(gated, random_task(gated, tiny_bert, 2)), (nogate, random_task(nogate, tiny_bert, 2))],
        tiny_bert.dims,
    )
    ids, mask, types = _batch(5, 4, 9)
    with torch.no_grad():
        out = model(ids, mask, bank, torch.tensor([0, 0, 1, 1]), types, return_gates=True)
    assert not torch.allclose(out.gates[0], out.gates[1])  # input-dependent
    assert ((out.gates[:2] > 0) & (out.gates[:2] < 1)).all()
    expected = torch.tensor([1.0, 2.0, 2.0, 1.0])  # prefix, alpha/r (q, v), adapter
    torch.testing.assert_close(out.gates[2:], expected.expand(2, tiny_bert.dims.layers, 4))


def test_pool_refuses_oversized_task(tiny_bert):
    cfg = P("l", lora_r=32)
    pool = TaskBank.allocate(2, tiny_bert.dims, BankSizes(lora_rank=16))
    with pytest.raises(Exception, match="does not fit"):
        pool.write(0, cfg, random_task(cfg, tiny_bert, 2))
