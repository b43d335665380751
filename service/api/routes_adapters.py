"""Adapter management: upload (PUT), list, inspect, roll back, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile, status

from service.api.deps import EngineDep, TaskName, require_read, require_write
from service.api.schemas import ErrorOut, RollbackRequest
from service.engine.lifecycle.manager import AdapterVersion, TaskDetail, TaskLive
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


@router.put(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AdapterVersion,
    responses=UPLOAD_ERRORS,
    dependencies=[Depends(require_write)],
    summary="Upload an artifact (manifest + weights), or a PEFT LoRA adapter (adapter_config + "
    "adapter_weights + task + labels); it goes live at once",
)
async def upload_adapter(
    engine: EngineDep,
    manifest: Annotated[UploadFile | None, File(description="manifest.json")] = None,
    weights: Annotated[UploadFile | None, File(description="adapter.safetensors")] = None,
    adapter_config: Annotated[UploadFile | None, File(description="PEFT config")] = None,
    adapter_weights: Annotated[UploadFile | None, File(description="PEFT weights")] = None,
    task: Annotated[str | None, Form(description="PEFT: task name")] = None,
    labels: Annotated[str | None, Form(description="PEFT: names in head order")] = None,
    text_pair: Annotated[bool | None, Form(description="PEFT: inputs are pairs")] = None,
    max_length: Annotated[int | None, Form(description="PEFT: tokens per input")] = None,
) -> AdapterVersion:
    """The whole body is at most UNIPELT_MAX_UPLOAD_BYTES, checked while it arrives."""
    if manifest is not None and weights is not None and adapter_config is None:
        return await engine.adapters.upload(await manifest.read(), await weights.read())
    if adapter_config is not None and adapter_weights is not None and manifest is None:
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
        return await engine.adapters.upload_peft(peft)
    raise InvalidInputError(
        "send the parts manifest and weights (an artifact), or adapter_config, "
        "adapter_weights, task and labels (a PEFT LoRA adapter)"
    )


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
    version it finds; concurrent calls serialize, so N calls go N versions back."""
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
