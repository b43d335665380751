"""POST /v1/predict: every input through every named task (each routed, or at a pinned
version), in the same mixed batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.api.deps import EngineDep, SettingsDep, StickyHeader, require_read
from service.api.inputs import check_fanout_size, checked_inputs, predictions_out, sticky_key
from service.api.routes_predict import ERRORS as PREDICT_ERRORS
from service.api.schemas import ErrorOut, FanoutRequest, FanoutResponse, PredictResponse
from service.engine.lifecycle.routing import Target

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    **PREDICT_ERRORS,
    404: {
        "model": ErrorOut,
        "description": "A named task has no adapter, or a pinned version is not retained "
        "(no partial answer)",
    },
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
    body: FanoutRequest,
    engine: EngineDep,
    settings: SettingsDep,
    x_sticky_key: StickyHeader = None,
) -> FanoutResponse:
    inputs = checked_inputs(body.items(), settings)
    targets = body.targets()
    check_fanout_size(targets, len(inputs), settings.max_fanout_rows)
    sticky = sticky_key(body.sticky_key, x_sticky_key)
    answers = await engine.predict_tasks(
        [Target(task, version) for task, version in targets], inputs, body.return_gates, sticky
    )
    return FanoutResponse(
        results=[
            PredictResponse(task=a.task, version=a.version, predictions=predictions_out(a.results))
            for a in answers
        ]
    )
