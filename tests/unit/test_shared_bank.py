"""The adapter bank in shared files: what one mapping writes, another reads; stale banks of
dead processes are swept."""

from __future__ import annotations

import multiprocessing
import os

import torch

from adapters.bank import TaskBank
from adapters.config import MethodConfig
from harness.tasks import random_task
from service.engine.inference.shared_bank import (
    PREFIX,
    bank_bytes,
    share_bank,
    shared_dir,
    shm_room,
    sweep_stale,
)


def test_a_slot_written_after_sharing_reads_the_same_in_another_mapping(tiny, tmp_path):
    cfg = MethodConfig.preset("apl")
    bank = TaskBank.allocate(3, tiny.dims, cfg.sizes(2), lazy=True)
    shared = share_bank(bank, tmp_path / "bank")
    weights = random_task(cfg, tiny, 2, seed=3)
    bank.write(1, cfg, weights)  # through the writer's mapping, as the pool writes
    other = shared.attach()
    for name, t in bank.tensors.items():
        assert torch.equal(other.tensors[name][1], t[1]), name
    assert torch.equal(other.table, bank.table)
    for name, t in bank.key_tables.items():
        assert torch.equal(other.key_tables[name], t)
    assert bank_bytes(other) == bank_bytes(bank)
    shared.remove()
    assert not (tmp_path / "bank").exists()


def test_shm_room_needs_the_whole_bank(tmp_path):
    assert shm_room(1, tmp_path)
    assert not shm_room(2**62, tmp_path)
    assert not shm_room(1, tmp_path / "absent")


def test_sweep_removes_only_banks_whose_process_is_gone(tmp_path):
    child = multiprocessing.get_context("spawn").Process(target=os.getpid)
    child.start()
    child.join()
    dead = tmp_path / f"{PREFIX}{child.pid}-0"
    mine = shared_dir(tmp_path)
    other = tmp_path / "someone-else"
    for path in (dead, mine, other):
        path.mkdir()
    assert sweep_stale(tmp_path) == 1
    assert not dead.exists() and mine.exists() and other.exists()
