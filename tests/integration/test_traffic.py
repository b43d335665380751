"""Rollouts in the real app (in-process, real Redis, MiniLM): staged uploads and pinning, a
weighted split over 2,000 requests, sticky keys, validation, the interactions with upload,
rollback and delete, and the per-version signals in /metrics."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from fastapi.testclient import TestClient

from adapters.config import MethodConfig
from harness.tasks import artifact_bytes
from service.engine.lifecycle.routing import sticky_bucket
from service.main import create_app
from service.settings import Settings
from service.store.split import TrafficSplit

pytestmark = [pytest.mark.service, pytest.mark.slow]
SMALL = MethodConfig.preset("l", lora_r=2)
GATED = MethodConfig.preset("apl", bottleneck=8, prefix_length=2, lora_r=2)


@pytest.fixture(scope="module")
def client(minilm, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("traffic"), batch_window_ms=2)
    with TestClient(create_app(settings, backbone=minilm)) as c:
        yield c


def upload(client: TestClient, task: str, minilm, seed: int, live: bool = True, cfg=SMALL):
    manifest, weights = artifact_bytes(task, cfg, minilm, seed=seed)
    files = {"manifest": ("manifest.json", manifest), "weights": ("adapter.safetensors", weights)}
    data = {} if live else {"live": "false"}
    r = client.put("/adapters", files=files, data=data)
    assert r.status_code == 201, r.text
    return r.json()


def predict(client: TestClient, path: str, **body) -> dict:
    r = client.post(path, json={"inputs": "a gripping film", **body.pop("json", {})}, **body)
    assert r.status_code == 200, r.text
    return r.json()


def traffic(client: TestClient, task: str, split: dict[str, int]) -> dict:
    r = client.put(f"/adapters/{task}/traffic", json={"split": split})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_staged_upload_is_pinnable_everywhere_but_not_live(client, minilm):
    task = "staged"
    assert upload(client, task, minilm, seed=1)["live"] is True
    staged = upload(client, task, minilm, seed=2, live=False)
    assert (staged["version"], staged["live"], staged["split"]) == (2, False, None)
    assert predict(client, f"/v1/{task}/predict")["version"] == 1
    pinned = predict(client, f"/v1/{task}/versions/2/predict")
    assert pinned["version"] == 2
    assert pinned["predictions"] != predict(client, f"/v1/{task}/predict")["predictions"]
    infer = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a film"]}]}
    r = client.post(f"/v2/models/{task}/versions/2/infer", json=infer)
    assert r.status_code == 200 and r.json()["model_version"] == "2"
    fan = predict(client, "/v1/predict", json={"tasks": [{"task": task, "version": 2}, task]})
    assert [a["version"] for a in fan["results"]] == [2, 1]
    for path, body in [
        (f"/v1/{task}/versions/9/predict", {"inputs": "x"}),
        ("/v1/predict", {"inputs": "x", "tasks": [{"task": task, "version": 9}]}),
    ]:
        r = client.post(path, json=body)
        assert r.status_code == 404 and r.json()["error"] == "unknown_version", r.text
    r = client.post(f"/v2/models/{task}/versions/9/infer", json=infer)
    assert r.status_code == 404 and r.json()["error"].startswith("unknown_version:")
    assert client.get(f"/adapters/{task}").json()["live_version"] == 1


def test_a_task_with_only_staged_versions_is_served_by_pin_only(client, minilm):
    task = "only-staged"
    upload(client, task, minilm, seed=1, live=False)
    r = client.post(f"/v1/{task}/predict", json={"inputs": "x"})
    assert r.status_code == 404 and "staged" in r.json()["detail"]
    assert predict(client, f"/v1/{task}/versions/1/predict")["version"] == 1
    assert client.post(f"/adapters/{task}/promote", json={"version": 1}).status_code == 200
    assert predict(client, f"/v1/{task}/predict")["version"] == 1


async def concurrently(app, path: str, n: int, at_once: int = 64) -> list[int]:
    """`n` predict requests, `at_once` in flight (so the batcher fills its batches), sent on
    the app's own event loop; the version each answer names."""
    gate = asyncio.Semaphore(at_once)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:

        async def one() -> int:
            async with gate:
                r = await http.post(path, json={"inputs": "a gripping film"})
            assert r.status_code == 200, r.text
            return r.json()["version"]

        return list(await asyncio.gather(*(one() for _ in range(n))))


def test_a_90_10_split_over_2000_requests_lands_within_binomial_bounds(client, minilm):
    task = "ninety"
    upload(client, task, minilm, seed=1)
    upload(client, task, minilm, seed=2, live=False)
    routing = traffic(client, task, {"1": 90, "2": 10})
    assert routing["split"] == {"1": 90, "2": 10} and routing["live_version"] == 1
    n = 2000
    versions = client.portal.call(concurrently, client.app, f"/v1/{task}/predict", n)
    counts = {v: versions.count(v) for v in set(versions)}
    assert set(counts) == {1, 2}
    sigma = math.sqrt(n * 0.1 * 0.9)  # 13.4: the canary's count is Binomial(2000, 0.1)
    assert abs(counts[2] - 200) <= 5 * sigma, counts


def test_a_sticky_key_always_gets_the_same_version(client, minilm):
    task = "sticky"
    upload(client, task, minilm, seed=1)
    upload(client, task, minilm, seed=2, live=False)
    traffic(client, task, {"1": 50, "2": 50})
    split = TrafficSplit.parse({"1": 50, "2": 50})
    seen: dict[str, set[int]] = {}
    for i in range(16):
        key = f"user-{i}"
        for n in range(4):
            kw = {"headers": {"X-Sticky-Key": key}} if n % 2 else {"json": {"sticky_key": key}}
            seen.setdefault(key, set()).add(predict(client, f"/v1/{task}/predict", **kw)["version"])
    assert all(len(v) == 1 for v in seen.values()), seen
    assert {next(iter(v)) for v in seen.values()} == {1, 2}  # both versions have users
    for key, (version,) in seen.items():  # the documented hash, the same on every replica
        assert version == split.version_at(sticky_bucket(task, key))
    traffic(client, task, {"1": 10, "2": 90})  # ramp the canary up: its users stay on it
    for key, (version,) in seen.items():
        now = predict(client, f"/v1/{task}/predict", json={"sticky_key": key})["version"]
        assert now == 2 or version == 1


@pytest.mark.parametrize(
    ("split", "words"),
    [
        ({"1": 90, "2": 9}, "sum to 99"),
        ({"1": 110, "2": -10}, "from 0 to 100"),
        ({"1": 90.5, "2": 9.5}, "integer"),
        ({"1": 90, "9": 10}, "has no version 9"),
        ({"1": 20, "2": 20, "3": 20, "4": 20, "5": 20}, "1 to 4 versions"),
        ({}, "1 to 4 versions"),
        ({"one": 100}, "not a positive integer"),
    ],
)
def test_a_split_that_breaks_a_rule_is_a_422_with_the_reason(client, minilm, split, words):
    task = "rules"
    if client.get(f"/adapters/{task}").status_code == 404:
        upload(client, task, minilm, seed=1)
        upload(client, task, minilm, seed=2, live=False)
    r = client.put(f"/adapters/{task}/traffic", json={"split": split})
    assert r.status_code == 422 and r.json()["error"] == "invalid_traffic", r.text
    assert words in r.json()["detail"]
    assert client.get(f"/adapters/{task}/traffic").json()["split"] is None  # nothing changed


def test_traffic_on_an_unknown_task_is_a_404(client):
    for method, path, body in [
        ("GET", "/adapters/nope/traffic", None),
        ("PUT", "/adapters/nope/traffic", {"split": {"1": 100}}),
        ("POST", "/adapters/nope/promote", {"version": 1}),
        ("POST", "/adapters/nope/abort", None),
    ]:
        r = client.request(method, path, json=body)
        assert r.status_code == 404 and r.json()["error"] == "unknown_task", (path, r.text)


def test_upload_rollback_promote_and_delete_during_a_split(client, minilm):
    task = "during"
    for seed in (1, 2):
        upload(client, task, minilm, seed=seed, live=seed == 1)
    first = traffic(client, task, {"1": 50, "2": 50})
    # An upload during a split commits but does not go live; the split keeps routing.
    third = upload(client, task, minilm, seed=3)
    assert (third["live"], third["split"]) == (False, {"1": 50, "2": 50})
    assert upload(client, task, minilm, seed=4, live=False)["live"] is False
    assert client.get(f"/adapters/{task}/traffic").json() == first
    # A version in the split cannot be deleted; one outside it can.
    r = client.delete(f"/adapters/{task}/versions/2")
    assert r.status_code == 409 and "traffic split" in r.json()["detail"]
    assert client.delete(f"/adapters/{task}/versions/3").status_code == 200
    assert predict_status(client, f"/v1/{task}/versions/3/predict") == 404
    # Promote only a version of the split.
    r = client.post(f"/adapters/{task}/promote", json={"version": 4})
    assert r.status_code == 409 and "not in the traffic split" in r.json()["detail"]
    # A rollback ends the split: its target takes all traffic.
    r = client.post(f"/adapters/{task}/rollback", json={"version": 2})
    assert r.status_code == 200 and r.json()["split"] is None
    after = client.get(f"/adapters/{task}/traffic").json()
    assert (after["live_version"], after["split"]) == (2, None)
    assert after["generation"] > first["generation"]
    assert {predict(client, f"/v1/{task}/predict")["version"] for _ in range(8)} == {2}
    # Abort returns to the live version; a second abort changes nothing.
    traffic(client, task, {"2": 50, "4": 50})
    aborted = client.post(f"/adapters/{task}/abort").json()
    assert (aborted["live_version"], aborted["split"]) == (2, None)
    assert client.post(f"/adapters/{task}/abort").json() == aborted
    # Deleting the task takes its split with it.
    traffic(client, task, {"2": 50, "4": 50})
    assert client.delete(f"/adapters/{task}").status_code == 200
    assert client.get(f"/adapters/{task}/traffic").status_code == 404


def predict_status(client: TestClient, path: str) -> int:
    return client.post(path, json={"inputs": "x"}).status_code


def test_per_version_signals_compare_the_canary_with_live(client, minilm):
    task = "signals"
    upload(client, task, minilm, seed=1, cfg=GATED)
    upload(client, task, minilm, seed=2, live=False, cfg=GATED)
    upload(client, task, minilm, seed=3, live=False, cfg=GATED)
    traffic(client, task, {"1": 50, "2": 50})
    versions = {predict(client, f"/v1/{task}/predict")["version"] for _ in range(24)}
    assert versions == {1, 2}
    predict(client, f"/v1/{task}/versions/3/predict")  # a pin outside the routing
    text = client.get("/metrics").text
    for version in ("1", "2", "_other"):
        assert (
            f'unipelt_version_requests_total{{status="200",task="{task}",version="{version}"}}'
            in text
        )
    assert f'unipelt_version_request_duration_seconds_count{{task="{task}",version="2"}}' in text
    labels = [line for line in text.splitlines() if line.startswith("unipelt_version_predictions")]
    assert any(f'task="{task}",version="1"' in line and "label=" in line for line in labels)
    gates = [line for line in text.splitlines() if "unipelt_version_gate_value_count" in line]
    for gate in ("prefix", "lora_q", "lora_v", "adapter"):  # the first request of each is sampled
        assert any(f'gate="{gate}",task="{task}",version="1"' in line for line in gates), gates
    r = client.post(f"/v1/{task}/predict", json={"inputs": {"text": "a", "text_pair": "b"}})
    assert r.status_code == 422
    text = client.get("/metrics").text
    assert f'status="422",task="{task}"' in text  # the refused part counts for its version


def test_a_split_survives_a_restart(minilm, tmp_path):
    """The embedded Redis persists the routing: a new process on the same data serves the
    split (both versions, by weight) without being told again."""
    settings = Settings(data_dir=tmp_path, batch_window_ms=2)
    with TestClient(create_app(settings, backbone=minilm)) as first:
        upload(first, "kept", minilm, seed=1)
        upload(first, "kept", minilm, seed=2, live=False)
        written = traffic(first, "kept", {"1": 50, "2": 50})
    with TestClient(create_app(settings, backbone=minilm)) as second:
        assert second.get("/adapters/kept/traffic").json() == written
        served = {predict(second, "/v1/kept/predict")["version"] for _ in range(24)}
        assert served == {1, 2}
