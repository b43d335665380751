"""POST /v1/predict: one set of inputs through several tasks (real uvicorn + Redis)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from adapters.artifact import serialize
from adapters.config import MethodConfig
from harness.service_process import start_service, upload
from harness.tasks import artifact_bytes, make_manifest, random_task
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "tok"
TOPICS = ["sport", "politics", "science"]
TEXTS = ["a gripping, beautifully acted film", "the match went to extra time", "dull"]


def tasks_to_upload(minilm) -> list[tuple[bytes, bytes]]:
    return [
        artifact_bytes("sentiment", MethodConfig.preset("apl"), minilm, seed=1),
        artifact_bytes("topic", MethodConfig.preset("l", lora_r=4), minilm, TOPICS, seed=2),
        artifact_bytes("score", MethodConfig.preset("a"), minilm, labels=[], seed=3),
        artifact_bytes("nli", MethodConfig.preset("ap"), minilm, seed=4, text_pair=True),
    ]


@pytest.fixture(scope="module")
def url(tmp_path_factory, minilm):
    env = {"UNIPELT_API_TOKEN": TOKEN, "UNIPELT_MAX_FANOUT_ROWS": "9"}
    service = start_service(tmp_path_factory.mktemp("fanout"), env)
    for manifest, weights in tasks_to_upload(minilm):
        assert upload(service.url, manifest, weights, TOKEN).status_code == 201
    yield service.url
    service.stop()


def fanout(url: str, tasks: list[str], inputs) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", json={"tasks": tasks, "inputs": inputs}, timeout=60)


def test_every_task_answers_every_input_with_its_version(url):
    r = fanout(url, ["topic", "sentiment", "score"], TEXTS)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [a["task"] for a in results] == ["topic", "sentiment", "score"]
    for answer in results:
        single = httpx.post(f"{url}/v1/{answer['task']}/predict", json={"inputs": TEXTS}).json()
        assert answer["version"] == single["version"] == 1
        for got, want in zip(answer["predictions"], single["predictions"], strict=True):
            assert got["label"] == want["label"]
            for key in want["scores"] or {}:
                assert got["scores"][key] == pytest.approx(want["scores"][key], abs=1e-5)
            if want["value"] is not None:
                assert got["value"] == pytest.approx(want["value"], abs=1e-5)
    assert list(results[0]["predictions"][0]["scores"]) == TOPICS


def test_an_unknown_task_is_a_404_naming_it_with_no_partial_answer(url):
    r = fanout(url, ["sentiment", "missing-task"], TEXTS)
    assert r.status_code == 404 and "missing-task" in r.json()["detail"]
    assert "results" not in r.json()


def test_a_pairing_a_task_does_not_take_is_a_422(url):
    r = fanout(url, ["sentiment", "nli"], TEXTS)
    assert r.status_code == 422 and "nli" in r.json()["detail"]
    pairs = [{"text": "a man sleeps", "text_pair": "a person rests"}]
    r = fanout(url, ["nli", "sentiment"], pairs)
    assert r.status_code == 422 and "sentiment" in r.json()["detail"]
    assert fanout(url, ["nli"], pairs).status_code == 200


def test_tasks_times_inputs_is_bounded_and_tasks_are_distinct(url):
    assert fanout(url, ["sentiment", "topic", "score"], TEXTS).status_code == 200  # 9 rows
    r = fanout(url, ["sentiment", "topic", "score"], [*TEXTS, "one more"])
    assert r.status_code == 422 and "UNIPELT_MAX_FANOUT_ROWS" in r.json()["detail"]
    assert fanout(url, ["sentiment", "sentiment"], TEXTS).status_code == 422
    assert fanout(url, [], TEXTS).status_code == 422


def test_each_input_is_tokenised_once_whatever_the_tasks(minilm, tmp_path):
    """The batch encoder tokenises each distinct text once per batch, across tasks and their
    max_length settings (each row's limit is checked on the shared token ids)."""
    settings = Settings(data_dir=tmp_path, api_token=TOKEN, batch_window_ms=20)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cfg = MethodConfig.preset("l", lora_r=4)
    with TestClient(create_app(settings, backbone=minilm)) as client:
        for name, max_length in (("a", 128), ("b", 128), ("c", 64)):
            manifest = make_manifest(name, cfg, minilm, ["x", "y"], max_length=max_length)
            blobs = serialize(manifest, random_task(cfg, minilm, 2))
            files = {"manifest": ("m.json", blobs[0]), "weights": ("w.safetensors", blobs[1])}
            assert client.put("/adapters", files=files, headers=auth).status_code == 201
        encoder = client.app.state.engine.runner.encoder
        texts: list[str] = []
        tokenizer = encoder.tokenizer
        encoder.tokenizer = lambda batch, **kw: texts.extend(batch) or tokenizer(batch, **kw)
        for tasks in (["a", "b"], ["a", "b", "c"]):
            texts.clear()
            body = {"tasks": tasks, "inputs": TEXTS}
            assert client.post("/v1/predict", json=body).status_code == 200
            assert sorted(texts) == sorted(TEXTS)
