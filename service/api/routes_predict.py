"""POST /v1/{task}/predict (the routed version) and /v1/{task}/versions/{v}/predict (pinned).

These routes declare the API (schemas, errors, OpenAPI) and answer what the lean path
(`lean_predict.py`) hands on: every request it does not answer itself."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from service.api.deps import EngineDep, SettingsDep, StickyHeader, TaskName, require_read
from service.api.predict_answer import answer_predict
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
    return await answer_predict(engine, settings, task, body, sticky_header=x_sticky_key)


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
    return await answer_predict(engine, settings, task, body, version=version)
