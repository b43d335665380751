"""Every error over real HTTP has the documented shape {"error": kind, "detail": text}:
routing errors (404, 405), bodies that do not parse (400, 422), refusals by the middlewares
(401, 413) and the service's own errors."""

from __future__ import annotations

import httpx
import pytest

from harness.reliability import AUTH

pytestmark = [pytest.mark.service, pytest.mark.slow]
MULTIPART = {**AUTH, "content-type": "multipart/form-data; boundary=xx"}
JSON = {"content-type": "application/json"}

CASES = [  # (id, method, path, request kwargs, status, error kind)
    ("unknown-path", "GET", "/nope", {}, 404, "not_found"),
    ("wrong-method", "GET", "/v1/t/predict", {}, 405, "method_not_allowed"),
    ("wrong-method-health", "DELETE", "/healthz", {}, 405, "method_not_allowed"),
    (
        "malformed-multipart",
        "PUT",
        "/adapters",
        {"content": b"not multipart at all", "headers": MULTIPART},
        400,
        "bad_request",
    ),
    (
        "multipart-without-boundary",
        "PUT",
        "/adapters",
        {"content": b"x", "headers": {**AUTH, "content-type": "multipart/form-data"}},
        400,
        "bad_request",
    ),
    ("json-upload", "PUT", "/adapters", {"json": {"a": 1}, "headers": AUTH}, 422, "invalid_input"),
    (
        "broken-json",
        "POST",
        "/v1/t/predict",
        {"content": b"{bad", "headers": JSON},
        422,
        "invalid_input",
    ),
    ("no-token", "PUT", "/adapters", {"content": b"x"}, 401, "unauthorized"),
    (
        "unknown-task-rollback",
        "POST",
        "/adapters/none-such/rollback",
        {"json": {}, "headers": AUTH},
        404,
        "unknown_task",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "kind"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_every_error_has_the_documented_shape(service, method, path, kwargs, status, kind):
    r = httpx.request(method, f"{service.url}{path}", timeout=30, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == kind and isinstance(body["detail"], str) and body["detail"]
