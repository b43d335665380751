"""Adapter management: upload (PUT), list, inspect, roll back, delete (a task or a version)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Path, Response, UploadFile, status

from service.api.deps import EngineDep, TaskName, require_read, require_write
from service.api.schemas import ErrorOut, RollbackRequest
from service.engine.lifecycle.manager import AdapterVersion, TaskDetail, TaskLive, UploadOutcome
from service.engine.lifecycle.peft_upload import PeftUpload
from service.errors import InvalidInputError

router = APIRouter(prefix="/adapters", tags=["adapters"])
UPLOAD_PATH = router.prefix  # PUT: its body limit is UNIPELT_MAX_UPLOAD_BYTES (service.main)

UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed multipart body"},
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    409: {"model": ErrorOut, "description": "Lost a race with a concurrent change"},
    413: {"model": ErrorOut, "description": "Upload over the size limit"},
    422: {"model": ErrorOut, "description": "Invalid artifact (reason in detail)"},
    503: {"model": ErrorOut, "description": "Adapter store unreachable"},
}


UPLOAD_KEY = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def upload_key(value: str | None) -> str | None:
    if value is not None and not UPLOAD_KEY.fullmatch(value):
        raise InvalidInputError("Idempotency-Key must be 1..200 of A-Z a-z 0-9 . _ : -")
    return value


@router.put(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOutcome,
    responses=UPLOAD_ERRORS,
    dependencies=[Depends(require_write)],
    summary="Upload an artifact (manifest + weights), or a PEFT LoRA adapter (adapter_config + "
    "adapter_weights + task + labels); it goes live at once",
)
async def upload_adapter(
    engine: EngineDep,
    response: Response,
    manifest: Annotated[UploadFile | None, File(description="manifest.json")] = None,
    weights: Annotated[UploadFile | None, File(description="adapter.safetensors")] = None,
    adapter_config: Annotated[UploadFile | None, File(description="PEFT config")] = None,
    adapter_weights: Annotated[UploadFile | None, File(description="PEFT weights")] = None,
    task: Annotated[str | None, Form(description="PEFT: task name")] = None,
    labels: Annotated[str | None, Form(description="PEFT: names in head order")] = None,
    text_pair: Annotated[bool | None, Form(description="PEFT: inputs are pairs")] = None,
    max_length: Annotated[int | None, Form(description="PEFT: tokens per input")] = None,
    live: Annotated[bool, Form(description="false: staged (stored and pinnable, not live)")] = True,
    idempotency_key: Annotated[
        str | None,
        Header(description="A key of your choosing: a retry with it answers what it committed"),
    ] = None,
) -> UploadOutcome:
    """The whole body is at most UNIPELT_MAX_UPLOAD_BYTES, checked while it arrives. 201 for
    a new version; 200 (`replayed`) when the Idempotency-Key had committed it already. While
    a traffic split is set, an upload is stored but does not go live."""
    key = upload_key(idempotency_key)
    if manifest is not None and weights is not None and adapter_config is None:
        manifest_bytes, weights_bytes = await manifest.read(), await weights.read()
        outcome = await engine.adapters.upload(manifest_bytes, weights_bytes, key, live)
    elif adapter_config is not None and adapter_weights is not None and manifest is None:
        if not task:
            raise InvalidInputError("a PEFT upload needs a task part (the task name)")
        peft = PeftUpload(
            await adapter_config.read(),
            await adapter_weights.read(),
            task,
            labels,
            text_pair,
            max_length,
        )
        outcome = await engine.adapters.upload_peft(peft, key, live)
    else:
        raise InvalidInputError(
            "send the parts manifest and weights (an artifact), or adapter_config, "
            "adapter_weights, task and labels (a PEFT LoRA adapter)"
        )
    if outcome.replayed:
        response.status_code = status.HTTP_200_OK
    return outcome


@router.get("", response_model=list[TaskLive], dependencies=[Depends(require_read)])
async def list_adapters(engine: EngineDep) -> list[TaskLive]:
    return await engine.adapters.list_tasks()


@router.get(
    "/{task}",
    response_model=TaskDetail,
    dependencies=[Depends(require_read)],
    responses={404: {"model": ErrorOut}},
)
async def get_adapter(task: TaskName, engine: EngineDep) -> TaskDetail:
    return await engine.adapters.get(task)


@router.post(
    "/{task}/rollback",
    response_model=AdapterVersion,
    dependencies=[Depends(require_write)],
    responses={404: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    summary="Make an earlier version live (default: the one before the live one)",
)
async def rollback(task: TaskName, body: RollbackRequest, engine: EngineDep) -> AdapterVersion:
    """Without a version, each call moves the live pointer one version back from the live
    version it finds; concurrent calls serialize, so N calls go N versions back. A traffic
    split ends in the same step: the target takes all traffic."""
    return await engine.adapters.rollback(task, body.version)


@router.delete(
    "/{task}",
    dependencies=[Depends(require_write)],
    responses={404: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    summary="Delete a task and all its versions",
)
async def delete_adapter(task: TaskName, engine: EngineDep) -> dict[str, str]:
    await engine.adapters.delete(task)
    engine.gate_record.forget(task)  # a later upload may reuse the version numbers
    return {"deleted": task}


@router.delete(
    "/{task}/versions/{version}",
    dependencies=[Depends(require_write)],
    responses={
        404: {"model": ErrorOut},
        401: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "The version is live, or in the traffic split"},
    },
    summary="Delete one version (not the live one while others remain, nor one in a split)",
)
async def delete_version(
    task: TaskName, version: Annotated[int, Path(ge=1)], engine: EngineDep
) -> dict[str, str | int]:
    await engine.adapters.delete_version(task, version)
    return {"deleted": task, "version": version}
