"""POST /v1/{task}/predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.api.deps import EngineDep, SettingsDep, TaskName, require_read
from service.api.schemas import ErrorOut, PredictionOut, PredictRequest, PredictResponse
from service.engine.engine import TextInput
from service.errors import InvalidInputError

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
    items = body.items()
    if not items:
        raise InvalidInputError("inputs is empty")
    if len(items) > settings.max_inputs_per_request:
        raise InvalidInputError(
            f"{len(items)} inputs; at most {settings.max_inputs_per_request} per request"
        )
    for i, item in enumerate(items):
        if len(item.text) + len(item.text_pair or "") > settings.max_text_chars:
            raise InvalidInputError(f"input {i} exceeds {settings.max_text_chars} characters")
    inputs = [TextInput(i.text, i.text_pair) for i in items]
    result = await engine.predict(task, inputs, body.return_gates)
    return PredictResponse(
        task=task,
        version=result.version,
        predictions=[
            PredictionOut(
                label=r.prediction.label,
                scores=r.prediction.scores or None,
                value=r.prediction.value,
                gates=r.gates,
            )
            for r in result.results
        ],
    )
