"""ASGI middleware that counts predict requests (routed or pinned) by task and status and
times them."""

from __future__ import annotations

import re
import time

from service.metrics import Metrics

PREDICT_PATH = re.compile(r"^/v1/([^/]+)(?:/versions/[^/]+)?/predict$")
UNKNOWN_TASK = "_unknown"


class RequestMetricsMiddleware:
    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        match = PREDICT_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        self.metrics.predicts_in_flight.inc()

        async def send_with_status(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.predicts_in_flight.dec()
            record_predict(self.metrics, match.group(1), status["code"], started)


def record_predict(metrics: Metrics, name: str, code: int, started: float) -> None:
    """One predict answer counted by task and status and timed from `started` (perf_counter).
    Only a task shown to exist takes a label: a 200 proves it. Unknown or invalid names never
    use up the label budget (no cardinality from typos or probes)."""
    labels = metrics.task_label
    task = labels.add(name) if code == 200 else labels.get(name) or UNKNOWN_TASK
    metrics.requests.labels(task=task, status=str(code)).inc()
    metrics.request_duration.labels(task=task).observe(time.perf_counter() - started)
