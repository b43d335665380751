"""Open Inference Protocol v2, spoken by the real `tritonclient[http]` to real uvicorn + Redis."""

from __future__ import annotations

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
    assert r.status_code == 404 and "not live" in r.json()["error"]
