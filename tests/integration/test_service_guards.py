"""Guards of the real app in-process: metric labels only for tasks that exist, no NaN/Inf
answered as a 200, text pairs only for pair tasks."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.main import create_app
from service.settings import Settings
from tests.bad_artifacts import replace_tensors

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "guards"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LABELS = 3


@pytest.fixture(scope="module")
def client(minilm, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("guards"),
        api_token=TOKEN,
        batch_window_ms=1,
        max_task_labels=LABELS,
        canary_on_upload=False,  # lets an adapter that overflows on every input in
    )
    with TestClient(create_app(settings, backbone=minilm)) as c:
        yield c


def upload(client, manifest: bytes, weights: bytes):
    files = {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}
    return client.put("/adapters", files=files, headers=AUTH)


def request_counts(client) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == "unipelt_requests_total":
                out[(s.labels["task"], s.labels["status"])] = s.value
    return out


def test_invalid_and_unknown_names_never_take_a_metric_label(client, minilm):
    for i in range(5 * LABELS):
        assert client.post(f"/v1/BAD{i}/predict", json={"inputs": "x"}).status_code == 422
        assert client.post(f"/v1/nope{i}/predict", json={"inputs": "x"}).status_code == 404
        assert client.post(f"/v1/nope{i}/predict", json={"nope": 1}).status_code == 422
    apl = MethodConfig.preset("apl")
    for name in ("first", "second"):
        assert upload(client, *artifact_bytes(name, apl, minilm)).status_code == 201
        assert client.post(f"/v1/{name}/predict", json={"inputs": "fine"}).status_code == 200
        assert client.post(f"/v1/{name}/predict", json={"inputs": []}).status_code == 422
    counts = request_counts(client)
    assert counts[("first", "200")] == 1 and counts[("second", "200")] == 1
    assert counts[("first", "422")] == 1  # a task that exists keeps its label on errors
    assert counts[("_unknown", "422")] == 10 * LABELS and counts[("_unknown", "404")] == 5 * LABELS
    assert {task for task, _ in counts} == {"first", "second", "_unknown"}


def _overflowing_head(tensors: dict) -> None:
    tensors["head_out_w"] = torch.full_like(tensors["head_out_w"], 3e38)


def test_non_finite_outputs_are_a_500_counted_and_never_a_200(client, minilm):
    manifest, weights = artifact_bytes("overflow", MethodConfig.preset("a"), minilm)
    assert upload(client, *replace_tensors(_overflowing_head)(manifest, weights)).status_code == 201
    r = client.post("/v1/overflow/predict", json={"inputs": ["a film", "another"]})
    assert r.status_code == 500, r.text
    assert r.json()["error"] == "non_finite_output" and "NaN or Inf" in r.json()["detail"]
    text = client.get("/metrics").text
    assert 'unipelt_non_finite_outputs_total{task="overflow"} 1.0' in text


PAIR = {"text": "the match ended", "text_pair": "two nil"}


def test_text_pairs_go_only_to_pair_tasks(client, minilm):
    apl = MethodConfig.preset("apl")
    assert upload(client, *artifact_bytes("single", apl, minilm)).status_code == 201
    assert upload(client, *artifact_bytes("paired", apl, minilm, text_pair=True)).status_code == 201
    for task, body, status in [
        ("single", {"inputs": ["one", "two"]}, 200),
        ("single", {"inputs": PAIR}, 422),
        ("single", {"inputs": ["one", PAIR]}, 422),
        ("paired", {"inputs": [PAIR, PAIR]}, 200),
        ("paired", {"inputs": "one"}, 422),
        ("paired", {"inputs": [PAIR, {"text": "one"}]}, 422),
    ]:
        r = client.post(f"/v1/{task}/predict", json=body)
        assert r.status_code == status, (task, body, r.text)
        if status == 422:
            assert r.json()["error"] == "invalid_input" and "text" in r.json()["detail"]
