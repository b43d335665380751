"""The forward in its own process: the same answers as the forward in this process (through
uploads and hot swaps, which it sees through the shared bank), a stopped child replaced, and
its shared files gone at shutdown."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.engine.inference.forward_process import refusals
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
TEXTS = ["a gripping, funny film", "dull", "the plot goes nowhere and takes its time getting there"]


def app(tmp_path: Path, minilm, forward_process: str) -> TestClient:
    settings = Settings(
        data_dir=tmp_path / forward_process, forward_process=forward_process, batch_window_ms=2
    )
    return TestClient(create_app(settings, backbone=minilm))


def upload(client, minilm, seed: int, method: str = "apl") -> None:
    manifest, weights = artifact_bytes("sst2", MethodConfig.preset(method), minilm, seed=seed)
    files = {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}
    assert client.put("/adapters", files=files).status_code == 201


def predict(client) -> dict:
    r = client.post("/v1/sst2/predict", json={"inputs": TEXTS, "return_gates": True})
    assert r.status_code == 200, r.text
    return r.json()


def close(a: dict, b: dict) -> None:
    assert a["version"] == b["version"]
    for x, y in zip(a["predictions"], b["predictions"], strict=True):
        assert x["label"] == y["label"]
        for label, p in x["scores"].items():
            assert abs(p - y["scores"][label]) < 1e-5
        for gate, values in x["gates"].items():
            assert max(abs(u - v) for u, v in zip(values, y["gates"][gate])) < 1e-5


def test_answers_equal_the_in_process_forward_through_a_hot_swap(tmp_path, minilm):
    with app(tmp_path, minilm, "on") as child, app(tmp_path, minilm, "off") as here:
        assert child.app.state.engine.forward is not None
        assert here.app.state.engine.forward is None
        answers = []
        for seed, method in ((1, "apl"), (2, "ap")):  # v2 replaces v1 in the same slot pool
            upload(child, minilm, seed, method)
            upload(here, minilm, seed, method)
            a, b = predict(child), predict(here)
            close(a, b)
            answers.append(a)
        assert answers[0]["version"] == 1 and answers[1]["version"] == 2
        assert answers[0]["predictions"] != answers[1]["predictions"]


def test_a_killed_forward_process_is_replaced(tmp_path, minilm):
    with app(tmp_path, minilm, "on") as client:
        engine = client.app.state.engine
        upload(client, minilm, 1)
        before = predict(client)
        shared = Path(engine.shared_bank.directory)
        os.kill(engine.forward.pid, signal.SIGKILL)
        time.sleep(0.5)
        r = client.post("/v1/sst2/predict", json={"inputs": TEXTS, "return_gates": True})
        assert r.status_code == 503, r.text  # the batch in flight when it died
        assert r.json()["error"] == "forward_unavailable"
        assert r.headers["retry-after"] == "1"
        close(predict(client), before)  # a new child, the same bank
        assert engine.forward.restarts == 1
        metrics = client.get("/metrics").text
        assert "unipelt_forward_process_restarts_total 1.0" in metrics
    assert not shared.exists()  # the shared bank files went with the engine


def test_when_the_forward_cannot_have_its_own_process(tmp_path, minilm):
    assert refusals("cpu", minilm.path, 1, tmp_path) == []
    assert refusals("cuda", minilm.path, 1, tmp_path) == ["the device is not a CPU"]
    assert refusals("cpu", None, 1, tmp_path) == ["the backbone has no directory to load from"]
    (why,) = refusals("cpu", minilm.path, 2**62, tmp_path)
    assert why.endswith(f"lacks {2**62} free bytes for the adapter bank")
