"""The predict lane (`service/api/lean_predict.py`) against the whole app: the same requests,
answered with the lane in front and without it, give the same statuses, bodies, replica
header and request metrics; the lane answers the well-formed ones itself and hands every
other one to the stack with what it read replayed."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "lane"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 4096
JSON = {"content-type": "application/json"}


def chunks(body: bytes, size: int = 100):
    """The body as a stream of chunks: a chunked request, several ASGI messages."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def valid(text: str = "a gripping, funny film") -> bytes:
    return json.dumps({"inputs": text}).encode()


# name -> (path, body or a function giving a chunk stream, extra headers, answered by the lane)
CASES = {
    "one text": ("/v1/lane/predict", valid(), AUTH, True),
    "texts and gates": (
        "/v1/lane/predict",
        json.dumps({"inputs": ["one", {"text": "two"}], "return_gates": True}).encode(),
        AUTH,
        True,
    ),
    "pinned version": ("/v1/lane/versions/1/predict", valid(), AUTH, True),
    "sticky header": ("/v1/lane/predict", valid(), {**AUTH, "x-sticky-key": "user-1"}, True),
    "chunked body": ("/v1/lane/predict", lambda: chunks(valid("word " * 60)), AUTH, True),
    "unknown task": ("/v1/nosuch/predict", valid(), AUTH, True),
    "unknown version": ("/v1/lane/versions/9/predict", valid(), AUTH, True),
    "input too long": ("/v1/lane/predict", valid("word " * 400), AUTH, True),
    "no token": ("/v1/lane/predict", valid(), {}, False),
    "wrong token": ("/v1/lane/predict", valid(), {"Authorization": "Bearer no"}, False),
    "malformed json": ("/v1/lane/predict", b'{"inputs": ', AUTH, False),
    "not an object": ("/v1/lane/predict", b'["text"]', AUTH, False),
    "unknown field": ("/v1/lane/predict", b'{"inputs": "x", "extra": 1}', AUTH, False),
    "blank text": ("/v1/lane/predict", b'{"inputs": "   "}', AUTH, False),
    "another content type": (
        "/v1/lane/predict",
        valid(),
        {**AUTH, "content-type": "text/plain"},
        False,
    ),
    "sticky header too long": (
        "/v1/lane/predict",
        valid(),
        {**AUTH, "x-sticky-key": "k" * 300},
        False,
    ),
    "declared body over the limit": ("/v1/lane/predict", valid("x" * LIMIT), AUTH, False),
    "chunked body over the limit": (
        "/v1/lane/predict",
        lambda: chunks(valid("y" * LIMIT)),
        AUTH,
        False,
    ),
}


def start(stack: ExitStack, minilm, tmp_path, lane: bool) -> TestClient:
    settings = Settings(
        data_dir=tmp_path,
        api_token=TOKEN,
        protect_reads=True,
        batch_window_ms=1,
        max_request_bytes=LIMIT,
        replica_id="replica-a",
        lean_predict=lane,
    )
    client = stack.enter_context(TestClient(create_app(settings, backbone=minilm)))
    manifest, weights = artifact_bytes("lane", MethodConfig.preset("apl"), minilm, seed=5)
    r = client.put("/adapters", files={"manifest": manifest, "weights": weights}, headers=AUTH)
    assert r.status_code == 201, r.text
    return client


def request_metrics(client: TestClient) -> dict:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics", headers=AUTH).text):
        for s in family.samples:
            if s.name in ("unipelt_requests_total", "unipelt_request_duration_seconds_count"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
            if s.name == "unipelt_predict_requests_in_flight":
                out[s.name] = s.value
    return out


@pytest.fixture(scope="module")
def clients(minilm, tmp_path_factory):
    with ExitStack() as stack:
        lane = start(stack, minilm, tmp_path_factory.mktemp("lane"), True)
        whole = start(stack, minilm, tmp_path_factory.mktemp("stack"), False)
        yield lane, whole


def send(client: TestClient, case: str):
    path, body, headers, _ = CASES[case]
    content = body() if callable(body) else body
    return client.post(path, content=content, headers={**JSON, **headers})


@pytest.mark.parametrize("case", list(CASES))
def test_the_lane_answers_as_the_whole_app_does(clients, case):
    lane_client, stack_client = clients
    app = lane_client.app
    assert app.lane is not None and stack_client.app.lane is None
    handed = []
    stack = app.lane.app

    async def counted(scope, receive, send):
        handed.append(scope["path"])
        await stack(scope, receive, send)

    app.lane.app = counted
    try:
        got = send(lane_client, case)
    finally:
        app.lane.app = stack
    want = send(stack_client, case)
    assert (got.status_code, got.json()) == (want.status_code, want.json()), case
    assert got.headers["x-unipelt-replica"] == want.headers["x-unipelt-replica"] == "replica-a"
    assert got.headers["content-type"] == want.headers["content-type"]
    answered_by_lane = CASES[case][3]
    assert handed == ([] if answered_by_lane else [CASES[case][0]]), case
    assert request_metrics(lane_client) == request_metrics(stack_client)


def test_every_case_counts_and_nothing_stays_in_flight(clients):
    lane_client, _ = clients
    for case in CASES:
        send(lane_client, case)
    metrics = request_metrics(lane_client)
    assert metrics["unipelt_predict_requests_in_flight"] == 0
    statuses = {dict(k[1]).get("status") for k in metrics if k[0] == "unipelt_requests_total"}
    assert {"200", "401", "404", "413", "422"} <= statuses
