"""The FastAPI application: lifespan wiring of store, backbone and engine; `unipelt serve`."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from adapters.backbone import Backbone, load_backbone
from service.access_log import install_access_log_filter
from service.api.body_limit import BodyLimit, BodyLimitMiddleware
from service.api.early_auth import EarlyAuthMiddleware, guards
from service.api.error_handlers import install_error_handlers
from service.api.lean_predict import PredictLane, ServiceApp
from service.api.openapi import install_openapi
from service.api.replica_header import ReplicaHeaderMiddleware
from service.api.request_metrics import RequestMetricsMiddleware
from service.api.routes_adapters import UPLOAD_PATH
from service.api.routes_adapters import router as adapters_router
from service.api.routes_fanout import router as fanout_router
from service.api.routes_gates import router as gates_router
from service.api.routes_health import router as health_router
from service.api.routes_pages import install_pages
from service.api.routes_predict import router as predict_router
from service.api.routes_residency import router as residency_router
from service.api.routes_traffic import router as traffic_router
from service.api.routes_v2 import router as v2_router
from service.engine.engine import Engine
from service.engine.lifecycle.residency import adapter_info
from service.errors import AdapterTooLargeError, RequestTooLargeError
from service.metrics import AdapterInfo, AdapterInfoCollector, Metrics
from service.server import uvicorn_options
from service.settings import Settings
from service.store.adapter_store import AdapterStore
from service.store.errors import StoreUnavailableError
from service.store.factory import connect

log = logging.getLogger("unipelt")


def create_app(settings: Settings | None = None, backbone: Backbone | None = None) -> FastAPI:
    """Build the app. `backbone` lets one process share a loaded backbone between apps."""
    settings = settings or Settings()
    metrics = Metrics(settings.max_task_labels)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store, embedded = await asyncio.to_thread(
            connect,
            settings.redis_url,
            settings.data_dir,
            settings.blob_backend,
            settings.redis_key_prefix,
            metrics.embedded_redis_restarts.inc,
        )
        model = backbone
        if model is None:
            model = await asyncio.to_thread(load_backbone, settings.backbone, settings.device)
        engine = Engine(settings, model, store, metrics)
        subscription = store.subscribe(engine.warmer.on_event)
        # Blobs of uploads a crash interrupted: collected in the background, best effort.
        threading.Thread(target=_collect_orphans, args=(store,), daemon=True).start()
        engine.start()
        app.state.engine = engine
        metrics.store_up.set(1)
        log.info("serving backbone %s on %s", model.name, settings.device)
        try:
            yield
        finally:
            app.state.engine = None
            await engine.stop()
            subscription.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    install_access_log_filter(settings.access_log)
    app = ServiceApp(
        **telemetry_option(settings.otel),
        title="unipelt-serve",
        version="0.1.0",
        description=(
            "Many UniPELT task adapters (LoRA + prefix + bottleneck adapters behind learned "
            'gates) on one frozen backbone. Errors are JSON {"error": kind, "detail": text} '
            '(the /v2 routes\' own: {"error": "<kind>: <detail>"}); each status and its kinds:'
        ),
        lifespan=lifespan,
        docs_url=None,  # served from the package's own assets: service/api/routes_pages.py
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engine = None
    install_error_handlers(app)
    routers = (
        health_router,
        predict_router,
        fanout_router,
        v2_router,
        adapters_router,
        gates_router,
        residency_router,
        traffic_router,
    )
    for router in routers:
        app.include_router(router)
    install_pages(app)

    upload_limit = BodyLimit(settings.max_upload_bytes, AdapterTooLargeError, "upload")
    request_limit = BodyLimit(settings.request_body_limit, RequestTooLargeError)

    def body_limit(path: str, method: str) -> BodyLimit:
        return upload_limit if (path, method) == (UPLOAD_PATH, "PUT") else request_limit

    # Outermost last: metrics see every answer; the token is checked before the body limit.
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    routes = [route for router in routers for route in router.routes]
    install_openapi(app, routes)
    app.add_middleware(EarlyAuthMiddleware, guards=guards(routes), settings=settings)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(ReplicaHeaderMiddleware, replica_id=settings.replica_id)

    def current_engine() -> Engine | None:
        return app.state.engine

    # In front of all of them, the predict lane does their work itself (lean_predict.py);
    # with OpenTelemetry on, every request goes through the stack and gets its span.
    if settings.lean_predict and not settings.otel:
        app.lane = PredictLane(app.stack, settings, metrics, current_engine, request_limit)

    def read_adapter_info() -> AdapterInfo | None:
        engine = app.state.engine
        return adapter_info(engine.residency(), settings.adapter_info_max) if engine else None

    metrics.registry.register(AdapterInfoCollector(read_adapter_info))
    return app


def telemetry_option(enabled: bool) -> dict:
    """FastAPI's `telemetry` switch (FastAPI versions without native telemetry: nothing).
    Off, FastAPI skips its per-request check of the OpenTelemetry providers."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    switch = {"tracing": enabled, "metrics": enabled, "logs": enabled}
    return {"telemetry": switch}


def _collect_orphans(store: AdapterStore) -> None:
    try:
        removed = store.gc_orphans()
    except StoreUnavailableError as exc:
        log.warning("orphan blob collection skipped: %s", exc)
        return
    if removed:
        log.info("collected %d orphan blob(s) of interrupted uploads", removed)


def run(host: str | None = None, port: int | None = None) -> None:
    """Run the service with uvicorn on the settings' (or given) host and port."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        **uvicorn_options(settings),
    )
