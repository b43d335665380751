"""The batcher's two policies (pure logic, fake stages): `mixed` takes the oldest rows of any
task, first come first served; `grouped` takes the oldest row's task only, the rest keep their
order. Every row gets its own result whichever batch it ran in."""

from __future__ import annotations

import asyncio

import pytest

from service.engine.inference.batcher import DynamicBatcher
from service.engine.inference.runner import Row
from service.metrics import Metrics

QUEUED = ["a", "b", "a", "b", "a", "c"]  # tasks of the queued rows, oldest first
CASES = [  # (policy, max batch size, tasks of each batch run, in order)
    ("mixed", 2, [["a", "b"], ["a", "b"], ["a", "c"]]),
    ("mixed", 8, [["a", "b", "a", "b", "a", "c"]]),
    ("grouped", 2, [["a", "a"], ["b", "b"], ["a"], ["c"]]),
    ("grouped", 8, [["a", "a", "a"], ["b", "b"], ["c"]]),
]


def run(policy: str, max_batch: int) -> tuple[list[list[Row]], list[str]]:
    batches: list[list[Row]] = []

    def forward(rows: list[Row]) -> list[str]:
        batches.append(rows)
        return [f"{row.task}:{row.text}" for row in rows]

    async def main() -> list[str]:
        batcher = DynamicBatcher(
            lambda rows: rows, forward, Metrics(), max_batch, 1.0, policy, max_queue=64
        )
        batcher.start()
        rows = [Row(f"text {i}", None, 16, i, task=t) for i, t in enumerate(QUEUED)]
        results = await batcher.submit(rows)  # one submission: every row is queued at once
        await batcher.drain_and_stop()
        return [str(r) for r in results]

    return batches, asyncio.run(main())


@pytest.mark.parametrize(("policy", "max_batch", "expected"), CASES)
def test_policy_forms_the_batches(policy, max_batch, expected):
    batches, results = run(policy, max_batch)
    assert [[row.task for row in batch] for batch in batches] == expected
    order = [row.index for batch in batches for row in batch]
    for task in set(QUEUED):  # within a task, rows run in arrival order
        mine = [i for i in order if QUEUED[i] == task]
        assert mine == sorted(mine)
    assert results == [f"{task}:text {i}" for i, task in enumerate(QUEUED)]
