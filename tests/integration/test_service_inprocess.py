"""The real app in-process (TestClient runs its lifespan): embedded real Redis, real MiniLM."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.main import create_app
from service.settings import Settings
from tests.bad_artifacts import replace_tensors

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(minilm, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("svc"),
        api_token=TOKEN,
        max_length=64,
        batch_window_ms=2,
        max_upload_bytes=8 * 2**20,
    )
    with TestClient(create_app(settings, backbone=minilm)) as c:
        yield c


def upload(client, manifest: bytes, weights: bytes, headers=AUTH):
    files = {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}
    return client.put("/adapters", files=files, headers=headers)


@pytest.fixture(scope="module")
def two_tasks(client, minilm):
    a = upload(client, *artifact_bytes("sentiment", MethodConfig.preset("apl"), minilm, seed=1))
    b = upload(
        client,
        *artifact_bytes(
            "topic",
            MethodConfig.preset("l", lora_r=4),
            minilm,
            labels=["sport", "politics", "science"],
            seed=2,
            text_pair=True,
        ),
    )
    assert a.status_code == 201, a.text
    assert b.status_code == 201, b.text
    return a.json(), b.json()


def test_upload_two_tasks_and_predict_both(client, two_tasks):
    r = client.post("/v1/sentiment/predict", json={"inputs": ["great film", "awful plot"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == two_tasks[0]["version"]
    assert [set(p["scores"]) for p in body["predictions"]] == [{"negative", "positive"}] * 2
    r = client.post(
        "/v1/topic/predict",
        json={"inputs": {"text": "the match ended", "text_pair": "two nil"}, "return_gates": True},
    )
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert pred["label"] in {"sport", "politics", "science"}
    assert set(pred["gates"]) == {"lora_q", "lora_v"}  # only the submodules the task has
    assert len(pred["gates"]["lora_q"]) == 6  # one per layer


def test_gates_are_input_dependent_for_apl(client, two_tasks):
    r = client.post(
        "/v1/sentiment/predict",
        json={
            "inputs": ["wonderful", "a long and rather boring film about nothing"],
            "return_gates": True,
        },
    )
    gates = [p["gates"] for p in r.json()["predictions"]]
    assert set(gates[0]) == {"prefix", "lora_q", "lora_v", "adapter"}
    assert gates[0] != gates[1]
    assert all(0 < v < 1 for v in gates[0]["adapter"])


ERROR_CASES = [  # (path, body, status, error kind)
    ("/v1/nope/predict", {"inputs": "x"}, 404, "unknown_task"),
    ("/v1/sentiment/predict", {"inputs": []}, 422, "invalid_input"),
    ("/v1/sentiment/predict", {"text": "wrong field"}, 422, None),
    ("/v1/sentiment/predict", {"inputs": ""}, 422, None),
    ("/v1/sentiment/predict", {"inputs": "word " * 200}, 422, "input_too_long"),
    ("/v1/sentiment/predict", {"inputs": ["x"] * 65}, 422, "invalid_input"),
    ("/v1/BAD..name/predict", {"inputs": "x"}, 422, None),
]


@pytest.mark.parametrize(("path", "body", "status", "kind"), ERROR_CASES)
def test_bad_requests_get_their_status(client, two_tasks, path, body, status, kind):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    if kind:
        assert r.json()["error"] == kind


def test_unicode_and_emoji_inputs(client, two_tasks):
    r = client.post("/v1/sentiment/predict", json={"inputs": ["naïve café 😀", "日本語のテキスト"]})
    assert r.status_code == 200, r.text


def test_writes_need_the_token(client, minilm):
    m, w = artifact_bytes("sentiment", MethodConfig.preset("a"), minilm)
    assert upload(client, m, w, headers={}).status_code == 401
    assert upload(client, m, w, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.delete("/adapters/sentiment").status_code == 401


def test_list_get_rollback_delete(client, minilm, two_tasks):
    first = two_tasks[0]["version"]
    new = upload(client, *artifact_bytes("sentiment", MethodConfig.preset("ap"), minilm, seed=5))
    assert new.status_code == 201 and new.json()["version"] > first
    listed = {t["task"]: t["live_version"] for t in client.get("/adapters").json()}
    assert listed["sentiment"] == new.json()["version"]
    r = client.post("/v1/sentiment/predict", json={"inputs": "ok"})
    assert r.json()["version"] == new.json()["version"]
    back = client.post("/adapters/sentiment/rollback", json={}, headers=AUTH)
    assert back.status_code == 200 and back.json()["version"] == first
    assert client.post("/v1/sentiment/predict", json={"inputs": "ok"}).json()["version"] == first
    detail = client.get("/adapters/sentiment").json()
    assert detail["live_version"] == first and len(detail["versions"]) >= 2
    tmp = upload(client, *artifact_bytes("temp", MethodConfig.preset("a"), minilm))
    assert tmp.status_code == 201
    assert client.delete("/adapters/temp", headers=AUTH).status_code == 200
    assert client.post("/v1/temp/predict", json={"inputs": "x"}).status_code == 404
    assert client.get("/adapters/temp").status_code == 404


def test_health_ready_metrics(client, two_tasks):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/v1/sentiment/predict", json={"inputs": "fine"})
    text = client.get("/metrics").text
    for name in (
        "unipelt_requests_total",
        "unipelt_batch_size_bucket",
        "unipelt_queue_depth",
        "unipelt_adapter_cache_misses_total",
        "unipelt_adapter_load_seconds_count",
    ):
        assert name in text
    assert 'task="sentiment"' in text
    assert 'task="nope"' not in text  # unknown tasks share one label


def test_openapi_documents_status_codes(client):
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/v1/{task}/predict"]["post"]["responses"]
    assert {"404", "422", "429", "503"} <= set(predict)
    assert {"401", "413", "422"} <= set(spec["paths"]["/adapters"]["put"]["responses"])
    assert json.dumps(spec)  # serialisable


class NewerUploadWhileWriting:
    """Blob store that, while the first upload writes its blobs (its version already
    allocated), lets a second upload of the same task commit in full: the newer version."""

    def __init__(self, store, newer: tuple[bytes, bytes]) -> None:
        self.store, self.inner, self.newer = store, store.blobs, newer

    def put(self, key: str, data: bytes) -> None:
        self.store.blobs = self.inner  # once
        self.store.publish("racer", *self.newer)
        self.inner.put(key, data)

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def test_upload_says_not_live_when_a_newer_upload_won(client, minilm):
    store = client.app.state.engine.store
    newer = artifact_bytes("racer", MethodConfig.preset("a"), minilm, seed=8)
    store.blobs = NewerUploadWhileWriting(store, newer)
    r = upload(client, *artifact_bytes("racer", MethodConfig.preset("a"), minilm, seed=7))
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["live"]) == (1, False)
    assert client.get("/adapters/racer").json()["live_version"] == 2
    assert client.post("/v1/racer/predict", json={"inputs": "x"}).json()["version"] == 2
    r = upload(client, *artifact_bytes("racer", MethodConfig.preset("a"), minilm, seed=9))
    assert (r.json()["version"], r.json()["live"]) == (3, True)


def multipart_body(manifest: bytes, weights: bytes, size: int) -> tuple[bytes, dict]:
    """An upload body of exactly `size` bytes (the weights padded to fit)."""
    boundary = b"unipelt-boundary"

    def body(pad: int) -> bytes:
        parts = [(b"manifest", manifest), (b"weights", weights + b"\0" * pad)]
        out = b""
        for name, data in parts:
            out += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name
            out += b'"; filename="' + name + b'"\r\n\r\n' + data + b"\r\n"
        return out + b"--" + boundary + b"--\r\n"

    content = body(size - len(body(0)))
    assert len(content) == size
    return content, {**AUTH, "content-type": f"multipart/form-data; boundary={boundary.decode()}"}


@pytest.mark.parametrize(("extra", "status"), [(0, 422), (1, 413)])
def test_the_upload_limit_is_the_whole_body(client, minilm, extra, status):
    """UNIPELT_MAX_UPLOAD_BYTES bounds the request body, framing included: one byte over is a
    413 even though both files together are under it; at the limit the artifact is read (and
    refused for its padded weights)."""
    limit = client.app.state.settings.max_upload_bytes
    manifest, weights = artifact_bytes("sized", MethodConfig.preset("a"), minilm)
    content, headers = multipart_body(manifest, weights, limit + extra)
    r = client.put("/adapters", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"] == ("adapter_too_large" if status == 413 else "invalid_adapter")


def test_a_lora_scale_that_passes_the_canary_is_refused_at_upload(client, minilm):
    """LoRA alpha 1.37e21 with B = 0 passes the one-input canary (and any input): the upload
    is refused by the bound on the constant scale alpha / r, not by luck of the canary."""
    cfg = MethodConfig.preset("l")
    manifest, weights = artifact_bytes("bigscale", cfg, minilm)
    zero_b = replace_tensors(
        lambda t: t.update({k: torch.zeros_like(v) for k, v in t.items() if k.endswith("_B")})
    )
    data = json.loads(manifest)
    data["method"]["lora_alpha"] = 1.37e21
    r = upload(client, *zero_b(json.dumps(data).encode(), weights))
    assert r.status_code == 422, r.text
    assert "lora_alpha / lora_r" in r.json()["detail"]
    data["method"]["lora_alpha"] = 16.0  # control: the same weights pass the canary
    assert upload(client, *zero_b(json.dumps(data).encode(), weights)).status_code == 201
