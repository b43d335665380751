"""The mixed forward is one static graph: torch.compile(fullgraph=True) traces it with no graph
break (any read of a device value on the host, such as .item(), bool(t) or torch.unique, breaks
the graph and fails this test), and the compiled forward gives the eager logits."""

from __future__ import annotations

import torch

from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from adapters.packing import packing_for
from adapters.plan import Buckets, plan_batch
from harness.tasks import random_task

P = MethodConfig.preset
TASKS = [
    (P("apl"), 2),
    (P("apl-nogate", adapter_non_linearity="gelu", lora_r=3), 3),
    (P("bitfit"), 2),
    (P("p", prefix_length=4), 2),
    (P("ia3"), 3),
]


def test_mixed_forward_compiles_to_one_graph_with_the_same_logits(tiny_bert):
    torch._dynamo.reset()
    model = UniPELTModel(tiny_bert).eval()
    tasks = [(cfg, random_task(cfg, tiny_bert, n, seed=i)) for i, (cfg, n) in enumerate(TASKS)]
    bank = TaskBank.from_tasks(tasks, tiny_bert.dims)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 120, (8, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[::3, 10:] = 0
    slots = torch.tensor([0, 1, 2, 3, 4, 2, 1, 4])
    plan = plan_batch(bank, slots.tolist(), padded=True, buckets=Buckets.static())
    compiled = torch.compile(model.mixed, fullgraph=True, backend="eager")
    counters = torch._dynamo.utils.counters
    counters.clear()
    with torch.no_grad():
        eager = model.mixed(ids, mask, bank, slots, plan, return_gates=True)
        got = compiled(ids, mask, bank, slots, plan, return_gates=True)
        # Same shape bucket, other rows and slots: the traced graph is reused as is.
        slots2 = torch.tensor([3, 4, 0, 4, 1, 1, 2, 2])
        plan2 = plan_batch(bank, slots2.tolist(), padded=True, buckets=Buckets.static())
        assert plan2.key == plan.key
        eager2 = model.mixed(ids.flip(0), mask.flip(0), bank, slots2, plan2, return_gates=True)
        got2 = compiled(ids.flip(0), mask.flip(0), bank, slots2, plan2, return_gates=True)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    for a, b in ((got, eager), (got2, eager2)):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_packed_forward_compiles_to_one_graph(tiny_bert):
    """A packed forward, its packing built ahead on the host, traces with no graph break."""
    torch._dynamo.reset()
    model = UniPELTModel(tiny_bert).eval()
    tasks = [(cfg, random_task(cfg, tiny_bert, n, seed=i)) for i, (cfg, n) in enumerate(TASKS)]
    bank = TaskBank.from_tasks(tasks, tiny_bert.dims)
    ids = torch.randint(3, 120, (8, 16), generator=torch.Generator().manual_seed(1))
    lengths = [16, 9, 3, 16, 12, 7, 16, 1]
    mask = (torch.arange(16) < torch.tensor(lengths)[:, None]).long()
    slots = torch.tensor([0, 1, 2, 3, 4, 2, 1, 4])
    plan = plan_batch(bank, slots.tolist(), padded=True, lengths=lengths)
    packing = packing_for(plan, 16, bank.dtype)
    assert packing.packed
    compiled = torch.compile(model.mixed, fullgraph=True, backend="eager")
    counters = torch._dynamo.utils.counters
    counters.clear()
    with torch.no_grad():
        want = model.mixed(ids, mask, bank, slots, plan, return_gates=True)
        got = compiled(ids, mask, bank, slots, plan, return_gates=True, packing=packing)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[2], want[2], atol=1e-5, rtol=0)
