"""Security: the token guards writes (and reads when asked), before any validation or side
effect; task names follow one strict pattern everywhere; uploads and requests are bounded in
size. (That no code path unpickles is ruff's S301/TID251 rules, in pyproject.toml.)"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from adapters.constants import TASK_NAME_PATTERN
from harness.reliability import AUTH, TOKEN, redis_store, task_artifact, upload_files
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
TASK = "guarded"

BAD_AUTH = [  # Authorization header values that must not authorize
    None,
    "",
    "Bearer",
    "Bearer wrong",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
    f"Basic {TOKEN}",
    TOKEN,
    f"Token {TOKEN}",
]


def headers_for(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Authorization": value}


@pytest.fixture(scope="module")
def url(slot, minilm) -> str:
    return slot.with_task(minilm, TASK)


def writes(minilm) -> list[tuple[str, str, dict]]:
    files = upload_files(*task_artifact(minilm, TASK, 1))
    return [
        ("PUT", "/adapters", {"files": files}),
        ("DELETE", f"/adapters/{TASK}", {}),
        ("POST", f"/adapters/{TASK}/rollback", {"json": {"version": 1}}),
        ("DELETE", "/adapters/NOT..VALID", {}),  # 401 comes before validation
        ("PUT", "/adapters", {"files": {"manifest": ("m", b"{")}}),
    ]


@pytest.mark.parametrize("auth", BAD_AUTH, ids=[repr(a) for a in BAD_AUTH])
def test_writes_refuse_without_the_token(url, minilm, redis_server, auth):
    store = redis_store(redis_server.url)
    before = [v.version for v in store.versions(TASK)]
    for method, path, kwargs in writes(minilm):
        r = httpx.request(method, url + path, headers=headers_for(auth), timeout=60, **kwargs)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"] == "unauthorized"
    assert [v.version for v in store.versions(TASK)] == before  # no side effect at all


def test_reads_are_open_when_not_protected(url):
    assert httpx.post(f"{url}/v1/{TASK}/predict", json={"inputs": "x"}).status_code == 200
    assert httpx.get(f"{url}/adapters").status_code == 200
    assert httpx.get(f"{url}/adapters/{TASK}").status_code == 200


@pytest.fixture(scope="module")
def protected(minilm, tmp_path_factory):
    """In-process app (its own embedded Redis) with UNIPELT_PROTECT_READS=true."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("protected"), api_token=TOKEN, protect_reads=True
    )
    with TestClient(create_app(settings, backbone=minilm)) as client:
        files = upload_files(*task_artifact(minilm, TASK))
        assert client.put("/adapters", files=files, headers=AUTH).status_code == 201
        yield client


READS = [
    ("POST", f"/v1/{TASK}/predict", {"json": {"inputs": "x"}}, 200),
    ("POST", "/v1/not-uploaded/predict", {"json": {"inputs": "x"}}, 404),
    ("POST", "/v1/NOT..VALID/predict", {"json": {"inputs": "x"}}, 422),
    ("GET", "/adapters", {}, 200),
    ("GET", f"/adapters/{TASK}", {}, 200),
    ("GET", "/adapters/not-uploaded", {}, 404),
    ("POST", "/v1/predict", {"json": {"tasks": [TASK], "inputs": "x"}}, 200),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), READS, ids=[r[1] for r in READS])
def test_protected_reads_refuse_without_the_token(protected, method, path, kwargs, status):
    for auth in BAD_AUTH:
        r = protected.request(method, path, headers=headers_for(auth), **kwargs)
        assert r.status_code == 401, (auth, r.text)  # before 404 / 422: nothing leaks
    r = protected.request(method, path, headers=AUTH, **kwargs)
    assert r.status_code == status, r.text


def test_refused_predicts_are_counted(protected):
    """The 401 comes before the app, but the request metrics still see it."""
    assert protected.post(f"/v1/{TASK}/predict", json={"inputs": "x"}).status_code == 401
    metrics = protected.get("/metrics", headers=AUTH).text
    assert 'unipelt_requests_total{status="401",task="' in metrics


def test_metrics_need_the_token_when_reads_are_protected(protected):
    """/metrics names tasks and per-task counts, which GET /adapters hides behind 401."""
    for auth in BAD_AUTH:
        r = protected.get("/metrics", headers=headers_for(auth))
        assert r.status_code == 401 and TASK not in r.text, auth
    assert protected.get("/metrics", headers=AUTH).status_code == 200


def test_a_metrics_token_reads_metrics_only(minilm, tmp_path):
    """UNIPELT_METRICS_TOKEN: Prometheus scrapes with it; it opens nothing else."""
    settings = Settings(data_dir=tmp_path, api_token=TOKEN, metrics_token="scrape-only")
    scrape = {"Authorization": "Bearer scrape-only"}
    with TestClient(create_app(settings, backbone=minilm)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=scrape).status_code == 200
        assert client.get("/metrics", headers=AUTH).status_code == 200
        assert client.delete(f"/adapters/{TASK}", headers=scrape).status_code == 401


def test_store_errors_name_no_path_or_address(url, slot, redis_server):
    """While Redis is down, 503 details say what failed, never the socket path or the URL
    (a client without a token must not learn the data folder); the log has them."""
    secrets_in_url = [redis_server.url, str(redis_server.data_dir), ".sock", "unix://"]
    redis_server.halt()
    try:
        answers = [
            httpx.get(f"{url}/adapters", timeout=30),
            httpx.get(f"{url}/adapters/{TASK}", timeout=30),
            httpx.post(f"{url}/v1/never-uploaded/predict", json={"inputs": "x"}, timeout=30),
            httpx.get(f"{url}/readyz", timeout=30),
        ]
    finally:
        redis_server.start()
    for r in answers:
        assert r.status_code == 503, r.text
        assert not [s for s in secrets_in_url if s in r.text], r.text
    assert str(redis_server.data_dir) in slot.get().log_path.read_text()  # for the operator


def test_probes_stay_open_when_reads_are_protected(protected):
    assert protected.get("/healthz").status_code == 200
    assert protected.get("/readyz").status_code == 200


def test_an_empty_configured_token_authorizes_nothing(minilm, tmp_path):
    """UNIPELT_API_TOKEN set but empty fails closed: no header value gets a write through."""
    settings = Settings(data_dir=tmp_path, api_token="")
    with TestClient(create_app(settings, backbone=minilm)) as client:
        # HTTP strips trailing spaces: "Bearer " arrives as "Bearer", an empty token.
        r = client.delete(f"/adapters/{TASK}", headers={"Authorization": "Bearer"})
        assert r.status_code == 401, r.text


def test_task_names_follow_one_pattern_everywhere(url):
    spec = httpx.get(f"{url}/openapi.json").json()
    patterns = {
        param["schema"]["pattern"]
        for path in spec["paths"].values()
        for operation in path.values()
        for param in operation.get("parameters", [])
        if param["name"] == "task"
    }
    assert patterns == {TASK_NAME_PATTERN}


NAMES = [  # (task name, allowed): what the one pattern lets into URLs, Redis keys and files
    ("a", True),
    ("sst2", True),
    ("x-y.z_1", True),
    ("a" * 64, True),
    ("", False),
    ("A", False),
    ("-a", False),
    (".hidden", False),
    ("..", False),
    ("a/b", False),
    ("a b", False),
    ("a:b", False),
    ("a*", False),
    ("a\n", False),
    ("é", False),
    ("a" * 65, False),
]


@pytest.mark.parametrize(("name", "allowed"), NAMES)
def test_task_name_pattern(name, allowed):
    assert (re.fullmatch(TASK_NAME_PATTERN, name) is not None) is allowed


def test_upload_size_limits(url, minilm):
    manifest, weights = task_artifact(minilm, TASK)
    limit = 4 * 2**20  # RELIABILITY_SETTINGS["max_upload_bytes"]
    big = weights + b"\0" * (limit - len(weights) + 1)
    r = httpx.put(f"{url}/adapters", files=upload_files(manifest, big), headers=AUTH)
    assert r.status_code == 413 and r.json()["error"] == "adapter_too_large", r.text
    r = httpx.put(f"{url}/adapters", files=upload_files(b" " * (limit + 1), weights), headers=AUTH)
    assert r.status_code == 413, r.text

    def chunked():  # no Content-Length: the limit must hold while reading
        yield b'--b\r\nContent-Disposition: form-data; name="manifest"; filename="m"\r\n\r\n'
        yield manifest + b'\r\n--b\r\nContent-Disposition: form-data; name="weights"; '
        yield b'filename="w"\r\n\r\n'
        for _ in range(5):
            yield b"\0" * 2**20
        yield b"\r\n--b--\r\n"

    headers = {**AUTH, "content-type": "multipart/form-data; boundary=b"}
    r = httpx.put(f"{url}/adapters", content=chunked(), headers=headers, timeout=60)
    assert r.status_code == 413, r.text
    assert httpx.post(f"{url}/v1/{TASK}/predict", json={"inputs": "x"}).status_code == 200


def test_predict_body_size_is_limited(url):
    body = b'{"inputs": ["' + b"a" * (16 * 2**20) + b'"]}'
    r = httpx.post(
        f"{url}/v1/{TASK}/predict",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413, r.text[:200]
