"""Adapter management: upload (PUT), list, inspect, roll back, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, UploadFile, status

from service.api.deps import EngineDep, SettingsDep, TaskName, require_read, require_write
from service.api.schemas import ErrorOut, RollbackRequest, TaskOut, TaskSummary, VersionOut
from service.errors import AdapterTooLargeError, UnknownTaskError, UnknownVersionError
from service.store.errors import TaskNotFoundError
from service.store.records import VersionInfo

router = APIRouter(prefix="/adapters", tags=["adapters"])

UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    413: {"model": ErrorOut, "description": "Upload over the size limit"},
    422: {"model": ErrorOut, "description": "Invalid artifact (reason in detail)"},
    503: {"model": ErrorOut, "description": "Adapter store unreachable"},
}


def version_out(info: VersionInfo, live: int | None) -> VersionOut:
    method = info.manifest.get("method")
    return VersionOut(
        task=info.task,
        version=info.version,
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        uploaded_at=info.uploaded_at,
        live=info.version == live,
        method=_method_name(method),
        metrics=info.manifest.get("metrics") or {},
    )


def _method_name(method: dict | None) -> str | None:
    from adapters.config import MethodConfig

    try:
        return MethodConfig.from_dict(method).name if method else None
    except ValueError:
        return None


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise AdapterTooLargeError(f"{upload.filename or 'file'} exceeds {limit} bytes")
    return data


@router.put(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=VersionOut,
    responses=UPLOAD_ERRORS,
    dependencies=[Depends(require_write)],
    summary="Upload an artifact (manifest.json + adapter.safetensors); it goes live at once",
)
async def upload_adapter(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    manifest: Annotated[UploadFile, File(description="manifest.json")],
    weights: Annotated[UploadFile, File(description="adapter.safetensors")],
) -> VersionOut:
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_upload_bytes + 64 * 1024:
        raise AdapterTooLargeError(
            f"request body is {declared} bytes; the limit is {settings.max_upload_bytes}"
        )
    manifest_bytes = await _read_limited(manifest, settings.max_upload_bytes)
    weight_bytes = await _read_limited(weights, settings.max_upload_bytes)
    try:
        info = await engine.upload(manifest_bytes, weight_bytes)
    except Exception:
        engine.metrics.uploads.labels(result="refused").inc()
        raise
    engine.metrics.uploads.labels(result="accepted").inc()
    return version_out(info, info.version)


@router.get("", response_model=list[TaskSummary], dependencies=[Depends(require_read)])
async def list_adapters(engine: EngineDep) -> list[TaskSummary]:
    def read() -> list[TaskSummary]:
        out = []
        for task in engine.store.tasks():
            try:
                out.append(TaskSummary(task=task, live_version=engine.store.live_version(task)))
            except TaskNotFoundError:  # deleted meanwhile
                continue
        return out

    return await asyncio.to_thread(read)


@router.get(
    "/{task}",
    response_model=TaskOut,
    dependencies=[Depends(require_read)],
    responses={404: {"model": ErrorOut}},
)
async def get_adapter(task: TaskName, engine: EngineDep) -> TaskOut:
    def read() -> TaskOut:
        versions = engine.store.versions(task)
        if not versions:
            raise UnknownTaskError(f"no adapter is uploaded for task {task!r}")
        live = engine.store.live_version(task)
        current = next((v for v in versions if v.version == live), versions[-1])
        return TaskOut(
            task=task,
            live_version=live,
            versions=[version_out(v, live) for v in versions],
            label_names=current.manifest.get("label_names") or [],
            problem_type=current.manifest.get("problem_type"),
            resident_versions=engine.pool.resident_versions(task),
        )

    return await asyncio.to_thread(read)


@router.post(
    "/{task}/rollback",
    response_model=VersionOut,
    dependencies=[Depends(require_write)],
    responses={404: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    summary="Make an earlier version live (default: the one before the live one)",
)
async def rollback(task: TaskName, body: RollbackRequest, engine: EngineDep) -> VersionOut:
    def apply() -> VersionOut:
        versions = engine.store.versions(task)
        if not versions:
            raise UnknownTaskError(f"no adapter is uploaded for task {task!r}")
        live = engine.store.live_version(task)
        target = body.version
        if target is None:
            older = [v.version for v in versions if live is None or v.version < live]
            if not older:
                raise UnknownVersionError(f"task {task!r} has no version before {live}")
            target = max(older)
        engine.store.set_live(task, target)
        engine.resolver.on_event({"event": "live", "task": task, "version": target})
        info = engine.store.version_info(task, target)
        return version_out(info, target)

    return await asyncio.to_thread(apply)


@router.delete(
    "/{task}",
    dependencies=[Depends(require_write)],
    responses={404: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    summary="Delete a task and all its versions",
)
async def delete_adapter(task: TaskName, engine: EngineDep) -> dict[str, str]:
    def apply() -> None:
        engine.store.delete_task(task)  # TaskNotFoundError -> 404
        engine.resolver.on_event({"event": "deleted", "task": task, "version": None})

    await asyncio.to_thread(apply)
    return {"deleted": task}
