"""One set of inputs through several tasks in one call: every (task, input) row joins the same
queue submission, so the batcher runs them in the same mixed batches.

All tasks are resolved and checked before any forward runs: an unknown task or a pairing
mismatch refuses the whole call (no partial answer). The forward thread tokenises each batch
at once, each distinct text once (`encode.BatchEncoder`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from service.engine.inference.row_checks import check_finite, check_pairing
from service.engine.inference.runner import Row
from service.engine.lifecycle.pool import Resident
from service.errors import InvalidInputError

if TYPE_CHECKING:
    from service.engine.engine import Engine, Prediction, TextInput


def check_fanout_size(tasks: Sequence[str], inputs: int, limit: int) -> None:
    if not tasks:
        raise InvalidInputError("tasks is empty")
    if len(set(tasks)) != len(tasks):
        raise InvalidInputError("tasks holds a task more than once")
    if len(tasks) * inputs > limit:
        raise InvalidInputError(
            f"{len(tasks)} tasks x {inputs} inputs = {len(tasks) * inputs} rows; "
            f"at most {limit} per request (UNIPELT_MAX_FANOUT_ROWS)"
        )


async def predict_tasks(
    engine: Engine, tasks: Sequence[str], inputs: list[TextInput], want_gates: bool
) -> list[Prediction]:
    """Each task's prediction for every input, in task order."""
    residents = await asyncio.to_thread(_acquire_all, engine, tasks)
    try:
        pairs = [i.text_pair for i in inputs]
        for task, resident in zip(tasks, residents):
            check_pairing(task, pairs, resident.manifest.tokenizer.text_pair)
        lengths = {task: _max_length(engine, r) for task, r in zip(tasks, residents)}
        rows = [
            Row(
                text=item.text,
                text_pair=item.text_pair,
                max_length=lengths[task],
                index=index,
                task=task,
                resident=resident,
                want_gates=want_gates,
            )
            for task, resident in zip(tasks, residents)
            for index, item in enumerate(inputs)
        ]
        results = await engine.batcher.submit(rows)
        out = []
        for n, (task, resident) in enumerate(zip(tasks, residents)):
            mine = results[n * len(inputs) : (n + 1) * len(inputs)]
            check_finite(task, resident.key[1], mine, engine.metrics)
            out.append(_prediction(task, resident.key[1], mine))
        return out
    finally:
        for resident in residents:
            engine.resolver.release(resident)


def _acquire_all(engine: Engine, tasks: Sequence[str]) -> list[Resident]:
    """Pin every task's live adapter, or none (a failure releases what was pinned)."""
    held: list[Resident] = []
    try:
        for task in tasks:
            held.append(engine.resolver.acquire(task))
    except BaseException:
        for resident in held:
            engine.resolver.release(resident)
        raise
    return held


def _max_length(engine: Engine, resident: Resident) -> int:
    manifest = resident.manifest
    return min(
        engine.settings.max_length, manifest.tokenizer.max_length, engine.backbone.max_tokens
    )


def _prediction(task: str, version: int, results: list) -> Prediction:
    from service.engine.engine import Prediction

    return Prediction(task=task, version=version, results=results)
