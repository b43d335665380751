"""The mixed forward on the device named by UNIPELT_TEST_DEVICE (default cpu; bench/gpu_check.sh
runs this file with cuda): a mixed batch equals its rows run alone, the device agrees with the
CPU, bfloat16 and float16 stay within the stated bound of float32, and the CUDA runner's
captured graphs give the eager logits."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from adapters.bank import TaskBank
from adapters.config import MethodConfig
from adapters.model import UniPELTModel
from adapters.packing import packing_for
from adapters.plan import Buckets, plan_batch
from adapters.precision import precision_bound
from harness.tasks import random_task
from service.engine.inference.cuda_graphs import GraphCache, Inputs

DEVICE = torch.device(os.environ.get("UNIPELT_TEST_DEVICE", "cpu"))
P = MethodConfig.preset
TASKS = [
    (P("apl"), 2),
    (P("a", bottleneck=7), 3),
    (P("p", prefix_length=4), 2),
    (P("l", lora_r=3), 5),
    (P("apl-nogate", adapter_non_linearity="gelu"), 2),
    (P("bitfit"), 4),
    (P("ia3"), 3),
    (P("head"), 2),
]


@pytest.fixture(scope="module")
def setup(tiny_bert):
    tasks = [(cfg, random_task(cfg, tiny_bert, n, seed=i)) for i, (cfg, n) in enumerate(TASKS)]
    backbone = copy.deepcopy(tiny_bert)
    model = UniPELTModel(backbone).to(DEVICE).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 120, (16, 16), generator=g)
    mask = torch.ones_like(ids)
    for i in range(16):
        mask[i, int(torch.randint(2, 17, (1,), generator=g)) :] = 0
    slots = torch.randint(0, len(TASKS), (16,), generator=g)
    return tasks, model, ids, mask, slots


def test_mixed_batch_equals_rows_alone_on_the_device(setup, tiny_bert):
    tasks, model, ids, mask, slots = setup
    bank = TaskBank.from_tasks(tasks, tiny_bert.dims, DEVICE)
    plan = plan_batch(bank, slots.tolist(), padded=True)
    with torch.no_grad():
        mixed = model(ids.to(DEVICE), mask.to(DEVICE), bank, slots.to(DEVICE), plan=plan)
        cpu = UniPELTModel(tiny_bert).eval()(
            ids, mask, TaskBank.from_tasks(tasks, tiny_bert.dims), slots
        )
        torch.testing.assert_close(mixed.logits.cpu(), cpu.logits, atol=1e-4, rtol=0)
        for i in range(16):
            n, k = int(mask[i].sum()), int(mixed.num_labels[i])
            row = (ids[i : i + 1, :n].to(DEVICE), mask[i : i + 1, :n].to(DEVICE))
            alone_plan = plan_batch(bank, [int(slots[i])], padded=False)
            alone = model(*row, bank, slots[i : i + 1].to(DEVICE), plan=alone_plan)
            torch.testing.assert_close(alone.logits[0, :k], mixed.logits[i, :k], atol=1e-5, rtol=0)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs need a CUDA device")
def test_captured_graphs_give_the_eager_logits_and_see_slot_writes(setup, tiny_bert):
    tasks, model, ids, mask, slots = setup
    bank = TaskBank.from_tasks(tasks, tiny_bert.dims, DEVICE)
    graphs = GraphCache(model, bank, DEVICE, max_graphs=4)
    plan = plan_batch(bank, slots.tolist(), True, Buckets.static(), single_slot=False)
    inputs = Inputs(ids.pin_memory(), mask.pin_memory(), torch.zeros_like(ids), slots)
    with torch.inference_mode():
        eager = model(ids.to(DEVICE), mask.to(DEVICE), bank, slots.to(DEVICE), plan=plan)
        got, _ = graphs.run(inputs, plan, want_gates=False)
        torch.testing.assert_close(got, eager.logits, atol=1e-5, rtol=0)
        # A slot rewritten after capture: the replay reads the bank in place.
        first = int(slots[0])
        cfg, weights = tasks[first]
        bank.write(first, cfg, {k: v * 1.5 for k, v in weights.items()})
        eager = model(ids.to(DEVICE), mask.to(DEVICE), bank, slots.to(DEVICE), plan=plan)
        got, _ = graphs.run(inputs, plan, want_gates=False)
        torch.testing.assert_close(got, eager.logits, atol=1e-5, rtol=0)
    assert graphs.captures == 1


def test_returning_gates_leaves_the_logits_unchanged(setup, tiny_bert):
    """The gate record samples requests: a batch that computes gates answers what it would
    without them."""
    tasks, model, ids, mask, slots = setup
    bank = TaskBank.from_tasks(tasks, tiny_bert.dims, DEVICE)
    plan = plan_batch(bank, slots.tolist(), padded=True)
    row = (ids.to(DEVICE), mask.to(DEVICE), bank, slots.to(DEVICE))
    with torch.inference_mode():
        plain = model(*row, plan=plan)
        gated = model(*row, return_gates=True, plan=plan)
    assert plain.gates is None and gated.gates is not None
    torch.testing.assert_close(gated.logits, plain.logits, atol=1e-6, rtol=0)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs need a CUDA device")
def test_a_graph_that_returns_gates_gives_the_same_logits_and_the_eager_gates(setup, tiny_bert):
    """The same with captured graphs: a graph per want_gates, the same logits either way."""
    tasks, model, ids, mask, slots = setup
    bank = TaskBank.from_tasks(tasks, tiny_bert.dims, DEVICE)
    graphs = GraphCache(model, bank, DEVICE, max_graphs=4)
    plan = plan_batch(bank, slots.tolist(), True, Buckets.static(), single_slot=False)
    inputs = Inputs(ids.pin_memory(), mask.pin_memory(), torch.zeros_like(ids), slots)
    with torch.inference_mode():
        plain, none = graphs.run(inputs, plan, want_gates=False)
        plain = plain.clone()
        with_gates, gates = graphs.run(inputs, plan, want_gates=True)
        eager = model(
            ids.to(DEVICE), mask.to(DEVICE), bank, slots.to(DEVICE), return_gates=True, plan=plan
        )
    assert none is None and gates is not None and graphs.captures == 2
    torch.testing.assert_close(with_gates, plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(gates, eager.gates, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_on_the_device_is_within_tolerance_of_float32(setup, tiny_bert, dtype):
    tasks, _, ids, mask, slots = setup
    low_model = UniPELTModel(copy.deepcopy(tiny_bert)).to(DEVICE, dtype).eval()
    bank = TaskBank.from_tasks(tasks, tiny_bert.dims, DEVICE, dtype)
    plan = plan_batch(bank, slots.tolist(), padded=True)
    with torch.no_grad():
        low = low_model(ids.to(DEVICE), mask.to(DEVICE), bank, slots.to(DEVICE), plan=plan)
        ref = UniPELTModel(tiny_bert).eval()(
            ids, mask, TaskBank.from_tasks(tasks, tiny_bert.dims), slots
        )
    bound = precision_bound(dtype, ref.logits)
    assert float((low.logits.float().cpu() - ref.logits).abs().max()) <= bound


def test_packed_forward_on_the_device_equals_padded(setup):
    """Real tokens packed (index built on the host, moved with the batch) on the device."""
    tasks, model, ids, mask, slots = setup
    bank = TaskBank.from_tasks(tasks, model.backbone.dims, DEVICE)
    lengths = mask.sum(1).tolist()
    padded = plan_batch(bank, slots.tolist(), padded=True)
    packed = plan_batch(bank, slots.tolist(), padded=True, lengths=lengths)
    packing = packing_for(packed, ids.shape[1], bank.dtype, pin=DEVICE.type == "cuda")
    x = [t.to(DEVICE) for t in (ids, mask)]
    with torch.no_grad():
        want = model(*x, bank, slots.to(DEVICE), plan=padded)
        got = model(*x, bank, slots.to(DEVICE), plan=packed, packing=packing)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=0)
