"""POST /v1/predict: every input through every named task, in the same mixed batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.api.deps import EngineDep, SettingsDep, require_read
from service.api.inputs import check_fanout_size, checked_inputs, predictions_out
from service.api.routes_predict import ERRORS as PREDICT_ERRORS
from service.api.schemas import ErrorOut, FanoutRequest, FanoutResponse, PredictResponse

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    **PREDICT_ERRORS,
    404: {"model": ErrorOut, "description": "A named task has no adapter (no partial answer)"},
    422: {
        "model": ErrorOut,
        "description": "Invalid input, a pairing one of the tasks does not take, a task named "
        "twice, or tasks x inputs over UNIPELT_MAX_FANOUT_ROWS",
    },
}


@router.post(
    "/v1/predict",
    response_model=FanoutResponse,
    responses=ERRORS,
    dependencies=[Depends(require_read)],
    summary="Predict the same inputs with several tasks in one call",
)
async def predict_many(
    body: FanoutRequest, engine: EngineDep, settings: SettingsDep
) -> FanoutResponse:
    inputs = checked_inputs(body.items(), settings)
    check_fanout_size(body.tasks, len(inputs), settings.max_fanout_rows)
    answers = await engine.predict_tasks(body.tasks, inputs, body.return_gates)
    return FanoutResponse(
        results=[
            PredictResponse(task=a.task, version=a.version, predictions=predictions_out(a.results))
            for a in answers
        ]
    )
