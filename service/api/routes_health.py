"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import require_metrics
from service.errors import NotReadyError

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Backbone loaded and store reachable (503 otherwise)")
async def readyz(request: Request) -> JSONResponse:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise NotReadyError("the engine is still starting")
    await engine.adapters.check_store()
    return JSONResponse(
        {"ready": True, "backbone": engine.backbone.name, "pool": engine.pool_status()}
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    include_in_schema=True,
    dependencies=[Depends(require_metrics)],
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
