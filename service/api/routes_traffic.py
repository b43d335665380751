"""Rollouts: a task's traffic split, promote, abort."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.api.deps import EngineDep, TaskName, require_read, require_write
from service.api.schemas import ErrorOut, PromoteRequest, TrafficRequest
from service.engine.lifecycle.rollout import TrafficState

router = APIRouter(prefix="/adapters", tags=["rollouts"])

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "Unknown task (or, to promote, unknown version)"},
    409: {
        "model": ErrorOut,
        "description": "The routing changed since if_generation, or the "
        "version to promote is not in the split",
    },
    503: {"model": ErrorOut, "description": "Adapter store unreachable"},
}


@router.get(
    "/{task}/traffic",
    response_model=TrafficState,
    dependencies=[Depends(require_read)],
    responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
    summary="A task's routing: the live version and the traffic split, if one is set",
)
async def get_traffic(task: TaskName, engine: EngineDep) -> TrafficState:
    return await engine.rollouts.routing(task)


@router.put(
    "/{task}/traffic",
    response_model=TrafficState,
    dependencies=[Depends(require_write)],
    responses={
        **WRITE_ERRORS,
        422: {"model": ErrorOut, "description": "A split that breaks a rule (invalid_traffic)"},
    },
    summary="Split the task's unpinned requests over retained versions by weight",
)
async def put_traffic(task: TaskName, body: TrafficRequest, engine: EngineDep) -> TrafficState:
    """Weights are non-negative integers summing to 100 over 1 to 4 retained versions. The
    live version stays where it is: an abort returns to it."""
    return await engine.rollouts.set_split(task, body.split, body.if_generation)


@router.post(
    "/{task}/promote",
    response_model=TrafficState,
    dependencies=[Depends(require_write)],
    responses=WRITE_ERRORS,
    summary="Make one version live and end the split, in one step",
)
async def promote(task: TaskName, body: PromoteRequest, engine: EngineDep) -> TrafficState:
    return await engine.rollouts.promote(task, body.version)


@router.post(
    "/{task}/abort",
    response_model=TrafficState,
    dependencies=[Depends(require_write)],
    responses=WRITE_ERRORS,
    summary="End the split: the live version takes all traffic again",
)
async def abort(task: TaskName, engine: EngineDep) -> TrafficState:
    return await engine.rollouts.abort(task)
