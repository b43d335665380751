"""POST /v1/{task}/predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.api.deps import EngineDep, SettingsDep, TaskName, require_read
from service.api.inputs import checked_inputs, predictions_out
from service.api.schemas import ErrorOut, PredictRequest, PredictResponse

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No adapter is uploaded for this task"},
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
    summary="Predict with a task's live adapter",
)
async def predict(
    task: TaskName, body: PredictRequest, engine: EngineDep, settings: SettingsDep
) -> PredictResponse:
    inputs = checked_inputs(body.items(), settings)
    result = await engine.predict(task, inputs, body.return_gates)
    return PredictResponse(
        task=task, version=result.version, predictions=predictions_out(result.results)
    )
