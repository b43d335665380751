"""A prepared slot image written into a bank leaves the slot exactly as `TaskBank.write` does."""

from __future__ import annotations

import pytest
import torch

from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from adapters.slot_image import prepare_image, write_image, zero_outside
from harness.tasks import random_task

P = MethodConfig.preset
TASKS = [  # (config, labels): every submodule, sizes below and at the bank's
    (P("apl", lora_r=4, bottleneck=8, prefix_length=3), 2),
    (P("a", bottleneck=7, adapter_non_linearity="gelu"), 3),
    (P("p", prefix_length=4), 2),
    (P("l", lora_r=3), 5),
    (P("apl", lora_r=2, bottleneck=5, prefix_length=6), 1),  # regression head
    (P("apl-nogate", lora_r=8, bottleneck=16, prefix_length=6), 8),  # the bank's sizes
    (P("bitfit"), 4),
    (P("head"), 2),
    (P("ia3"), 3),
]
SIZES = BankSizes(lora_rank=8, bottleneck=16, prefix_length=6, num_labels=8)


def _state(bank: TaskBank, slot: int) -> dict[str, torch.Tensor]:
    out = {name: t[slot] for name, t in bank.tensors.items()}
    out.update(table=bank.table[slot])
    out.update({f"keys:{k}": v[slot] for k, v in bank.key_tables.items()})
    return out


@pytest.mark.parametrize(("cfg", "labels"), TASKS, ids=[c.name for c, _ in TASKS])
def test_image_write_equals_bank_write(tiny_bert, cfg, labels):
    weights = random_task(cfg, tiny_bert, labels, seed=3)
    reference = TaskBank.allocate(2, tiny_bert.dims, SIZES)
    reference.write(1, cfg, weights)
    bank = TaskBank.allocate(2, tiny_bert.dims, SIZES, lazy=True)
    big_cfg, big_labels = TASKS[5]
    bank.write(1, big_cfg, random_task(big_cfg, tiny_bert, big_labels, seed=9))  # dirty slot
    image = prepare_image(bank, cfg, weights, "cpu")
    write_image(bank, 1, image)
    expected, got = _state(reference, 1), _state(bank, 1)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    assert bank.meta.row(1) == reference.meta.row(1)
    assert image.nbytes <= sum(t[1].numel() * t.element_size() for t in bank.tensors.values())


def test_image_over_the_bank_sizes_is_refused(tiny_bert):
    cfg = P("l", lora_r=16)
    bank = TaskBank.allocate(1, tiny_bert.dims, SIZES, lazy=True)
    with pytest.raises(Exception, match="does not fit"):
        prepare_image(bank, cfg, random_task(cfg, tiny_bert, 2), "cpu")


@pytest.mark.parametrize(
    ("stored", "bank_dtype", "kept"),
    [
        (torch.float16, torch.float32, torch.float16),  # narrower: kept, cast at the write
        (torch.bfloat16, torch.float32, torch.bfloat16),
        (torch.float32, torch.bfloat16, torch.bfloat16),  # wider: cast once, up front
        (torch.float16, torch.bfloat16, torch.bfloat16),
    ],
    ids=str,
)
def test_half_precision_image_writes_the_slot_bank_write_does(tiny_bert, stored, bank_dtype, kept):
    cfg, labels = TASKS[0]
    weights = {k: v.to(stored) for k, v in random_task(cfg, tiny_bert, labels, seed=4).items()}
    reference = TaskBank.allocate(1, tiny_bert.dims, SIZES, dtype=bank_dtype)
    reference.write(0, cfg, weights)
    bank = TaskBank.allocate(1, tiny_bert.dims, SIZES, dtype=bank_dtype, lazy=True)
    image = prepare_image(bank, cfg, weights, "cpu")
    fused_weights = {
        k: t for k, t in image.tensors.items() if k in weights or k in ("in_w", "in_b")
    }
    assert {t.dtype for t in fused_weights.values()} == {kept}
    write_image(bank, 0, image)
    expected, got = _state(reference, 0), _state(bank, 0)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


def test_zero_outside_clears_only_the_padding():
    dest = torch.ones(3, 4, 5)
    zero_outside(dest, (2, 3, 4))
    assert dest[:2, :3, :4].eq(1).all() and dest.sum() == 2 * 3 * 4
