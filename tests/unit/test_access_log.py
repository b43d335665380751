"""uvicorn's access log under UNIPELT_ACCESS_LOG, and FastAPI's telemetry switch."""

from __future__ import annotations

import logging

import pytest

from service.access_log import AccessLogFilter, skip_access_line
from service.main import create_app
from service.settings import Settings


def record(path: str, status: int) -> logging.LogRecord:
    args = ("127.0.0.1:5000", "POST", path, "1.1", status)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', args, None
    )


@pytest.mark.parametrize(
    ("mode", "path", "status", "kept"),
    [
        ("errors", "/v1/sst2/predict", 200, False),  # counted by the metrics instead
        ("errors", "/v1/sst2/versions/3/predict?x=1", 200, False),
        ("errors", "/v1/sst2/predict", 429, True),
        ("errors", "/v1/sst2/predict", 503, True),
        ("errors", "/adapters", 201, True),
        ("errors", "/v1/predict", 200, True),  # fan-out: not a single-task predict
        ("all", "/v1/sst2/predict", 200, True),
        ("off", "/adapters", 500, False),
    ],
)
def test_which_requests_are_logged(mode, path, status, kept):
    assert AccessLogFilter(mode).filter(record(path, status)) is kept


def test_a_record_of_another_shape_is_kept():
    other = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "started", None, None)
    assert AccessLogFilter("errors").filter(other)


def test_fastapi_telemetry_follows_the_setting(tmp_path):
    off = create_app(Settings(data_dir=tmp_path))
    on = create_app(Settings(data_dir=tmp_path, otel=True))
    if not hasattr(off, "_telemetry"):
        pytest.skip("this FastAPI has no native telemetry")
    assert not any(off._telemetry[k] for k in ("tracing", "metrics", "logs"))
    assert all(on._telemetry[k] for k in ("tracing", "metrics", "logs"))


class Cycle:
    """The shape of uvicorn's request cycle the lane reads: a flag and a bound `send`."""

    def __init__(self, access_log: bool) -> None:
        self.access_log = access_log

    async def send(self, message) -> None:
        return None


def test_a_quiet_answer_spares_uvicorn_its_record():
    logged, unlogged = Cycle(True), Cycle(False)
    skip_access_line(logged.send)
    skip_access_line(unlogged.send)
    assert logged.access_log is False and unlogged.access_log is False

    async def plain(message) -> None:  # not uvicorn's: nothing to change, nothing fails
        return None

    skip_access_line(plain)
    skip_access_line(print)
