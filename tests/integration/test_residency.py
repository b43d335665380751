"""Residency a router can read: GET /residency, the slot gauges, the adapter-info gauge in the
Gateway API Inference Extension's shape, and the replica header. In-process app, real MiniLM,
embedded real Redis, a 3-slot bank and a host tier."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.main import create_app
from service.settings import Settings

pytestmark = [pytest.mark.service, pytest.mark.slow]
TASKS = [f"res-{i}" for i in range(5)]
SLOTS = 3
INFO = re.compile(r"^unipelt_lora_requests_info\{(.*)\} (\S+)$", re.M)


@pytest.fixture(scope="module")
def client(minilm, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("residency"),
        pool_slots=SLOTS,
        host_cache_bytes=64 * 2**20,
        replica_id="replica-a",
        adapter_info_max=2,
        batch_window_ms=1,
    )
    with TestClient(create_app(settings, backbone=minilm)) as c:
        cfg = MethodConfig.preset("l", lora_r=4)
        for seed, task in enumerate(TASKS):
            manifest, weights = artifact_bytes(task, cfg, minilm, seed=seed)
            files = {"manifest": ("m.json", manifest), "weights": ("a.safetensors", weights)}
            assert c.put("/adapters", files=files).status_code == 201
        for task in TASKS:  # in order: the last SLOTS tasks stay in the bank
            assert c.post(f"/v1/{task}/predict", json={"inputs": "fine"}).status_code == 200
        yield c


def info_labels(text: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'(\w+)="([^"]*)"', m[1])) for m in INFO.finditer(text)]


def test_residency_lists_tasks_by_tier(client) -> None:
    body = client.get("/residency").json()
    assert body["replica"] == "replica-a"
    assert body["slots"] == SLOTS and body["free_slots"] == 0
    assert body["queue_depth"] == 0 and body["loading"] == []
    bank = [(t["task"], t["in_use"]) for t in body["tasks"] if t["tier"] == "bank"]
    assert bank == [(task, 0) for task in reversed(TASKS[-SLOTS:])]  # most recent first
    host = {t["task"] for t in body["tasks"] if t["tier"] == "host"}
    assert set(TASKS[:-SLOTS]) <= host  # evicted from the bank, kept a copy away
    assert not host & {task for task, _ in bank}  # each task listed once, at its best tier
    assert all(t["version"] == 1 for t in body["tasks"])


def test_slot_gauges(client) -> None:
    text = client.get("/metrics").text
    assert re.search(rf"^unipelt_pool_slots {SLOTS}\.0$", text, re.M)
    assert re.search(r"^unipelt_pool_free_slots 0\.0$", text, re.M)
    assert re.search(rf"^unipelt_resident_adapters {SLOTS}\.0$", text, re.M)
    assert re.search(r"^unipelt_host_adapters [1-9]", text, re.M)
    assert re.search(r"^unipelt_queue_depth 0\.0$", text, re.M)


def test_adapter_info_gauge_has_the_inference_extension_shape(client) -> None:
    client.post(f"/v1/{TASKS[0]}/predict", json={"inputs": "again"})  # back into the bank
    text = client.get("/metrics").text
    (labels,) = info_labels(text)  # one series, whatever the traffic was
    assert set(labels) == {"running_lora_adapters", "waiting_lora_adapters", "max_lora"}
    assert labels["max_lora"] == str(SLOTS)
    # The adapter_info_max most recently used bank tasks, comma-separated, newest first.
    assert labels["running_lora_adapters"].split(",") == [TASKS[0], TASKS[-1]]
    assert labels["waiting_lora_adapters"] == ""
    (value,) = [float(m[2]) for m in INFO.finditer(text)]
    assert value > 1.7e9  # a unix timestamp, as the extension expects


def test_metrics_with_adapter_info_pass_promtool(client) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (.ci/run installs the deployment tools)")
    text = client.get("/metrics").text
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("GET", "/residency"), ("POST", "/v1/no-such-task/predict")],
)
def test_every_answer_names_the_replica(client, method: str, path: str) -> None:
    response = client.request(method, path, json={"inputs": "x"} if method == "POST" else None)
    assert response.headers["x-unipelt-replica"] == "replica-a"


@pytest.mark.parametrize("bad", ["", "has space", "line\nbreak", "-leading-dash"])
def test_replica_id_must_be_a_header_safe_name(bad: str, tmp_path) -> None:
    with pytest.raises(ValidationError, match="replica_id"):
        Settings(data_dir=tmp_path, replica_id=bad)
