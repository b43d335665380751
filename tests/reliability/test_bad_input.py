"""Bad input by hand, against the live service: raw predict bodies a JSON library would never
write, odd but valid text, limits, path traversal in URLs and in manifests, and malformed
artifacts (the shared table plus more). Nothing may get a 5xx, nothing bad may reach the
store, and the live adapter keeps serving."""

from __future__ import annotations

import hashlib
import io
import json
import struct

import httpx
import pytest
import torch

from harness.reliability import AUTH, redis_store, task_artifact, upload_files
from tests.bad_artifacts import BAD_ARTIFACTS

pytestmark = [pytest.mark.service, pytest.mark.slow]
TASK = "badinput"
PAIR_TASK = "badinput-pair"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def url(slot, minilm) -> str:
    return slot.with_task(minilm, TASK)


def predict_raw(url: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/{TASK}/predict", content=body, headers=headers or JSON, timeout=60)


def assert_error_body(r: httpx.Response) -> None:
    """The documented error shape: {"error": kind, "detail": text}."""
    body = r.json()
    assert set(body) >= {"error", "detail"}, body
    assert isinstance(body["detail"], str)


DEEP = b"[" * 100_000 + b"]" * 100_000
# (id, raw body, status): bodies that are not valid requests, some not even encodable back.
RAW_BODIES = [
    ("lone-surrogate", b'{"inputs": "\\ud800"}', 422),
    ("lone-surrogate-pair", b'{"inputs": {"text": "a", "text_pair": "\\udfff"}}', 422),
    ("lone-surrogate-key", b'{"\\ud800": 1, "inputs": "a"}', 422),
    ("nan", b'{"inputs": NaN}', 422),
    ("infinity-in-list", b'{"inputs": ["a", Infinity]}', 422),
    ("float-overflow", b'{"inputs": 1e999}', 422),
    ("nan-flag", b'{"inputs": "a", "return_gates": NaN}', 422),
    ("truncated-json", b'{"inputs": "a', 422),
    ("trailing-garbage", b'{"inputs": "a"} x', 422),
    ("empty-body", b"", 422),
    ("null", b"null", 422),
    ("array-body", b'["a"]', 422),
    ("invalid-utf8", b'{"inputs": "\xff\xfe"}', 400),
    ("unknown-field", b'{"inputs": "a", "evil": 1}', 422),
    ("wrong-type", b'{"inputs": 42}', 422),
    ("nested-list", b'{"inputs": [["a"]]}', 422),
    ("empty-text", b'{"inputs": ""}', 422),
    ("empty-in-list", b'{"inputs": ["a", ""]}', 422),
    ("empty-list", b'{"inputs": []}', 422),
    ("empty-pair", b'{"inputs": {"text": "a", "text_pair": ""}}', 422),
    ("blank-text", b'{"inputs": " "}', 422),
    ("blank-in-list", b'{"inputs": ["a", "\\n\\t\\r"]}', 422),
    ("blank-item-text", b'{"inputs": {"text": "\\u00a0 "}}', 422),
    ("blank-pair", b'{"inputs": {"text": "a", "text_pair": "  "}}', 422),
    ("deep-nesting", b'{"inputs": ' + DEEP + b"}", 400),
]


@pytest.mark.parametrize(("case", "body", "status"), RAW_BODIES, ids=[c[0] for c in RAW_BODIES])
def test_raw_predict_bodies_get_a_4xx_with_a_json_error(url, case, body, status):
    r = predict_raw(url, body)
    assert r.status_code == status, r.text[:300]
    if status == 422:
        assert_error_body(r)


ODD_TEXT = [  # valid, non-empty text: served like any other
    "\u0000",
    "\ufeff",
    "\u200b\u200c\u200d",
    "\u202eevil\u202c",
    "e\u0301" * 2000,
    "😀 naïve café",
    "日本語",
    " a ",
    "\u0007\u001b[31m",
    "\ue000\uffff\U0010ffff",
    "<script>alert(1)</script>",
    "'; DROP TABLE tasks; --",
    "%s%n%x{0}${jndi:x}",
]


def test_odd_but_valid_text_is_served(url):
    r = httpx.post(f"{url}/v1/{TASK}/predict", json={"inputs": ODD_TEXT}, timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == len(ODD_TEXT)


@pytest.fixture(scope="module")
def pair_url(url, minilm) -> str:
    """The service with a task that takes text pairs (the same weights, a pair tokenizer)."""
    manifest, weights = task_artifact(minilm, PAIR_TASK)
    data = json.loads(manifest)
    data["tokenizer"]["text_pair"] = True
    files = upload_files(json.dumps(data).encode(), weights)
    r = httpx.put(f"{url}/adapters", files=files, headers=AUTH, timeout=60)
    assert r.status_code == 201, r.text
    return url


PAIR = {"text": "a", "text_pair": "b"}
LIMITS = [  # (id, task, json body, status, error kind, text in the detail)
    ("too-many-inputs", TASK, {"inputs": ["x"] * 65}, 422, "invalid_input", "at most"),
    ("too-many-chars", TASK, {"inputs": "a" * 20_001}, 422, "invalid_input", "characters"),
    (
        "too-many-chars-pair",
        PAIR_TASK,
        {"inputs": {"text": "a" * 10_000, "text_pair": "b" * 10_001}},
        422,
        "invalid_input",
        "characters",
    ),
    ("too-many-tokens", TASK, {"inputs": "字" * 300}, 422, "input_too_long", "tokens"),
    (
        "too-many-tokens-pair",
        PAIR_TASK,
        {"inputs": {"text": "word " * 70, "text_pair": "word " * 70}},
        422,
        "input_too_long",
        "tokens",
    ),
    ("pair-to-single-task", TASK, {"inputs": PAIR}, 422, "invalid_input", "single texts"),
    ("pair-in-list", TASK, {"inputs": ["a", PAIR]}, 422, "invalid_input", "input 1"),
    ("single-to-pair-task", PAIR_TASK, {"inputs": "a"}, 422, "invalid_input", "text pairs"),
    ("single-in-list", PAIR_TASK, {"inputs": [PAIR, "a"]}, 422, "invalid_input", "input 1"),
]


@pytest.mark.parametrize(
    ("case", "task", "body", "status", "kind", "detail"), LIMITS, ids=[c[0] for c in LIMITS]
)
def test_input_limits(pair_url, case, task, body, status, kind, detail):
    r = httpx.post(f"{pair_url}/v1/{task}/predict", json=body, timeout=60)
    assert r.status_code == status, r.text[:300]
    assert r.json()["error"] == kind and detail in r.json()["detail"], r.text[:300]


def test_pairs_are_served_by_a_pair_task(pair_url):
    r = httpx.post(f"{pair_url}/v1/{PAIR_TASK}/predict", json={"inputs": [PAIR]}, timeout=60)
    assert r.status_code == 200, r.text[:300]


def test_very_large_predict_body_gets_a_4xx_and_the_service_stays_up(url):
    body = json.dumps({"inputs": ["word " * 4000] * 400}).encode()  # 8 MB, 400 inputs
    r = predict_raw(url, body)
    assert 400 <= r.status_code < 500, r.text[:300]
    ok = httpx.post(f"{url}/v1/{TASK}/predict", json={"inputs": "still fine"}, timeout=60)
    assert ok.status_code == 200


PATHS = [  # (method, path, allowed statuses): traversal and names outside the task pattern
    ("POST", "/v1/..%2F..%2Fetc/predict", {404}),
    ("POST", "/v1/../../etc/passwd/predict", {404}),
    ("POST", "/v1/%2e%2e/predict", {404, 422}),
    ("POST", "/v1/a%2Fb/predict", {404}),
    ("POST", "/v1/a%00b/predict", {422}),
    ("POST", "/v1/a%0Ab/predict", {422}),
    ("POST", "/v1/%C3%A9t%C3%A9/predict", {422}),
    ("POST", "/v1/UPPER/predict", {422}),
    ("POST", "/v1/-dash/predict", {422}),
    ("POST", "/v1/.hidden/predict", {422}),
    ("POST", "/v1/a:b/predict", {422}),
    ("POST", "/v1/a*/predict", {422}),
    ("POST", f"/v1/{'a' * 65}/predict", {422}),
    ("POST", "/v1/a..b/predict", {404}),  # a valid name that is not uploaded
    ("GET", "/adapters/..%2F..%2Fetc%2Fpasswd", {404}),
    ("GET", "/adapters/%2e%2e", {404, 422}),
    ("GET", "/adapters/*", {422}),
    ("DELETE", "/adapters/..%2Fbadinput", {404}),
    ("DELETE", "/adapters/%2A", {422}),
    ("POST", "/adapters/%2e%2e/rollback", {404, 422}),
]


@pytest.mark.parametrize(("method", "path", "allowed"), PATHS, ids=[p[1] for p in PATHS])
def test_task_names_in_urls(url, method, path, allowed):
    body = {"inputs": "x"} if path.endswith("/predict") else {}
    r = httpx.request(method, url + path, json=body, headers=AUTH, timeout=30)
    assert r.status_code in allowed, (r.status_code, r.text[:300])
    assert httpx.post(f"{url}/v1/{TASK}/predict", json={"inputs": "x"}).status_code == 200


MANIFEST_TASKS = [
    "../x",
    "a/b",
    "..",
    ".",
    "UPPER",
    "x" * 65,
    "",
    "a\u0000b",
    "a b",
    "é",
    "-x",
    "a:b",
    "a*",
    "task\n",
]


@pytest.mark.parametrize("name", MANIFEST_TASKS, ids=[repr(n) for n in MANIFEST_TASKS])
def test_task_names_in_manifests(url, minilm, redis_server, name):
    manifest, weights = task_artifact(minilm, TASK)
    data = json.loads(manifest)
    data["task"] = name
    r = httpx.put(
        f"{url}/adapters",
        files=upload_files(json.dumps(data).encode(), weights),
        headers=AUTH,
        timeout=60,
    )
    assert r.status_code == 422, r.text[:300]
    assert name not in redis_store(redis_server.url).tasks()


def _with_checksum(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
    data = json.loads(manifest)
    data["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    return json.dumps(data).encode(), blob


def _torch_save(manifest: bytes, blob: bytes) -> tuple[bytes, bytes]:
    buffer = io.BytesIO()
    torch.save({"lora_q_A": torch.zeros(3)}, buffer)  # a zip of pickles: never loaded
    return _with_checksum(manifest, buffer.getvalue())


MORE_BAD_ARTIFACTS = [  # (id, mutation, text in the 422 detail)
    ("torch-save-zip", _torch_save, "safetensors"),
    ("empty-weights", lambda m, b: _with_checksum(m, b""), "safetensors"),
    (
        "header-length-2**63",
        lambda m, b: _with_checksum(m, struct.pack("<Q", 2**63) + b"{}"),
        "safetensors",
    ),
    (
        "header-not-json",
        lambda m, b: _with_checksum(m, struct.pack("<Q", 5) + b"nope!"),
        "safetensors",
    ),
    (
        "header-past-end",
        lambda m, b: _with_checksum(m, struct.pack("<Q", 100) + b"{}"),
        "safetensors",
    ),
    ("manifest-not-utf8", lambda m, b: (b"\xff\xfe\x00", b), "json"),
    ("manifest-empty", lambda m, b: (b"", b), "json"),
    (
        "manifest-5000-labels",
        lambda m, b: (
            json.dumps({**json.loads(m), "label_names": [f"l{i}" for i in range(5000)]}).encode(),
            b,
        ),
        "label_names",
    ),
]
ALL_BAD = [(c, f, r) for c, f, r in BAD_ARTIFACTS + MORE_BAD_ARTIFACTS]


@pytest.mark.parametrize(("case", "mutate", "reason"), ALL_BAD, ids=[c[0] for c in ALL_BAD])
def test_bad_artifacts_are_refused_and_never_stored(
    url, minilm, redis_server, case, mutate, reason
):
    store = redis_store(redis_server.url)
    live = store.live_version(TASK)
    manifest, weights = mutate(*task_artifact(minilm, TASK, 1))
    r = httpx.put(
        f"{url}/adapters", files=upload_files(manifest, weights), headers=AUTH, timeout=60
    )
    assert 400 <= r.status_code < 500, r.text[:300]
    assert_error_body(r)
    assert reason.lower() in r.json()["detail"].lower()
    assert store.live_version(TASK) == live
    after = httpx.post(f"{url}/v1/{TASK}/predict", json={"inputs": "x"})
    assert after.status_code == 200 and after.json()["version"] == live


def test_deeply_nested_manifest_is_refused(url, minilm):
    _, weights = task_artifact(minilm, TASK)
    manifest = b'{"task": "badinput", "x": ' + DEEP + b"}"
    r = httpx.put(f"{url}/adapters", files=upload_files(manifest, weights), headers=AUTH)
    assert r.status_code == 422, r.text[:300]


MULTIPART = [  # (id, request kwargs, status)
    ("no-weights-part", {"files": {"manifest": ("m.json", b"{}")}}, 422),
    ("fields-not-files", {"data": {"manifest": "{}", "weights": "x"}}, 422),
    (
        "broken-multipart",
        {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        422,
    ),
    ("no-boundary", {"content": b"junk", "headers": {"content-type": "multipart/form-data"}}, 400),
    ("json-instead", {"json": {"manifest": {}, "weights": "AAAA"}}, 422),
]


@pytest.mark.parametrize(("case", "kwargs", "status"), MULTIPART, ids=[c[0] for c in MULTIPART])
def test_malformed_multipart_uploads(url, case, kwargs, status):
    kwargs = dict(kwargs)
    headers = {**AUTH, **kwargs.pop("headers", {})}
    r = httpx.put(f"{url}/adapters", headers=headers, timeout=60, **kwargs)
    assert r.status_code == status, r.text[:300]
