"""Open Inference Protocol v2, spoken by the real `tritonclient[http]` to real uvicorn + Redis."""

from __future__ import annotations

import http.client as http_client
import json
import struct

import httpx
import numpy as np
import pytest
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

from adapters.config import MethodConfig
from harness.service_process import start_service, upload
from harness.tasks import artifact_bytes

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "tok"
TEXTS = ["a gripping, beautifully acted film", "dull and far too long"]
TOPICS = ["sport", "politics", "science"]
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def service(tmp_path_factory, minilm):
    running = start_service(tmp_path_factory.mktemp("v2"), {"UNIPELT_API_TOKEN": TOKEN})
    for blobs in (
        artifact_bytes("topic", MethodConfig.preset("apl"), minilm, TOPICS, seed=1),
        artifact_bytes("score", MethodConfig.preset("l"), minilm, labels=[], seed=2),
        artifact_bytes("nli", MethodConfig.preset("ap"), minilm, seed=3, text_pair=True),
    ):
        assert upload(running.url, *blobs, token=TOKEN).status_code == 201
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(service):
    c = http.InferenceServerClient(service.url.removeprefix("http://"))
    yield c
    c.close()


def text_input(name: str, texts: list[str], binary: bool):
    tensor = http.InferInput(name, [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    return tensor


def v1(service, task: str, inputs) -> list[dict]:
    r = httpx.post(f"{service.url}/v1/{task}/predict", json={"inputs": inputs}, timeout=60)
    return r.json()["predictions"]


def test_health_and_model_readiness(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("topic") and not client.is_model_ready("absent")


def test_model_metadata_names_inputs_outputs_and_version(client):
    meta = client.get_model_metadata("topic")
    assert meta["name"] == "topic" and meta["versions"] == ["1"]
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [("text", "BYTES")]
    assert meta["outputs"][1] == {"name": "scores", "datatype": "FP32", "shape": [-1, 3]}
    pair = client.get_model_metadata("nli")
    assert [t["name"] for t in pair["inputs"]] == ["text", "text_pair"]
    assert [t["name"] for t in client.get_model_metadata("score")["outputs"]] == ["value"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_label_and_scores_equal_the_v1_answer(client, service, binary):
    outputs = [http.InferRequestedOutput(n, binary_data=binary) for n in ("label", "scores")]
    result = client.infer("topic", [text_input("text", TEXTS, binary)], outputs=outputs)
    labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
    scores = result.as_numpy("scores")
    assert scores.dtype == np.float32 and scores.shape == (2, 3)
    expected = v1(service, "topic", TEXTS)
    assert labels == [p["label"] for p in expected]
    want = np.array([[p["scores"][t] for t in TOPICS] for p in expected], dtype=np.float32)
    np.testing.assert_allclose(scores, want, atol=1e-6)
    assert result.get_response()["model_version"] == "1"


def test_default_request_and_pairs_and_regression(client, service):
    result = client.infer("score", [text_input("text", TEXTS, True)])  # all outputs, binary
    values = result.as_numpy("value")
    want = [p["value"] for p in v1(service, "score", TEXTS)]
    np.testing.assert_allclose(values, np.array(want, dtype=np.float32), atol=1e-6)
    pairs = ["it was fine", "I left early"]
    both = [text_input("text", TEXTS, False), text_input("text_pair", pairs, True)]
    result = client.infer("nli", both, outputs=[http.InferRequestedOutput("label")])
    expected = v1(service, "nli", [{"text": t, "text_pair": p} for t, p in zip(TEXTS, pairs)])
    assert [x.decode() for x in result.as_numpy("label")] == [p["label"] for p in expected]
    assert result.as_numpy("scores") is None  # only what was asked for


@pytest.mark.parametrize(
    ("model", "inputs", "status", "words"),
    [
        ("absent", [("text", TEXTS)], "404", "absent"),
        ("nli", [("text", TEXTS)], "422", "text_pair"),
        ("topic", [("text", TEXTS), ("text_pair", TEXTS)], "422", "single texts"),
        ("topic", [("words", TEXTS)], "400", "'text'"),
        ("topic", [("text", TEXTS), ("text_pair", TEXTS[:1])], "400", "elements"),
    ],
)
def test_errors_follow_the_protocol(client, model, inputs, status, words):
    tensors = [text_input(name, texts, True) for name, texts in inputs]
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, tensors)
    assert info.value.status() == status and words in info.value.message()


def test_error_bodies_are_protocol_errors(service):
    r = httpx.post(f"{service.url}/v2/models/topic/infer", content=b"{not json", timeout=30)
    assert r.status_code == 400 and list(r.json()) == ["error"]
    r = httpx.post(f"{service.url}/v2/models/topic/versions/7/infer", json={"inputs": []})
    assert r.status_code == 404 and r.json()["error"].startswith("unknown_version:")


def _infer_body(**tensor: object) -> bytes:
    base = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}
    return json.dumps({"inputs": [{**base, **tensor}]}).encode()


def _binary_body(size: object) -> tuple[bytes, dict[str, str]]:
    """A binary-extension request of one element, with `size` as its binary_data_size."""
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1]}
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": size}}]})
    body = header.encode() + struct.pack("<I", 4) + b"fine"
    return body, {"Inference-Header-Content-Length": str(len(header))}


def _padded_to(size: int, length_header: str) -> tuple[bytes, dict[str, str]]:
    """A valid JSON request of exactly `size` bytes, announced with `length_header`."""
    body = _infer_body()
    body = body[:-1] + b" " * (size - len(body)) + b"}"
    return body, {"Inference-Header-Content-Length": length_header}


# (case, path, body, extra headers, status): every answer in the protocol's error shape.
BAD_V2 = [
    ("input-parameters-list", "/v2/models/topic/infer", _infer_body(parameters=[1]), {}, 400),
    ("input-parameters-string", "/v2/models/topic/infer", _infer_body(parameters="x"), {}, 400),
    (
        "output-parameters-list",
        "/v2/models/topic/infer",
        json.dumps(
            {
                "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}],
                "outputs": [{"name": "label", "parameters": [1]}],
            }
        ).encode(),
        {},
        400,
    ),
    ("size-not-a-number", "/v2/models/topic/infer", *_binary_body("x"), 400),
    (
        "shape-wraps-int64",
        "/v2/models/topic/infer",
        _infer_body(shape=[4611686018427387905, 4], data=["a", "b", "c", "d"]),
        {},
        400,
    ),
    ("blank-text", "/v2/models/topic/infer", _infer_body(data=["  "]), {}, 422),
    ("empty-text", "/v2/models/topic/infer", _infer_body(data=[""]), {}, 422),
    ("bad-task-name", "/v2/models/BAD..name/infer", _infer_body(), {}, 422),
    ("version-not-int", "/v2/models/topic/versions/x1/infer", _infer_body(), {}, 422),
    ("header-length-underscore", "/v2/models/topic/infer", *_padded_to(105, "1_05"), 400),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "headers", "status"), BAD_V2, ids=[c[0] for c in BAD_V2]
)
def test_bad_v2_requests_get_a_protocol_error_and_keep_the_connection(
    service, case, path, body, headers, status
):
    """A real socket: the error is a 4xx in the protocol's shape (one short line, no echo of
    the input), and the next request on the same keep-alive connection is served."""
    host, port = service.url.removeprefix("http://").split(":")
    conn = http_client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", path, body, {"content-type": "application/json", **headers})
        first = conn.getresponse()
        answer = json.loads(first.read())
        sock = conn.sock
        assert first.status == status, answer
        assert list(answer) == ["error"] and "\n" not in answer["error"], answer
        assert "pydantic" not in answer["error"] and "  " not in answer["error"], answer
        assert (first.getheader("connection") or "").lower() != "close"
        conn.request("POST", "/v2/models/topic/infer", _infer_body(), JSON_HEADERS)
        second = conn.getresponse()
        assert second.status == 200 and conn.sock is sock, second.read()[:200]
        second.read()
    finally:
        conn.close()
