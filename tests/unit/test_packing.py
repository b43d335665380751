"""Packing real tokens changes nothing: a packed inference forward equals the padded one for
every method in a mixed batch (gates, BitFit, prefix, several adapter activations)."""

from __future__ import annotations

import pytest
import torch

from adapters.bank import TaskBank
from adapters.model import UniPELTModel
from adapters.packing import Packed, Unpacked, packing_for
from adapters.plan import plan_batch
from harness.tasks import random_task
from tests.unit.test_mixed_forward import TASKS, _batch


@pytest.mark.parametrize("backbone_name", ["tiny_bert", "tiny_roberta"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_packed_forward_equals_padded(backbone_name, seed, request):
    backbone = request.getfixturevalue(backbone_name)
    model = UniPELTModel(backbone).eval()
    tasks = [(cfg, random_task(cfg, backbone, n, seed=i)) for i, (cfg, n) in enumerate(TASKS)]
    bank = TaskBank.from_tasks(tasks, backbone.dims)
    g = torch.Generator().manual_seed(seed)
    slots = torch.randint(0, len(TASKS), (16,), generator=g)
    ids, mask, types = _batch(seed, 16, 12)
    lengths = mask.sum(1).tolist()
    padded_plan = plan_batch(bank, slots.tolist(), padded=True)
    packed_plan = plan_batch(bank, slots.tolist(), padded=True, lengths=lengths)
    assert packed_plan.lengths == tuple(lengths)
    with torch.inference_mode():
        want = model(ids, mask, bank, slots, types, return_gates=True, plan=padded_plan)
        got = model(ids, mask, bank, slots, types, return_gates=True, plan=packed_plan)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.gates, want.gates, atol=1e-6, rtol=0)
    for i, n in enumerate(lengths):  # padding positions of `hidden` are not defined
        torch.testing.assert_close(got.hidden[i, :n], want.hidden[i, :n], atol=1e-6, rtol=0)


def test_packing_is_off_for_training_and_gradients(tiny_bert):
    """Packing reuses buffers in place, so it runs only in an inference forward."""
    model = UniPELTModel(tiny_bert).eval()
    cfg, n = TASKS[0]
    bank = TaskBank.from_tasks([(cfg, random_task(cfg, tiny_bert, n))], tiny_bert.dims)
    ids, mask, types = _batch(4, 3, 8)
    plan = plan_batch(bank, [0, 0, 0], padded=True, lengths=mask.sum(1).tolist())
    seen: list[object] = []
    original = model.layer_forward

    def spy(layer, index, x, padded, rows, packing, want_gates):
        seen.append(packing)
        return original(layer, index, x, padded, rows, packing, want_gates)

    model.layer_forward = spy  # type: ignore[method-assign]
    model(ids, mask, bank, torch.zeros(3).long(), types, plan=plan)  # grad enabled
    with torch.no_grad():
        model(ids, mask, bank, torch.zeros(3).long(), types, plan=plan)
    assert isinstance(seen[0], Unpacked) and not isinstance(seen[0], Packed)
    assert isinstance(seen[-1], Packed)


def test_unpadded_batch_is_not_packed(tiny_bert):
    cfg, n = TASKS[0]
    bank = TaskBank.from_tasks([(cfg, random_task(cfg, tiny_bert, n))], tiny_bert.dims)
    plan = plan_batch(bank, [0, 0], padded=False, lengths=[5, 5])
    assert plan.lengths is None
    assert not packing_for(plan, 5, torch.float32).packed


def test_pack_unpack_round_trip():
    lengths = [3, 1, 4]
    packing = Packed(lengths, 5, torch.float32)
    x = torch.arange(3 * 5 * 2, dtype=torch.float32).view(3, 5, 2)
    packed = packing.pack(x)
    assert packed.shape == (8, 2)
    torch.testing.assert_close(packed, torch.cat([x[0, :3], x[1, :1], x[2, :4]]))
    torch.testing.assert_close(packing.pack(x.view(15, 2)), packed)
    back = packing.unpack(packed)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(back[i, :n], x[i, :n])
        assert (back[i, n:] == 0).all()  # a fresh buffer's padding is zero
    torch.testing.assert_close(packing.gate_weights[1, 0], torch.tensor([1.0, 0, 0, 0, 0]))
    torch.testing.assert_close(
        packing.per_token(torch.tensor([10.0, 20.0, 30.0]))[:4],
        torch.tensor([10.0, 10.0, 10.0, 20.0]),
    )


def test_plan_less_inference_packs_only_right_padded_rows(tiny_bert):
    """Without a plan the forward reads the mask: right-padded rows pack, other masks don't."""
    model = UniPELTModel(tiny_bert).eval()
    cfg, n = TASKS[0]
    bank = TaskBank.from_tasks([(cfg, random_task(cfg, tiny_bert, n))], tiny_bert.dims)
    ids = torch.randint(3, 120, (2, 6), generator=torch.Generator().manual_seed(0))
    right = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    left = right.flip(1)
    seen: list[object] = []
    original = model.mixed

    def spy(*args, **kwargs):
        seen.append(args[4].lengths)
        return original(*args, **kwargs)

    model.mixed = spy  # type: ignore[method-assign]
    with torch.no_grad():
        model(ids, right, bank, torch.zeros(2).long())
        model(ids, left, bank, torch.zeros(2).long())
    assert seen == [(4, 6), None]
