"""One predict request answered: the same steps for the FastAPI route and the lean path."""

from __future__ import annotations

from service.api.inputs import checked_inputs, predictions_out, sticky_key
from service.api.schemas import PredictRequest, PredictResponse
from service.engine.engine import Engine
from service.settings import Settings


async def answer_predict(
    engine: Engine,
    settings: Settings,
    task: str,
    body: PredictRequest,
    version: int | None = None,
    sticky_header: str | None = None,
) -> PredictResponse:
    """The routed (or pinned `version`) adapter of `task` on the request's inputs."""
    inputs = checked_inputs(body.items(), settings)
    sticky = None if version is not None else sticky_key(body.sticky_key, sticky_header)
    result = await engine.predict(task, inputs, body.return_gates, version, sticky)
    return PredictResponse(
        task=task, version=result.version, predictions=predictions_out(result.results)
    )
