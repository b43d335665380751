"""The device pool (slots sized from a budget), the host tier and the warm-on-publish queue."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from adapters.bank import BankSizes, TaskBank
from adapters.config import MethodConfig
from adapters.slot_image import prepare_image, read_image
from harness.tasks import make_manifest, random_task
from service.engine.lifecycle.host_tier import HostCache
from service.engine.lifecycle.pool import AdapterPool
from service.engine.lifecycle.sizing import (
    PoolBudgetError,
    available_memory,
    size_host,
    size_pool,
    slot_bytes,
)
from service.engine.lifecycle.warmer import Warmer
from service.errors import PoolFullError
from service.metrics import Metrics
from service.store.events import EventKind, StoreEvent

CFG = MethodConfig.preset("apl", lora_r=4, bottleneck=8, prefix_length=3)


@pytest.fixture(scope="module")
def task(tiny_bert):
    """(manifest, slot image) of one task, prepared for the default bank sizes."""
    manifest = make_manifest("t", CFG, tiny_bert, ["a", "b"])
    bank = TaskBank.allocate(1, tiny_bert.dims, BankSizes(), lazy=True)
    return manifest, prepare_image(bank, CFG, random_task(CFG, tiny_bert, 2, seed=3), "cpu")


def test_slot_bytes_is_the_allocated_bank_per_slot(tiny_bert):
    sizes = BankSizes(8, 16, 4, 4)
    bank = TaskBank.allocate(3, tiny_bert.dims, sizes)
    weights = sum(t.numel() * t.element_size() for t in bank.tensors.values())
    per_slot = slot_bytes(tiny_bert.dims, sizes, torch.float32)
    assert weights / 3 <= per_slot < weights / 3 + 200  # + a few bytes of slot metadata
    assert slot_bytes(tiny_bert.dims, sizes, torch.bfloat16) < per_slot


def test_pool_size_derives_slots_from_budget_and_refuses_too_small(tiny_bert):
    sizes = BankSizes()
    per_slot = slot_bytes(tiny_bert.dims, sizes, torch.float32)
    assert size_pool(10 * per_slot + 5, tiny_bert.dims, sizes).slots == 10
    assert size_pool(10 * per_slot, tiny_bert.dims, sizes, max_slots=4).slots == 4
    with pytest.raises(PoolBudgetError, match=r"UNIPELT_POOL_MAX_BYTES=.*UNIPELT_POOL_MAX_LORA"):
        size_pool(per_slot - 1, tiny_bert.dims, sizes)


def test_default_budget_holds_a_thousand_minilm_tasks(minilm):
    from service.settings import Settings

    s = Settings()
    sizes = BankSizes(
        s.pool_max_lora_rank, s.pool_max_bottleneck, s.pool_max_prefix_length, s.pool_max_labels
    )
    size = size_pool(s.pool_max_bytes, minilm.dims, sizes, max_slots=s.pool_slots)
    assert size.slots >= 1000, size


def test_resident_keeps_no_weights(tiny_bert, task):
    pool = AdapterPool(TaskBank.allocate(2, tiny_bert.dims, BankSizes(), lazy=True))
    resident = pool.insert(("t", 1), *task)
    assert not [k for k, v in vars(resident).items() if _holds_tensor(v)]
    reference = TaskBank.allocate(1, tiny_bert.dims, BankSizes())
    reference.write(0, CFG, random_task(CFG, tiny_bert, 2, seed=3))
    got = pool.bank.slot_view("lora_q_A", resident.slot)
    assert torch.equal(got, reference.slot_view("lora_q_A", 0))


def _holds_tensor(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    return hasattr(value, "__dict__") and any(_holds_tensor(v) for v in vars(value).values())


def test_pool_evicts_least_recent_unpinned_and_refuses_when_all_pinned(tiny_bert, task):
    evicted = []
    pool = AdapterPool(
        TaskBank.allocate(2, tiny_bert.dims, BankSizes(), lazy=True), on_evict=evicted.append
    )
    a = pool.insert(("a", 1), *task)
    b = pool.insert(("b", 1), *task)
    with pytest.raises(PoolFullError):
        pool.insert(("c", 1), *task)
    pool.release(a)
    pool.release(b)
    assert pool.acquire(("a", 1)) is a  # a is now the most recent
    c = pool.insert(("c", 1), *task)
    assert [r.key for r in evicted] == [("b", 1)]
    assert c.slot == b.slot and pool.resident_versions("a") == [1]
    pool.release(a)
    pool.release(c)
    warm = pool.insert(("d", 1), *task, pin=False)  # a background load pins nothing
    assert warm.refs == 0 and ("d", 1) in pool


def test_eviction_hands_over_the_victim_while_its_slot_still_holds_it(tiny_bert, task):
    manifest = task[0]
    half = prepare_image(  # float16 weights: a float16 image in a float32 bank
        TaskBank.allocate(1, tiny_bert.dims, BankSizes(), lazy=True),
        CFG,
        {k: v.half() for k, v in random_task(CFG, tiny_bert, 2, seed=5).items()},
        "cpu",
    )
    pool = AdapterPool(TaskBank.allocate(1, tiny_bert.dims, BankSizes(), lazy=True))
    read_back = []
    pool.on_evict = lambda r: read_back.append(
        (r.key, read_image(pool.bank, r.slot, r.config, r.layout))
    )
    pool.insert(("a", 1), manifest, half, pin=False)
    pool.insert(("b", 1), *task, pin=False)
    assert [key for key, _ in read_back] == [("a", 1)]
    copy = read_back[0][1]
    assert copy.layout == half.layout and torch.equal(copy.table_row, half.table_row)
    assert all(torch.equal(copy.tensors[k], t) for k, t in half.tensors.items())
    pool.retire_task("b")  # a retired version leaves without being handed over
    assert len(read_back) == 1 and len(pool) == 0


def test_host_budget_is_a_multiple_of_the_bank_within_a_share_of_memory():
    mib = 2**20
    assert size_host(None, 100 * mib, False, 1000 * mib).budget == 200 * mib  # 2 x bank
    assert size_host(None, 100 * mib, False, 400 * mib).budget == 100 * mib  # 25% of memory
    assert size_host(None, 100 * mib, True, 500 * mib).budget == 100 * mib  # less a CPU bank
    assert size_host(None, 100 * mib, True, 50 * mib).budget == 0
    assert size_host(None, 100 * mib, False, None).budget == 200 * mib
    assert size_host(None, 2**30, False, None).budget == 2**30  # unknown memory: 1 GiB at most
    set_by_hand = size_host(5, 100 * mib, True, 1000 * mib)
    assert set_by_hand.budget == 5 and set_by_hand.source == "UNIPELT_HOST_CACHE_BYTES"
    assert "25% of 1000 MiB available" in size_host(None, mib, False, 1000 * mib).source
    memory = available_memory()
    assert memory is not None and memory > 0


def test_host_cache_is_bounded_by_bytes_and_lru(task):
    manifest, image = task
    size = image.nbytes
    cache = HostCache(max_bytes=2 * size + 1)
    for version in (1, 2):
        cache.put(("t", version), manifest, image)
    assert cache.get(("t", 1)) is not None  # touch 1: 2 is now the least recent
    cache.put(("t", 3), manifest, image)
    assert cache.get(("t", 2)) is None and len(cache) == 2 and cache.nbytes == 2 * size
    cache.drop_task("t", keep={3})
    assert cache.get(("t", 1)) is None and cache.get(("t", 3)) is not None
    tiny = HostCache(max_bytes=size - 1)
    assert tiny.put(("t", 1), manifest, image).nbytes == size  # served, not kept
    assert len(tiny) == 0 and tiny.nbytes == 0


class _Pool:
    def __init__(self, held: dict[str, list[int]]) -> None:
        self.held = held

    def resident_versions(self, task: str) -> list[int]:
        return self.held.get(task, [])


class _Loader:
    """Records background loads; each takes `delay` seconds (pure logic of the queue)."""

    def __init__(self, held: dict[str, list[int]], delay: float = 0.05) -> None:
        self.pool = _Pool(held)
        self.loaded: list[tuple[str, int]] = []
        self.delay = delay

    def warm(self, key: tuple[str, int]) -> None:
        time.sleep(self.delay)
        self.loaded.append(key)


def test_warmer_loads_before_applying_and_keeps_each_tasks_order():
    loader = _Loader({"held": [1]})
    applied: list[tuple[str, str, int | None, list]] = []
    warmer = Warmer(
        loader,  # type: ignore[arg-type]
        lambda e: applied.append((e.kind.value, e.task, e.version, list(loader.loaded))),
        Metrics(),
        max_loads=4,
    )
    warmer.start()
    try:
        warmer.on_event(StoreEvent(EventKind.LIVE, "held", 2, generation=2))
        warmer.on_event(StoreEvent(EventKind.DELETED, "held", None, generation=3))  # waits
        warmer.on_event(StoreEvent(EventKind.LIVE, "other", 5, generation=5))  # not held: at once
        assert applied == [("live", "other", 5, [])]
        _wait(lambda: len(applied) == 3)
    finally:
        warmer.stop()
    assert applied[1] == ("live", "held", 2, [("held", 2)])  # applied after its load
    assert applied[2][:2] == ("deleted", "held")


def test_warmer_bounds_background_loads():
    loader = _Loader({f"t{i}": [1] for i in range(10)}, delay=0.2)
    applied: list[str] = []
    warmer = Warmer(loader, lambda e: applied.append(e.task), Metrics(), max_loads=2)  # type: ignore[arg-type]
    warmer.start()
    try:
        for i in range(10):
            warmer.on_event(StoreEvent(EventKind.LIVE, f"t{i}", 2, generation=2))
        assert len(applied) == 8  # past the bound: straight through, loaded on first use
        _wait(lambda: len(applied) == 10)
    finally:
        warmer.stop()
    assert len(loader.loaded) == 2


def _wait(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_concurrent_inserts_of_one_key_share_one_slot(tiny_bert, task):
    pool = AdapterPool(TaskBank.allocate(4, tiny_bert.dims, BankSizes(), lazy=True))
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(pool.insert(("t", 1), *task))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in got}) == 1 and got[0].refs == 4 and len(pool) == 1
