"""The real app over real HTTP (uvicorn on 127.0.0.1) with a real Redis shared by two replicas."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from adapters.config import MethodConfig
from harness.service_process import start_service, upload
from harness.tasks import artifact_bytes
from tests.bad_artifacts import BAD_ARTIFACTS

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "tok"
APL = MethodConfig.preset("apl")


@pytest.fixture(scope="module")
def replicas(redis_server, tmp_path_factory):
    env = {
        "REDIS_URL": redis_server.url,
        "UNIPELT_API_TOKEN": TOKEN,
        "UNIPELT_MAX_UPLOAD_BYTES": str(4 * 2**20),
        "UNIPELT_BATCH_WINDOW_MS": "2",
    }
    a = start_service(tmp_path_factory.mktemp("a"), env)
    b = start_service(tmp_path_factory.mktemp("b"), env)
    yield a, b
    for s in (a, b):
        s.stop()


def predict(url: str, task: str, text: str = "a fine film") -> httpx.Response:
    return httpx.post(f"{url}/v1/{task}/predict", json={"inputs": text}, timeout=30)


@pytest.fixture(scope="module")
def uploaded(replicas, minilm):
    a, _ = replicas
    first = upload(a.url, *artifact_bytes("sentiment", APL, minilm, seed=1), token=TOKEN)
    second = upload(
        a.url,
        *artifact_bytes(
            "nli",
            MethodConfig.preset("ap"),
            minilm,
            labels=["entailment", "neutral", "contradiction"],
            seed=2,
        ),
        token=TOKEN,
    )
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    return first.json()["version"]


def test_both_replicas_serve_both_tasks(replicas, uploaded):
    for service in replicas:
        r = predict(service.url, "sentiment")
        assert r.status_code == 200, r.text
        assert r.json()["version"] == uploaded
        r = predict(service.url, "nli")
        assert r.json()["predictions"][0]["label"] in {"entailment", "neutral", "contradiction"}


def test_the_access_log_keeps_errors_and_leaves_out_200_predictions(replicas, uploaded):
    a, _ = replicas
    assert predict(a.url, "sentiment").status_code == 200
    assert predict(a.url, "nosuch").status_code == 404
    assert httpx.get(f"{a.url}/v1/sentiment/predict", timeout=30).status_code == 405
    deadline = time.monotonic() + 10
    while '"GET /v1/sentiment/predict HTTP/1.1" 405' not in a.log_path.read_text():
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.1)
    log = a.log_path.read_text()
    assert '"POST /v1/nosuch/predict HTTP/1.1" 404' in log
    assert '/predict HTTP/1.1" 200' not in log  # counted by the metrics, not logged


def test_hot_swap_under_load_loses_nothing(replicas, uploaded, minilm):
    a, b = replicas
    statuses: Counter[int] = Counter()
    versions_seen: list[tuple[float, str, int]] = []
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(f"{url}/v1/sentiment/predict", json={"inputs": ["good", "bad"]})
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    versions_seen.append((time.monotonic(), url, r.json()["version"]))

    threads = [threading.Thread(target=hammer, args=(s.url,)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    response = upload(a.url, *artifact_bytes("sentiment", APL, minilm, seed=9), token=TOKEN)
    uploaded_at = time.monotonic()
    assert response.status_code == 201, response.text
    new_version = response.json()["version"]
    # Poll replica B directly: the time until it serves the new version.
    while predict(b.url, "sentiment").json()["version"] != new_version:
        assert time.monotonic() - uploaded_at < 5, "replica B never switched"
        time.sleep(0.01)
    switch_s = time.monotonic() - uploaded_at
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert set(statuses) == {200}, statuses
    assert statuses[200] > 10
    assert switch_s < 1.0, f"replica B switched after {switch_s:.2f}s"
    late = [v for ts, _, v in versions_seen if ts > uploaded_at + switch_s + 0.2]
    assert late and set(late) == {new_version}


@pytest.mark.parametrize(
    ("case", "mutate", "reason"), BAD_ARTIFACTS, ids=[c[0] for c in BAD_ARTIFACTS]
)
def test_bad_uploads_are_refused_and_live_keeps_serving(
    replicas, uploaded, minilm, case, mutate, reason
):
    a, _ = replicas
    live = predict(a.url, "sentiment").json()["version"]
    manifest, weights = mutate(*artifact_bytes("sentiment", APL, minilm, seed=3))
    r = upload(a.url, manifest, weights, token=TOKEN)
    assert 400 <= r.status_code < 500, r.text
    assert reason.lower() in r.json()["detail"].lower()
    after = predict(a.url, "sentiment")
    assert after.status_code == 200 and after.json()["version"] == live


def test_oversized_and_over_limit_uploads(replicas, uploaded, minilm):
    a, _ = replicas
    manifest, _ = artifact_bytes("sentiment", APL, minilm)
    r = upload(a.url, manifest, b"\0" * (5 * 2**20), token=TOKEN)
    assert r.status_code == 413, r.text
    big_rank = MethodConfig.preset("l", lora_r=32)
    r = upload(a.url, *artifact_bytes("sentiment", big_rank, minilm), token=TOKEN)
    assert r.status_code == 422 and "lora_r=32" in r.json()["detail"]
    r = upload(a.url, *artifact_bytes("sentiment", APL, minilm), token=None)
    assert r.status_code == 401
    assert predict(a.url, "sentiment").status_code == 200


def test_restart_keeps_adapters(tmp_path, minilm):
    """Default run: embedded Redis persisted under the data dir survives a restart."""
    data = tmp_path / "data"
    service = start_service(data)
    try:
        r = upload(service.url, *artifact_bytes("keepme", APL, minilm))
        assert r.status_code == 201, r.text
        version = r.json()["version"]
    finally:
        # uvicorn re-raises SIGTERM after a clean shutdown, so -15 is a graceful exit too.
        assert service.stop() in (0, -15), service.log()
        assert "Application shutdown complete" in service.log()
    service = start_service(data)
    try:
        r = predict(service.url, "keepme")
        assert r.status_code == 200, r.text
        assert r.json()["version"] == version
    finally:
        service.stop()
