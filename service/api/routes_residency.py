"""What this replica holds: for routers and operators of a fleet."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.deps import EngineDep, require_read
from service.engine.lifecycle.residency import Residency

router = APIRouter(tags=["operations"])


@router.get(
    "/residency",
    response_model=Residency,
    dependencies=[Depends(require_read)],
    summary="Tasks resident on this replica with their tier (bank, then host; most recently "
    "used first), its free slots and queue depth",
)
async def residency(engine: EngineDep) -> Residency:
    return engine.residency()
