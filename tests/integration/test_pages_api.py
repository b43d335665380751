"""The pages' server side in-process (real app, embedded Redis, packaged MiniLM): docs and
console served from the app with a same-origin policy, the OpenAPI document complete (every
route, every error each can answer, in the shape it really has), the gate record endpoint and
host-tier residency."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.api.openapi_errors import KIND_STATUS, OPERATION_ERRORS
from service.api.routes_pages import CONSOLE_FILES
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "pages-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTING_KINDS = {"not_found", "method_not_allowed"}  # no operation's own answer


@pytest.fixture(scope="module")
def client(minilm, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("pages"),
        api_token=TOKEN,
        batch_window_ms=1,
        gate_sample_every=2,
        pool_max_bytes=64 * 2**20,
    )
    app = create_app(settings, backbone=minilm)
    with TestClient(app) as c:
        files = upload_files(*artifact_bytes("sentiment", MethodConfig.preset("apl"), minilm))
        assert c.put("/adapters", files=files, headers=AUTH).status_code == 201
        yield c


def upload_files(manifest: bytes, weights: bytes) -> dict:
    return {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/openapi.json").json()


# ---- pages -------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_the_app(client, page):
    r = client.get(page)
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url


def test_console_is_static_files_that_name_no_other_host(client):
    r = client.get("/console", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/console/")
    page = client.get("/console/")
    assert page.status_code == 200 and "Tasks" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    files = sorted(CONSOLE_FILES.iterdir())
    assert {f.suffix for f in files} == {".html", ".js", ".css"}
    for f in files:
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]", f.read_text()), f.name
        assert client.get(f"/console/{f.name}").status_code == 200


# ---- the OpenAPI document ----------------------------------------------------------------
def operations(spec) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, methods in spec["paths"].items() for m in methods}


def test_every_api_route_is_documented_with_its_errors(client, spec):
    routes = {
        (method, route.path)
        for route in client.app.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    assert operations(spec) == set(OPERATION_ERRORS)
    assert routes <= operations(spec)


def test_every_error_kind_is_documented(spec):
    table = spec["info"]["description"]
    for kind, status in KIND_STATUS.items():
        assert re.search(rf"\| {status} \|[^\n]*`{kind}`", table), kind
    examples = {
        example["value"]["error"].split(":")[0]
        for methods in spec["paths"].values()
        for op in methods.values()
        for status, response in op["responses"].items()
        if status >= "400"
        for example in response["content"]["application/json"].get("examples", {}).values()
    }
    assert set(KIND_STATUS) - ROUTING_KINDS <= examples


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/{task}/predict"),
        ("POST", "/v1/predict"),
        ("PUT", "/adapters"),
        ("POST", "/v2/models/{task}/infer"),
    ],
)
def test_examples_for_requests_and_answers(spec, method, path):
    op = spec["paths"][path][method.lower()]
    bodies = op["requestBody"]["content"]
    assert any(media.get("examples") for media in bodies.values())
    ok = op["responses"]["201" if method == "PUT" else "200"]
    assert ok["content"]["application/json"]["examples"]


MULTIPART = {**AUTH, "content-type": "multipart/form-data; boundary=xx"}
INFER = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}
# (method, documented path, request path, request kwargs, status, kind)
REAL_ERRORS = [
    (
        "POST",
        "/v1/{task}/predict",
        "/v1/nope/predict",
        {"json": {"inputs": "x"}},
        404,
        "unknown_task",
    ),
    (
        "POST",
        "/v1/{task}/predict",
        "/v1/sentiment/predict",
        {"json": {"inputs": " "}},
        422,
        "invalid_input",
    ),
    (
        "POST",
        "/v1/predict",
        "/v1/predict",
        {"json": {"tasks": ["sentiment"] * 2, "inputs": "x"}},
        422,
        "invalid_input",
    ),
    ("PUT", "/adapters", "/adapters", {"content": b"x"}, 401, "unauthorized"),
    (
        "PUT",
        "/adapters",
        "/adapters",
        {"content": b"junk", "headers": MULTIPART},
        400,
        "bad_request",
    ),
    ("GET", "/adapters/{task}", "/adapters/NO!", {}, 422, "invalid_input"),
    ("GET", "/adapters/{task}/gates", "/adapters/nope/gates", {}, 404, "unknown_task"),
    (
        "POST",
        "/adapters/{task}/rollback",
        "/adapters/sentiment/rollback",
        {"json": {"version": 9}, "headers": AUTH},
        404,
        "unknown_version",
    ),
    ("DELETE", "/adapters/{task}", "/adapters/nope", {"headers": AUTH}, 404, "unknown_task"),
    ("GET", "/v2/models/{task}", "/v2/models/nope", {}, 404, "unknown_task"),
    ("GET", "/v2/models/{task}", "/v2/models/NO!", {}, 422, "invalid_input"),
    (
        "POST",
        "/v2/models/{task}/infer",
        "/v2/models/nope/infer",
        {"json": INFER},
        404,
        "unknown_task",
    ),
    (
        "POST",
        "/v2/models/{task}/infer",
        "/v2/models/sentiment/infer",
        {"content": b"{"},
        400,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(
    ("method", "documented", "path", "kwargs", "status", "kind"),
    REAL_ERRORS,
    ids=[f"{c[0]} {c[2]} {c[5]}" for c in REAL_ERRORS],
)
def test_real_errors_are_documented_in_their_shape(
    client, spec, method, documented, path, kwargs, status, kind
):
    r = client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    listed = spec["paths"][documented][method.lower()]["responses"][str(status)]
    examples = [e["value"] for e in listed["content"]["application/json"]["examples"].values()]
    if set(body) == {"error"}:  # the Open Inference Protocol's shape
        assert body["error"].startswith(f"{kind}: ")
        assert any(set(e) == {"error"} and e["error"].startswith(f"{kind}: ") for e in examples)
    else:
        assert set(body) == {"error", "detail"} and body["error"] == kind
        assert any(e.get("error") == kind and "detail" in e for e in examples)


# ---- gate record and residency -----------------------------------------------------------
def gates_of(client, text: str) -> dict[str, list[float]]:
    r = client.post("/v1/sentiment/predict", json={"inputs": text, "return_gates": True})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]["gates"]


def test_gate_record_averages_sampled_and_requested_inputs(client, minilm):
    files = upload_files(
        *artifact_bytes("sentiment", MethodConfig.preset("apl"), minilm, seed=3)
    )  # a fresh version: a fresh record
    version = client.put("/adapters", files=files, headers=AUTH).json()["version"]
    assert client.get("/adapters/sentiment/gates").json()["inputs"] == 0
    sampled = client.post("/v1/sentiment/predict", json={"inputs": "one"}).json()
    assert sampled["predictions"][0]["gates"] is None  # computed for the record, not returned
    skipped = client.post("/v1/sentiment/predict", json={"inputs": "two"})  # 1 in 2 sampled
    assert skipped.status_code == 200
    record = client.get("/adapters/sentiment/gates").json()
    assert (record["version"], record["inputs"], record["sample_every"]) == (version, 1, 2)
    first, third = gates_of(client, "one"), gates_of(client, "three")  # asked: recorded
    record = client.get("/adapters/sentiment/gates").json()
    assert record["inputs"] == 3
    for name, values in record["gates"].items():
        expected = [(2 * a + b) / 3 for a, b in zip(first[name], third[name])]
        assert values == pytest.approx(expected, abs=1e-5)


def test_task_detail_shows_both_tiers_and_the_pairing(client):
    detail = client.get("/adapters/sentiment").json()
    live = detail["live_version"]
    assert live in detail["host_versions"]  # an upload is kept validated in the host tier
    gates_of(client, "warm it")
    assert live in client.get("/adapters/sentiment").json()["resident_versions"]
    assert detail["text_pair"] is False
