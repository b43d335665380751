"""Open Inference Protocol v2 (KServe, Triton clients): each task is a model.

Inputs: BYTES `text` and, for pair tasks, BYTES `text_pair`, shape [n] (or [n, 1]).
Outputs: BYTES `label` [n] and FP32 `scores` [n, labels] (classification), or FP32 `value` [n]
(regression). Errors: the status of the same error elsewhere in the API, body {"error": "..."}.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from adapters.manifest import Manifest
from service.api.deps import EngineDep, SettingsDep, StickyHeader, TaskName, require_read
from service.api.error_handlers import protocol_error, short_errors
from service.api.inputs import checked_inputs
from service.api.schemas import TextItem
from service.api.v2_codec import (
    HEADER_LENGTH,
    InferRequest,
    OutputTensor,
    ProtocolError,
    encode_response,
    parse_infer_request,
)
from service.engine.engine import Engine
from service.engine.lifecycle.routing import Target
from service.errors import INTERNAL, ErrorStatus, InvalidInputError, status_of
from service.settings import Settings

log = logging.getLogger("unipelt.api")
router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])
SERVER = {"name": "unipelt-serve", "version": "0.1.0", "extensions": ["binary_tensor_data"]}


def error_status(exc: Exception) -> ErrorStatus:
    """The table entry our other routes give this error (a malformed request is a 400)."""
    if isinstance(exc, ProtocolError):
        return ErrorStatus(400, "invalid_request")
    return status_of(exc)


async def answer(call: Callable[[], Awaitable[Response]]) -> Response:
    """The call's response, or the protocol's error body {"error": "..."} (with the table's
    status and headers, e.g. Retry-After on 429). An unexpected error is logged and answered
    500 without its text."""
    try:
        return await call()
    except Exception as exc:
        entry = error_status(exc)
        if entry is INTERNAL:
            log.error("v2: unhandled %s", type(exc).__name__, exc_info=exc)
            return protocol_error(entry, "internal server error")
        if entry.status >= 500:
            log.warning("v2 %s: %s", entry.kind, exc)
        return protocol_error(entry, str(exc))


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return SERVER


@router.get("/health/live", summary="The server is alive")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="Backbone loaded and store reachable")
async def ready(request: Request) -> JSONResponse:
    engine = getattr(request.app.state, "engine", None)
    ok = engine is not None and await engine.adapters.store_reachable()
    return JSONResponse({"ready": ok}, status_code=200 if ok else 503)


def metadata(task: str, version: int, manifest: Manifest) -> dict[str, Any]:
    inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    if manifest.tokenizer.text_pair:
        inputs.append({"name": "text_pair", "datatype": "BYTES", "shape": [-1]})
    if manifest.problem_type == "regression":
        outputs = [{"name": "value", "datatype": "FP32", "shape": [-1]}]
    else:
        outputs = [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1, manifest.num_labels]},
        ]
    return {
        "name": task,
        "versions": [str(version)],
        "platform": "unipelt",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"labels": manifest.label_names},
    }


@router.get("/models/{task}", dependencies=[Depends(require_read)], summary="Model metadata")
async def model_metadata(task: TaskName, engine: EngineDep) -> Response:
    async def call() -> Response:
        return JSONResponse(metadata(task, *await engine.live_manifest(task)))

    return await answer(call)


@router.get("/models/{task}/ready", dependencies=[Depends(require_read)], summary="Model ready")
async def model_ready(task: TaskName, engine: EngineDep) -> Response:
    async def call() -> Response:
        version, _ = await engine.live_manifest(task)
        return JSONResponse({"name": task, "version": str(version), "ready": True})

    return await answer(call)


def infer_inputs(request: InferRequest, pair_task: bool) -> list[TextItem]:
    unknown = sorted(set(request.inputs) - {"text", "text_pair"})
    if unknown or "text" not in request.inputs:
        got = sorted(request.inputs)
        raise ProtocolError(f"inputs are BYTES 'text' and, for pair tasks, 'text_pair'; got {got}")
    texts, pairs = request.inputs["text"], request.inputs.get("text_pair")
    if pairs is not None and len(pairs) != len(texts):
        raise ProtocolError(f"'text' has {len(texts)} elements but 'text_pair' {len(pairs)}")
    items = []
    for i, text in enumerate(texts):
        try:
            items.append(TextItem(text=text, text_pair=pairs[i] if pairs else None))
        except ValidationError as exc:  # the same check, and the same 422, as /v1
            raise InvalidInputError(f"element {i}: {short_errors(exc.errors())}") from None
    return items


def output_tensors(manifest: Manifest, results: list) -> list[OutputTensor]:
    n = len(results)
    if manifest.problem_type == "regression":
        return [OutputTensor("value", "FP32", [n], [r.prediction.value for r in results])]
    scores = [p for r in results for p in r.prediction.scores.values()]
    return [
        OutputTensor("label", "BYTES", [n], [r.prediction.label for r in results]),
        OutputTensor("scores", "FP32", [n, manifest.num_labels], scores),
    ]


async def infer_response(
    request: Request,
    task: str,
    engine: Engine,
    settings: Settings,
    version: int | None = None,
    sticky_key: str | None = None,
) -> Response:
    """Pins one adapter once (the routed version, or the asked `version`): the input check,
    the forward and the output shapes all use it, even when the routing changes meanwhile."""
    parsed = parse_infer_request(await request.body(), request.headers.get(HEADER_LENGTH))
    async with engine.pinned([Target(task, version)], sticky_key) as residents:
        manifest = residents[0].manifest
        inputs = checked_inputs(infer_inputs(parsed, manifest.tokenizer.text_pair), settings)
        (result,) = await engine.predict_pinned(residents, inputs, False)
    outputs = output_tensors(result.manifest, result.results)
    if parsed.outputs is not None:
        known = {o.name for o in outputs}
        missing = sorted(set(parsed.outputs) - known)
        if missing:
            raise ProtocolError(f"unknown outputs {missing}; this model has {sorted(known)}")
        outputs = [o for o in outputs if o.name in parsed.outputs]
    body, headers = encode_response(task, result.version, parsed, outputs)
    return Response(body, headers=headers)


@router.post("/models/{task}/infer", dependencies=[Depends(require_read)], summary="Inference")
async def infer(
    task: TaskName,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    x_sticky_key: StickyHeader = None,
):
    return await answer(
        lambda: infer_response(request, task, engine, settings, sticky_key=x_sticky_key)
    )


@router.post(
    "/models/{task}/versions/{version}/infer",
    dependencies=[Depends(require_read)],
    summary="Inference on one retained version (404 unknown_version otherwise)",
)
async def infer_version(
    task: TaskName, version: int, request: Request, engine: EngineDep, settings: SettingsDep
):
    return await answer(lambda: infer_response(request, task, engine, settings, version))
