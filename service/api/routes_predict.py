"""POST /v1/{task}/predict (the routed version) and /v1/{task}/versions/{v}/predict (pinned)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from service.api.deps import EngineDep, SettingsDep, StickyHeader, TaskName, require_read
from service.api.inputs import checked_inputs, predictions_out, sticky_key
from service.api.schemas import ErrorOut, PredictRequest, PredictResponse

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorOut,
        "description": "No adapter is uploaded for this task (unknown_task), or a pinned "
        "version is not retained (unknown_version)",
    },
    422: {
        "model": ErrorOut,
        "description": "Invalid input (empty or blank text, a text pair for a single-text "
        "task or the reverse), or an input over the token limit",
    },
    429: {"model": ErrorOut, "description": "Queue full; retry after Retry-After seconds"},
    500: {"model": ErrorOut, "description": "The adapter gave NaN or Inf (non_finite_output)"},
    503: {"model": ErrorOut, "description": "Adapter store unreachable and adapter not resident"},
}


@router.post(
    "/v1/{task}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    dependencies=[Depends(require_read)],
    summary="Predict with a task's routed adapter (live, or drawn from its traffic split)",
)
async def predict(
    task: TaskName,
    body: PredictRequest,
    engine: EngineDep,
    settings: SettingsDep,
    x_sticky_key: StickyHeader = None,
) -> PredictResponse:
    inputs = checked_inputs(body.items(), settings)
    sticky = sticky_key(body.sticky_key, x_sticky_key)
    result = await engine.predict(task, inputs, body.return_gates, sticky_key=sticky)
    return PredictResponse(
        task=task, version=result.version, predictions=predictions_out(result.results)
    )


@router.post(
    "/v1/{task}/versions/{version}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    dependencies=[Depends(require_read)],
    summary="Predict with one retained version of a task (staged, live, or older)",
)
async def predict_version(
    task: TaskName,
    version: Annotated[int, Path(ge=1, description="A retained version")],
    body: PredictRequest,
    engine: EngineDep,
    settings: SettingsDep,
) -> PredictResponse:
    inputs = checked_inputs(body.items(), settings)
    result = await engine.predict(task, inputs, body.return_gates, version=version)
    return PredictResponse(
        task=task, version=result.version, predictions=predictions_out(result.results)
    )
