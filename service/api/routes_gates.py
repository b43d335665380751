"""GET /adapters/{task}/gates: the task's mean gates over its recent inputs on this replica."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.deps import EngineDep, TaskName, require_read
from service.engine.inference.gate_record import GateAverages

router = APIRouter(tags=["adapters"])


@router.get(
    "/adapters/{task}/gates",
    response_model=GateAverages,
    dependencies=[Depends(require_read)],
    summary="Mean gate of every submodule in every layer over the live version's recent inputs "
    "on this replica",
)
async def gate_averages(task: TaskName, engine: EngineDep) -> GateAverages:
    """Recorded from requests that ask for gates and one request in UNIPELT_GATE_SAMPLE_EVERY
    of each task; a running mean over about the last UNIPELT_GATE_WINDOW inputs. `inputs` is 0
    (and `gates` empty) until the live version has served a recorded request here."""
    version = await engine.adapters.live_version(task)
    return engine.gate_record.averages(task, version)
