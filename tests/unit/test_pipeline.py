"""The prepare/forward pipeline (pure logic, fake stages): batch N+1 is prepared while batch N
runs its forward, on two different threads, in order, with a bounded handoff."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.engine.inference.pipeline import Pipeline

WAIT_S = 10.0  # only reached when the stages do not overlap (the test then fails)


def test_a_slow_prepare_of_the_next_batch_overlaps_the_forward_of_this_one():
    """Batch 1's forward cannot finish until batch 2's prepare has started (and batch 2's
    prepare until batch 1's forward has), so they must overlap; serial stages would time out."""
    prepare_2_started, forward_1_started = threading.Event(), threading.Event()
    threads: dict[str, set[int]] = {"prepare": set(), "forward": set()}
    log: list[str] = []

    def prepare(n: int) -> int:
        threads["prepare"].add(threading.get_ident())
        if n == 2:
            prepare_2_started.set()
            assert forward_1_started.wait(WAIT_S), "prepare 2 waited for forward 1 in vain"
        log.append(f"prepared {n}")
        return n

    def forward(n: int) -> str:
        threads["forward"].add(threading.get_ident())
        if n == 1:
            forward_1_started.set()
            assert prepare_2_started.wait(WAIT_S), "forward 1 ran without prepare 2 beside it"
        log.append(f"forward {n}")
        return f"result {n}"

    async def main() -> list[str]:
        pipe = Pipeline(prepare, forward, depth=1)
        runs = []
        for n in (1, 2, 3):
            await pipe.admit()
            runs.append(asyncio.create_task(pipe.run(n)))
        out = await asyncio.gather(*runs)
        assert pipe.idle
        pipe.shutdown()
        return out

    assert asyncio.run(main()) == ["result 1", "result 2", "result 3"]
    assert [e for e in log if e.startswith("forward")] == ["forward 1", "forward 2", "forward 3"]
    assert len(threads["prepare"]) == len(threads["forward"]) == 1
    assert threads["prepare"].isdisjoint(threads["forward"])
    assert threading.get_ident() not in threads["prepare"] | threads["forward"]


def test_the_handoff_is_bounded():
    """With depth 1, one batch runs its forward and one waits behind it; a third is admitted
    only when the first is done."""
    release = threading.Event()

    def forward(n: int) -> int:
        assert release.wait(WAIT_S)
        return n

    async def main() -> None:
        pipe = Pipeline(lambda n: n, forward, depth=1)
        first = [asyncio.create_task(_admit_and_run(pipe, n)) for n in (1, 2)]
        await asyncio.sleep(0.05)
        third = asyncio.create_task(pipe.admit())
        await asyncio.sleep(0.05)
        assert pipe.admitted == 2 and not third.done()
        release.set()
        assert await asyncio.gather(*first) == [1, 2]
        await asyncio.wait_for(third, WAIT_S)
        assert pipe.admitted == 1
        pipe.shutdown()

    asyncio.run(main())


def test_a_failed_prepare_fails_its_batch_only_and_frees_its_place():
    def prepare(n: int) -> int:
        if n == 1:
            raise RuntimeError("bad batch")
        return n

    async def main() -> None:
        pipe = Pipeline(prepare, lambda n: n * 10, depth=1)
        with pytest.raises(RuntimeError, match="bad batch"):
            await _admit_and_run(pipe, 1)
        assert pipe.idle
        assert await _admit_and_run(pipe, 2) == 20
        pipe.shutdown()

    asyncio.run(main())


def test_depth_below_one_is_refused():
    with pytest.raises(ValueError, match="depth"):
        Pipeline(lambda n: n, lambda n: n, depth=0)


async def _admit_and_run(pipe: Pipeline, n: int):
    await pipe.admit()
    return await pipe.run(n)
